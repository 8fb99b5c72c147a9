//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/google/go-cmp/cmp"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/e2e/lab"
	"github.com/kforge/kforge/e2e/testbed"
	"github.com/kforge/kforge/kubeconfig"
	"github.com/kforge/kforge/phases"
	"github.com/kforge/kforge/tokens"
)

// node is one test host with kforge staged on it.
type node struct {
	t   *testing.T
	h   testbed.Host
	lab *lab.Lab
}

// run runs kforge inside the host and returns its stdout.
func (n *node) run(ctx context.Context, args ...string) (string, error) {
	n.t.Helper()
	return n.lab.Run(ctx, n.h, nil, args...)
}

// sh runs a shell command inside the host.
func (n *node) sh(ctx context.Context, script string) string {
	n.t.Helper()
	out, errOut, err := n.h.Exec(ctx, nil, "sh", "-c", script)
	if err != nil {
		n.t.Fatalf("%s on %s: %v\n%s%s", script, n.h.Name, err, out, errOut)
	}
	return string(out)
}

func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// adminClient reads admin.conf from the host and returns a client that reaches the
// apiserver over the lab network.
func (n *node) adminClient(ctx context.Context) kubernetes.Interface {
	n.t.Helper()
	kc, err := lab.AdminKubeconfig(ctx, n.h)
	if err != nil {
		n.t.Fatal(err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kc)
	if err != nil {
		n.t.Fatal(err)
	}
	cfg.Timeout = 15 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	return cs
}

// waitFor polls cond until it returns nil, and fails the test when the timeout passes.
func waitFor(t *testing.T, ctx context.Context, what string, timeout time.Duration, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	if err := pollUntil(ctx, timeout, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	return time.Since(start)
}

func nodeReady(ctx context.Context, cs kubernetes.Interface, name string) error {
	nd, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	for _, c := range nd.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			return nil
		}
	}
	return fmt.Errorf("node %s is not Ready", name)
}

// systemPodsReady checks that every pod of kube-system and kube-flannel is Running and
// Ready, and that the four control-plane mirror pods are among them.
func systemPodsReady(ctx context.Context, cs kubernetes.Interface, nodeName string) error {
	var notReady []string
	seen := map[string]bool{}
	for _, ns := range []string{"kube-system", "kube-flannel"} {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, p := range pods.Items {
			seen[p.Name] = true
			ready := p.Status.Phase == corev1.PodRunning
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status != corev1.ConditionTrue {
					ready = false
				}
			}
			if !ready {
				notReady = append(notReady, ns+"/"+p.Name+"("+string(p.Status.Phase)+")")
			}
		}
	}
	for _, c := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		if !seen[c+"-"+nodeName] {
			notReady = append(notReady, "mirror pod "+c+"-"+nodeName+" missing")
		}
	}
	for _, prefix := range []string{"coredns-", "kube-proxy-", "kube-flannel-ds-"} {
		found := false
		for name := range seen {
			found = found || strings.HasPrefix(name, prefix)
		}
		if !found {
			notReady = append(notReady, "no "+prefix+"* pod")
		}
	}
	if len(notReady) > 0 {
		sort.Strings(notReady)
		return fmt.Errorf("not ready: %s", strings.Join(notReady, ", "))
	}
	return nil
}

var tokenRE = regexp.MustCompile(`--token ([a-z0-9]{6}\.[a-z0-9]{16})`)

// stateOf fingerprints what init writes on a host: every file's content and mtime, every
// link's target, and the IDs of the running containers.
func (n *node) stateOf(ctx context.Context) (files, containers string) {
	files = n.sh(ctx, `find /etc/kubernetes /etc/containerd /var/lib/kubelet/config.yaml /var/lib/kubelet/kubeadm-flags.env `+
		`/var/lib/kubelet/pki /etc/sysctl.d/99-kforge.conf \( -type f -printf '%p %T@ ' -exec sha256sum {} \; \) -o \( -type l -printf '%p -> %l\n' \) | sort`)
	containers = n.sh(ctx, `ctr -n k8s.io tasks ls | awk 'NR>1 && $3=="RUNNING" {print $1}' | sort`)
	return files, containers
}

// hostMemory is the memory the host's processes use, from its cgroup subtree.
func hostMemoryMiB(h testbed.Host) float64 {
	b, err := os.ReadFile("/sys/fs/cgroup/memory/" + h.Name + "/memory.max_usage_in_bytes")
	if err != nil {
		return -1
	}
	v, _ := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	return v / (1 << 20)
}

// TestSingleNodeInit builds or reuses the test bundle, creates one test host and runs
// kforge init inside it, then checks the cluster, convergence, crash recovery and reset.
func TestSingleNodeInit(t *testing.T) {
	ctx := t.Context()
	l := newLab(t, ctx, 1)
	tb := l.TB
	h, _ := tb.Host("h1")
	n := &node{t: t, h: h, lab: l}
	if err := l.WriteConfig(ctx, h, l.ClusterConfig(h)); err != nil {
		t.Fatal(err)
	}
	initArgs := []string{"init", "-f", lab.ConfigPath, "--node", h.Name}

	var timings []string
	timedInit := func(run int) (string, kubernetes.Interface) {
		start := time.Now()
		out, err := n.run(ctx, initArgs...)
		if err != nil {
			t.Fatal(err)
		}
		initDone := time.Since(start)
		cs := n.adminClient(ctx)
		waitFor(t, ctx, "node Ready", 3*time.Minute, func() error { return nodeReady(ctx, cs, h.Name) })
		ready := time.Since(start)
		waitFor(t, ctx, "every kube-system pod Ready", 4*time.Minute, func() error { return systemPodsReady(ctx, cs, h.Name) })
		all := time.Since(start)
		timings = append(timings, fmt.Sprintf("run %d: init returned after %s, node Ready after %s, every system pod Ready after %s",
			run, initDone.Round(100*time.Millisecond), ready.Round(100*time.Millisecond), all.Round(100*time.Millisecond)))
		t.Log(timings[len(timings)-1])
		return out, cs
	}

	// 1. A fresh init.
	out, cs := timedInit(1)
	t.Log(out)

	t.Run("control plane", func(t *testing.T) {
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil || string(body) != "ok" {
			t.Fatalf("/readyz = %q, %v", body, err)
		}
	})

	t.Run("discovery material", func(t *testing.T) {
		m := tokenRE.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("init printed no join token:\n%s", out)
		}
		tok, err := tokens.Parse(m[1])
		if err != nil {
			t.Fatal(err)
		}
		cm, err := cs.CoreV1().ConfigMaps("kube-public").Get(ctx, "cluster-info", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := bootstrap.VerifyClusterInfoJWS(cm, tok); err != nil {
			t.Fatalf("cluster-info signature for the printed token: %v", err)
		}
		forged := tokens.Token{ID: tok.ID, Secret: strings.Repeat("a", 16)}
		if err := bootstrap.VerifyClusterInfoJWS(cm, forged); err == nil {
			t.Fatal("cluster-info verified with a wrong token secret")
		}
	})

	// Before networking: its test pods are still terminating when idempotency counts the
	// running containers, so nothing may run between the two.
	t.Run("security posture", func(t *testing.T) { checkSecurityPosture(t, ctx, n, cs) })

	t.Run("networking", func(t *testing.T) { checkPodNetworking(t, ctx, cs) })

	// The host-level plan: a dry run on the running host reads its files through the
	// overlay, so it plans nothing for the same file, and for an edited one exactly the
	// file that changes, with the diff.
	t.Run("dry run plans only what changed", func(t *testing.T) {
		files, _ := n.stateOf(ctx)
		same, err := n.run(ctx, append(slices.Clone(initArgs), "--dry-run")...)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(same, "[dry-run] no file on this host would change") {
			t.Errorf("a dry run with the same file plans changes:\n%s", same)
		}
		const changed = "/root/cluster-changed.toml"
		cfg := l.ClusterConfig(h) + "\n[apiserver]\nextra_args = { max-requests-inflight = \"500\" }\n"
		if _, errOut, err := h.Exec(ctx, strings.NewReader(cfg), "sh", "-c", "cat > "+changed); err != nil {
			t.Fatalf("writing %s: %v: %s", changed, err, errOut)
		}
		plan, err := n.run(ctx, "init", "-f", changed, "--node", h.Name, "--dry-run")
		if err != nil {
			t.Fatal(err)
		}
		// The automatic renewal check keeps its own copy of the file: a renewal writes the
		// manifests again from it, so it follows every edit.
		for _, want := range []string{
			"[dry-run] a real run would change 2 files on this host:",
			"update  0600  /etc/kforge/certs-renew.toml",
			"+max-requests-inflight = '500'",
			"update  0600  /etc/kubernetes/manifests/kube-apiserver.yaml",
			"+    - --max-requests-inflight=500",
			"would (re)start these static pods from /etc/kubernetes/manifests: kube-apiserver",
		} {
			if !strings.Contains(plan, want) {
				t.Errorf("the plan of an apiserver extra arg lacks %q:\n%s", want, plan)
			}
		}
		if after, _ := n.stateOf(ctx); after != files {
			t.Errorf("a dry run changed the host's files:\nbefore:\n%s\nafter:\n%s", files, after)
		}
	})

	t.Run("idempotency", func(t *testing.T) {
		files, containers := n.stateOf(ctx)
		if strings.TrimSpace(containers) == "" {
			t.Fatal("no running containers before the re-run")
		}
		again, err := n.run(ctx, initArgs...)
		if err != nil {
			t.Fatal(err)
		}
		files2, containers2 := n.stateOf(ctx)
		if files != files2 {
			t.Errorf("a second init changed files:\nbefore:\n%s\nafter:\n%s", files, files2)
		}
		if containers != containers2 {
			t.Errorf("a second init restarted containers:\nbefore:\n%s\nafter:\n%s", containers, containers2)
		}
		if strings.Contains(again, "started the kubelet") {
			t.Errorf("a second init restarted the kubelet:\n%s", again)
		}
	})

	t.Run("kubelet client certificate rotates", func(t *testing.T) { checkKubeletRotation(t, ctx, n, cs, h.Name, initArgs) })

	t.Run("crash matrix", func(t *testing.T) {
		kills := crashMatrix(t, ctx, n, l.ClusterConfig(h), initArgs)
		t.Logf("crash matrix: %d kills -9 between writing a config and restarting its service; after each re-run the service used the new config", kills)
	})

	t.Run("certs renew", func(t *testing.T) { checkCertsRenew(t, ctx, &node{t: t, h: n.h, lab: n.lab}, initArgs[1:]) })

	// 2. Reset, then init again, twice: two more timed runs.
	for run := 2; run <= 3; run++ {
		if _, err := n.run(ctx, "reset"); err != nil {
			t.Fatal(err)
		}
		if left := n.sh(ctx, "ls -A /etc/kubernetes/pki /var/lib/etcd /etc/kubernetes/manifests 2>/dev/null | grep -v ':$' | grep -c . || true"); strings.TrimSpace(left) != "0" {
			t.Fatalf("reset left files behind: %s", left)
		}
		// The host's own mount of /var/lib/kubelet (the testbed's bind mount; on a real
		// host perhaps a dedicated disk) survives reset.
		if n := n.sh(ctx, "awk '$5 == \"/var/lib/kubelet\"' /proc/self/mountinfo | wc -l"); strings.TrimSpace(n) == "0" {
			t.Fatal("reset unmounted the host's own /var/lib/kubelet mount")
		}
		timedInit(run)
	}

	// 3. Crash recovery: from a reset host, kill -9 kforge in the middle of each online
	// phase in turn; every re-run picks up where the last one died.
	t.Run("crash recovery", func(t *testing.T) {
		n := &node{t: t, h: n.h, lab: n.lab}
		if _, err := n.run(ctx, "reset"); err != nil {
			t.Fatal(err)
		}
		for _, phase := range []string{"container-runtime", "kubelet-start", "wait-control-plane", "upload-config",
			"mark-control-plane", "bootstrap-token", "kubelet-finalize", "addon", "show-join-command"} {
			killed := n.killDuring(ctx, phase, initArgs)
			t.Logf("killed kforge during %s (%s)", phase, killed)
		}
		if _, err := n.run(ctx, initArgs...); err != nil {
			t.Fatalf("init after the crashes: %v", err)
		}
		cs := n.adminClient(ctx)
		waitFor(t, ctx, "node Ready after the crashes", 3*time.Minute, func() error { return nodeReady(ctx, cs, h.Name) })
		waitFor(t, ctx, "system pods Ready after the crashes", 4*time.Minute, func() error { return systemPodsReady(ctx, cs, h.Name) })
		checkPodNetworking(t, ctx, cs)
	})

	for _, l := range timings {
		t.Log(l)
	}
	t.Logf("peak memory of host %s: %.0f MiB", h.Name, hostMemoryMiB(h))
}

// killDuring runs init and sends SIGKILL to kforge as soon as it prints the first line of
// phase. It returns the line it was killed at.
func (n *node) killDuring(ctx context.Context, phase string, args []string) string {
	n.t.Helper()
	// The shell prints its pid as the host sees it, then becomes kforge.
	cmd := n.h.Command(ctx, "sh", "-c", `echo $$; exec "$0" "$@"`, n.lab.Kforge)
	cmd.Args = append(cmd.Args, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		n.t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	sc.Scan()
	pid := strings.TrimSpace(sc.Text())
	killedAt := ""
	var seen []string
	for sc.Scan() {
		line := sc.Text()
		seen = append(seen, line)
		if strings.HasPrefix(line, "["+phase+"]") {
			// kforge may finish between its last line and the kill: then there is no
			// process left to kill, which is fine.
			if _, errOut, err := n.h.Exec(ctx, nil, "kill", "-9", pid); err != nil && !strings.Contains(string(errOut), "No such process") {
				n.t.Fatalf("kill -9 %s: %v: %s", pid, err, errOut)
			}
			killedAt = line
			break
		}
	}
	go io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	if killedAt == "" {
		n.t.Fatalf("init never reached phase %s (exit %v):\n%s\n%s", phase, err, strings.Join(seen, "\n"), stderr.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Exited() && ws.ExitStatus() == 0 && !slices.Contains(seen, "") {
		n.t.Logf("note: kforge finished before the kill landed in %s", phase)
	}
	return killedAt
}

// newLab skips without root, builds or reuses the test bundle, creates hosts test hosts
// (removed when the test ends, unless KFORGE_E2E_KEEP is set) and stages kforge for them.
func newLab(t *testing.T, ctx context.Context, hosts int) *lab.Lab {
	t.Helper()
	return newLabOf(t, ctx, hosts, testbed.KindNS)
}

// newLabOf is newLab with hosts of the given kind.
func newLabOf(t *testing.T, ctx context.Context, hosts int, kind testbed.Kind) *lab.Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the e2e tier creates hosts from namespaces and needs root; run it with `sudo make e2e`")
	}
	built := buildTestBundle(t, ctx)
	tb, err := testbed.Up(ctx, testbed.Options{Hosts: hosts, Kind: kind, Out: os.Stderr})
	// Up returns what it made even when it fails: that goes too.
	if tb != nil && os.Getenv("KFORGE_E2E_KEEP") == "" {
		t.Cleanup(func() {
			if err := tb.Down(context.Background()); err != nil {
				t.Errorf("removing the testbed: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatalf("creating the test hosts: %v", err)
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	l, err := lab.Stage(tb, built, root)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// checkCertsRenew runs `certs renew all` on the running single-node cluster: every leaf
// certificate and kubeconfig client certificate gets a new serial and a later NotAfter
// for the key it had, no key or CA changes, every control-plane static pod restarts, the
// node stays Ready, and a dry run afterwards still plans every renewal (renewal always
// renews) while writing nothing. fileArgs are "-f <file> --node <name>".
func checkCertsRenew(t *testing.T, ctx context.Context, n *node, fileArgs []string) {
	type leaf struct {
		serial, notAfter, pub string
	}
	pki := "/etc/kubernetes/pki/"
	read := func() (leaves map[string]leaf, fixed map[string]string) {
		leaves, fixed = map[string]leaf{}, map[string]string{}
		for _, f := range strings.Fields(n.sh(ctx, "cd "+pki+" && ls *.crt *.key *.pub etcd/*.crt etcd/*.key")) {
			data := n.sh(ctx, "cat "+pki+f)
			if !strings.HasSuffix(f, ".crt") || strings.HasSuffix(f, "ca.crt") {
				fixed[f] = data // keys, sa.pub and CAs
				continue
			}
			c, err := certs.ParseCertPEM([]byte(data))
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			leaves[f] = leaf{c.SerialNumber.String(), c.NotAfter.String(), string(c.RawSubjectPublicKeyInfo)}
		}
		for _, f := range phases.RenewKubeconfigs {
			certPEM, keyPEM, err := kubeconfig.ClientCert([]byte(n.sh(ctx, "cat /etc/kubernetes/"+f)))
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			c, err := certs.ParseCertPEM(certPEM)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			leaves[f] = leaf{c.SerialNumber.String(), c.NotAfter.String(), string(c.RawSubjectPublicKeyInfo)}
			fixed[f+" key"] = string(keyPEM)
		}
		return leaves, fixed
	}
	cs := n.adminClient(ctx)
	containerIDs := func() map[string]string {
		ids := map[string]string{}
		for _, c := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
			p, err := cs.CoreV1().Pods("kube-system").Get(ctx, c+"-"+n.h.Name, metav1.GetOptions{})
			if err != nil || len(p.Status.ContainerStatuses) == 0 {
				ids[c] = fmt.Sprintf("(none: %v)", err)
				continue
			}
			ids[c] = p.Status.ContainerStatuses[0].ContainerID
		}
		return ids
	}
	leavesBefore, fixedBefore := read()
	idsBefore := containerIDs()
	time.Sleep(time.Second) // NotAfter has a resolution of a second

	start := time.Now()
	out, err := n.run(ctx, append([]string{"certs", "renew", "all"}, fileArgs...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("certs renew all took %s:\n%s", time.Since(start).Round(100*time.Millisecond), out)
	if !strings.Contains(out, "restarted: etcd, kube-apiserver, kube-controller-manager, kube-scheduler") {
		t.Errorf("renew did not report restarting the four static pods:\n%s", out)
	}
	leavesAfter, fixedAfter := read()
	if len(leavesAfter) != 11 {
		t.Errorf("%d leaves and kubeconfigs, want 11", len(leavesAfter))
	}
	for f, b := range leavesBefore {
		a := leavesAfter[f]
		if a.serial == b.serial || a.notAfter == b.notAfter || a.pub != b.pub {
			t.Errorf("%s: serial %s -> %s, NotAfter %s -> %s, same key %v; want a new serial and NotAfter for the same key",
				f, b.serial, a.serial, b.notAfter, a.notAfter, a.pub == b.pub)
		}
	}
	for f, b := range fixedBefore {
		if fixedAfter[f] != b {
			t.Errorf("%s changed; renewal changes no key or CA", f)
		}
	}

	cs = n.adminClient(ctx) // admin.conf's renewed certificate
	waitFor(t, ctx, "node Ready after the renewal", 3*time.Minute, func() error { return nodeReady(ctx, cs, n.h.Name) })
	waitFor(t, ctx, "system pods Ready after the renewal", 4*time.Minute, func() error { return systemPodsReady(ctx, cs, n.h.Name) })
	idsAfter := containerIDs()
	for c, id := range idsBefore {
		if idsAfter[c] == id {
			t.Errorf("%s was not restarted (container %s)", c, id)
		}
	}

	files, _ := n.stateOf(ctx)
	plan, err := n.run(ctx, append([]string{"certs", "renew", "all", "--dry-run", "-o", "json"}, fileArgs...)...)
	if err != nil {
		t.Fatal(err)
	}
	var r phases.RenewReport
	if err := json.Unmarshal([]byte(plan), &r); err != nil {
		t.Fatalf("decoding the dry run's report: %v\n%s", err, plan)
	}
	if len(r.Renewed) != 11 || len(r.Restarts) != 4 || len(r.External) != 0 || !r.DryRun {
		t.Errorf("a dry run after the renewal plans %d renewals and restarts %v, want 11 and the four static pods:\n%s", len(r.Renewed), r.Restarts, plan)
	}
	if after, _ := n.stateOf(ctx); after != files {
		t.Errorf("the dry run changed the host's files:\nbefore:\n%s\nafter:\n%s", files, after)
	}
	checkKubeadmAgrees(t, ctx, n)
}

// checkKubeadmAgrees runs stock `kubeadm certs check-expiration` (the bundle's kubeadm,
// built as the testbed builds Kubernetes) on the control plane and compares it with
// `kforge certs check-expiration -o json`: both must list the same certificates, CAs and
// kubeconfigs, with the same expiry to the minute (kubeadm's resolution), none externally
// managed and none missing.
func checkKubeadmAgrees(t *testing.T, ctx context.Context, n *node) {
	t.Helper()
	kubeadmOut := n.sh(ctx, "kubeadm certs check-expiration 2>&1")
	kubeadm := map[string]string{} // name -> "Jan 02, 2006 15:04 UTC"
	for _, line := range strings.Split(kubeadmOut, "\n") {
		cols := regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(line), -1)
		if len(cols) < 4 || cols[0] == "CERTIFICATE" || cols[0] == "CERTIFICATE AUTHORITY" {
			continue
		}
		if _, err := time.Parse("Jan 02, 2006 15:04 MST", cols[1]); err != nil {
			continue // a log line, not a row
		}
		if ext := cols[len(cols)-1]; ext != "no" {
			t.Errorf("kubeadm says %s is externally managed (%q)", cols[0], ext)
		}
		kubeadm[cols[0]] = cols[1]
	}
	out, err := n.run(ctx, "certs", "check-expiration", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var r certs.ExpiryReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("decoding kforge's report: %v\n%s", err, out)
	}
	kforge := map[string]string{}
	for _, row := range r.Certificates {
		if row.Missing || row.External {
			t.Errorf("kforge reports %s missing (%v) or external (%v)", row.Name, row.Missing, row.External)
		}
		kforge[row.Name] = row.NotAfter.UTC().Format("Jan 02, 2006 15:04 MST")
	}
	if len(kubeadm) != 14 {
		t.Errorf("kubeadm listed %d certificates, want 11 leaves and kubeconfigs and 3 CAs:\n%s", len(kubeadm), kubeadmOut)
	}
	if diff := cmp.Diff(kubeadm, kforge); diff != "" {
		t.Errorf("kubeadm certs check-expiration and kforge certs check-expiration disagree (-kubeadm +kforge):\n%s\nkubeadm printed:\n%s", diff, kubeadmOut)
	}
	t.Logf("kubeadm certs check-expiration agrees with kforge on %d certificates:\n%s", len(kubeadm), kubeadmOut)
}
