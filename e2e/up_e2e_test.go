//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kforge/kforge/e2e/lab"
	"github.com/kforge/kforge/e2e/testbed"
	"github.com/kforge/kforge/fleet"
	"github.com/kforge/kforge/phases"
)

// secretRE matches a bootstrap token or a certificate key as kforge prints them.
var secretRE = regexp.MustCompile(`\b[a-z0-9]{6}\.[a-z0-9]{16}\b|(?m)^\s*[0-9a-f]{64}\s*$|--certificate-key [0-9a-f]{64}`)

type upRun struct {
	stdout, stderr string
	report         fleet.Report
	err            error
	took           time.Duration
}

// kforgeUp runs kforge up from this machine (the root namespace) with the testbed's SSH key.
func kforgeUp(t *testing.T, ctx context.Context, l *lab.Lab, cfg, knownHosts string, watch func(line string, p *os.Process), extra ...string) upRun {
	t.Helper()
	return kforgeUpCmd(t, ctx, l, []string{"up"}, cfg, knownHosts, watch, extra...)
}

// kforgeUpCmd runs the kforge command cmd ("up", or "up phase prepare-hosts") as kforgeUp
// does.
func kforgeUpCmd(t *testing.T, ctx context.Context, l *lab.Lab, cmdArgs []string, cfg, knownHosts string, watch func(line string, p *os.Process), extra ...string) upRun {
	t.Helper()
	args := append(append(cmdArgs, "-f", cfg, "-i", l.TB.SSHKey(), "--known-hosts", knownHosts, "--output", "json", "-v", "1",
		"--kubeconfig-out", filepath.Join(filepath.Dir(cfg), "admin.conf")), extra...)
	cmd := exec.CommandContext(ctx, l.Kforge, args...)
	cmd.Dir = filepath.Dir(cfg)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	var stderr strings.Builder
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			stderr.WriteString(sc.Text() + "\n")
			if watch != nil {
				watch(sc.Text(), cmd.Process)
			}
		}
	}()
	start := time.Now()
	err := cmd.Run()
	pw.Close()
	<-done
	r := upRun{stdout: stdout.String(), stderr: stderr.String(), err: err, took: time.Since(start)}
	if jerr := json.Unmarshal(stdout.Bytes(), &r.report); jerr != nil && err == nil {
		t.Fatalf("kforge up printed no JSON summary: %v\nstdout:\n%s\nstderr:\n%s", jerr, r.stdout, r.stderr)
	}
	t.Logf("kforge %s -f %s: %s, exit %v", strings.Join(cmdArgs, " "), filepath.Base(cfg), r.took.Round(100*time.Millisecond), err)
	// up's own progress lines ("[h2] ..."), without the hosts' output ("h2: ...").
	var progress []string
	for _, line := range strings.Split(r.stderr, "\n") {
		if strings.HasPrefix(line, "[") {
			progress = append(progress, line)
		}
	}
	t.Logf("progress:\n%s", strings.Join(progress, "\n"))
	return r
}

func (r upRun) host(name string) fleet.HostReport {
	for _, h := range r.report.Hosts {
		if h.Host == name {
			return h
		}
	}
	return fleet.HostReport{}
}

func clientFromFile(t *testing.T, path string) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Timeout = 15 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// upState fingerprints what up and the cluster put on a host. The record of the automatic
// certificate renewal check is left out: the check writes it on its own schedule, not up.
func (n *node) upState(ctx context.Context) string {
	files, containers := n.stateOf(ctx)
	more := n.sh(ctx, `find /etc/kforge /var/lib/kforge /usr/local/bin -type f ! -path `+phases.CertsRenewalState+` -printf '%p %T@ %s\n' 2>/dev/null | sort`)
	return files + more + "containers:\n" + containers
}

// kforgeStatus runs kforge status -o json against cfg and returns its report, what it
// printed on stderr and its exit error.
func kforgeStatus(t *testing.T, ctx context.Context, l *lab.Lab, cfg, knownHosts string) (fleet.Status, string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, l.Kforge, "status", "-f", cfg, "-i", l.TB.SSHKey(), "--known-hosts", knownHosts, "-o", "json")
	cmd.Dir = filepath.Dir(cfg)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	var st fleet.Status
	if jerr := json.Unmarshal(stdout.Bytes(), &st); jerr != nil {
		t.Fatalf("kforge status printed no JSON (exit %v): %v\nstdout:\n%s\nstderr:\n%s", err, jerr, stdout.String(), stderr.String())
	}
	t.Logf("kforge status -f %s: %s, exit %v", filepath.Base(cfg), time.Since(start).Round(10*time.Millisecond), err)
	return st, stderr.String(), err
}

// settledStates waits until the cluster's system pods are all Ready and then until each
// named host's upState reads the same twice, 3 s apart, and returns those states. A host
// that joined a moment ago still starts containers after it is Ready; comparing against a
// state taken then would blame kforge for the kubelet's own late work.
func settledStates(t *testing.T, ctx context.Context, cs kubernetes.Interface, nodes map[string]*node, names ...string) map[string]string {
	t.Helper()
	waitFor(t, ctx, "system pods Ready", 3*time.Minute, func() error { return systemPodsReady(ctx, cs, "h1") })
	states := map[string]string{}
	waitFor(t, ctx, "hosts' files and containers to settle", 2*time.Minute, func() error {
		var moving []string
		for _, n := range names {
			first := nodes[n].upState(ctx)
			time.Sleep(3 * time.Second)
			if second := nodes[n].upState(ctx); second != first {
				moving = append(moving, n)
				continue
			}
			states[n] = first
		}
		if len(moving) > 0 {
			return fmt.Errorf("still changing: %s", strings.Join(moving, ", "))
		}
		return nil
	})
	return states
}

// killSSH stops a host's sshd and every session it serves, as a host that drops off the
// network would: the listener through the testbed, then each sshd process of the host by
// its PID (inside the host's own PID namespace).
func killSSH(ctx context.Context, h testbed.Host) error {
	if err := h.StopService(ctx, "sshd"); err != nil {
		return err
	}
	script := `for d in /proc/[0-9]*; do [ "$(cat $d/comm 2>/dev/null)" = sshd ] && kill -9 "${d#/proc/}"; done; true`
	if out, errOut, err := h.Exec(ctx, nil, "sh", "-c", script); err != nil {
		return fmt.Errorf("killing sshd sessions on %s: %v %s %s", h.Name, err, out, errOut)
	}
	return nil
}

// TestUp drives whole clusters from this machine over the hosts' real sshd: from nothing,
// a no-op re-run, a refused unknown host key, growth by one worker, an HA cluster, and a
// host lost in the middle of a run.
func TestUp(t *testing.T) {
	ctx := t.Context()
	l := newLab(t, ctx, 8)
	tb := l.TB
	hs := map[string]testbed.Host{}
	nodes := map[string]*node{}
	for _, h := range tb.Hosts() {
		hs[h.Name] = h
		nodes[h.Name] = &node{t: t, h: h, lab: l}
	}
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	known, err := os.ReadFile(tb.KnownHosts())
	if err != nil {
		t.Fatal(err)
	}
	knownHosts := write("known_hosts", string(known))
	var withoutH4 []string
	for _, line := range strings.Split(string(known), "\n") {
		if !strings.Contains(line, "h4") && !strings.Contains(line, hs["h4"].Address.String()) {
			withoutH4 = append(withoutH4, line)
		}
	}
	knownHostsNoH4 := write("known_hosts.no-h4", strings.Join(withoutH4, "\n"))

	basic := write("basic.toml", l.UpConfig("basic", "", 1, hs["h1"], hs["h2"], hs["h3"]))
	grown := write("grown.toml", l.UpConfig("basic", "", 1, hs["h1"], hs["h2"], hs["h3"], hs["h4"]))
	ha := write("ha.toml", l.UpConfig("ha", hs["h5"].Address.String()+":6443", 3, hs["h5"], hs["h6"], hs["h7"], hs["h8"]))
	// The HA cluster's admin kubeconfig has a file of its own: up does not overwrite the
	// basic cluster's with another cluster's.
	haAdmin := filepath.Join(dir, "ha-admin.conf")
	var timings []string

	// 1. From nothing: one control plane and two workers.
	upStart := time.Now()
	first := kforgeUp(t, ctx, l, basic, knownHosts, nil)
	if first.err != nil {
		t.Fatalf("kforge up: %v\n%s", first.err, first.stderr)
	}
	timings = append(timings, fmt.Sprintf("up from nothing (1 control plane, 2 workers): %s", first.took.Round(100*time.Millisecond)))
	cs := clientFromFile(t, filepath.Join(dir, "admin.conf"))
	for _, n := range []string{"h1", "h2", "h3"} {
		waitFor(t, ctx, n+" Ready", 3*time.Minute, func() error { return nodeReady(ctx, cs, n) })
	}
	timings = append(timings, fmt.Sprintf("all three nodes Ready %s after up started", time.Since(upStart).Round(100*time.Millisecond)))
	t.Run("from nothing", func(t *testing.T) {
		checkPodNetworking(t, ctx, cs, "h2", "h3")
		// The test's pods go with their namespace; wait, so that the later fingerprints
		// see only what kforge runs.
		waitFor(t, ctx, "the networking test's pods to be gone", 2*time.Minute, func() error {
			pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			for _, p := range pods.Items {
				if strings.HasPrefix(p.Namespace, "e2e-") {
					return fmt.Errorf("pod %s/%s is still there", p.Namespace, p.Name)
				}
			}
			return nil
		})
		secrets, err := cs.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets.Items {
			if strings.HasPrefix(s.Name, "bootstrap-token-") {
				t.Errorf("join token %s outlived the run", s.Name)
			}
		}
		// With -v 1 up prints every line the hosts' kforge printed, the join commands
		// init shows included: the token and certificate key must be redacted there.
		all := first.stdout + first.stderr
		if !strings.Contains(all, "--token <redacted>") {
			t.Errorf("up's host log does not show init's join command redacted:\n%s", all)
		}
		if m := secretRE.FindString(all); m != "" {
			t.Errorf("up's output holds a secret-looking string %q", m)
		}
	})

	t.Run("a second up changes nothing", func(t *testing.T) {
		before := settledStates(t, ctx, cs, nodes, "h1", "h2", "h3")
		again := kforgeUp(t, ctx, l, basic, knownHosts, nil)
		if again.err != nil {
			t.Fatalf("second up: %v\n%s", again.err, again.stderr)
		}
		for _, n := range []string{"h1", "h2", "h3"} {
			r := again.host(n)
			if r.Action != fleet.ActionUnchanged || r.Uploaded != 0 {
				t.Errorf("%s: action %q, %d bytes uploaded; want unchanged and nothing", n, r.Action, r.Uploaded)
			}
			if after := nodes[n].upState(ctx); after != before[n] {
				t.Errorf("the second up changed %s:\nbefore:\n%s\nafter:\n%s", n, before[n], after)
			}
		}
		timings = append(timings, fmt.Sprintf("no-op re-run of up: %s", again.took.Round(time.Millisecond)))
		// kforge status agrees: every host reachable, Ready and as the file says.
		st, stderr, err := kforgeStatus(t, ctx, l, basic, knownHosts)
		if err != nil || !st.OK || !st.Cluster.APIReachable || st.Cluster.Nodes != 3 || len(st.Hosts) != 3 {
			t.Errorf("status of the converged cluster: exit %v, %+v\n%s", err, st, stderr)
		}
		for _, h := range st.Hosts {
			if !h.Reachable || !h.InCluster || !h.Ready || h.Match != "yes" || h.Changes != 0 || h.KubeletVersion == "" {
				t.Errorf("status of %s: %+v", h.Host, h)
			}
			if h.Role == "control-plane" && (len(h.StaticPods) != 4 || h.CertExpiry == nil || h.CertExpiry.Expired || h.CertExpiry.DaysLeft < 300) {
				t.Errorf("status of control plane %s: pods %+v, certificates %+v", h.Host, h.StaticPods, h.CertExpiry)
			}
		}
		// Where the no-op's time goes, phase by phase.
		for _, line := range strings.Split(again.stderr, "\n") {
			if line = strings.TrimSpace(line); strings.HasPrefix(line, "[") && strings.Contains(line, "] done in ") {
				t.Log("no-op " + line)
			}
		}
	})

	// Issue 11: an edited file reaches hosts already in the cluster, with a plan first; a
	// manifest edited by hand is drift, and is put back.
	t.Run("an edited file is planned, applied, then matched", func(t *testing.T) {
		h3 := hs["h3"]
		edited := strings.Replace(mustReadFile(t, basic), "[addons.dns]\n", "[addons.dns]\nreplicas = 3\n", 1)
		// The same resolver, named with its port: a new Corefile that still resolves.
		upstream := fmt.Sprintf("upstreams = [%q]\n", l.Gateway())
		if !strings.Contains(edited, upstream) {
			t.Fatalf("the config has no %q", upstream)
		}
		newUpstream := net.JoinHostPort(l.Gateway(), "53")
		edited = strings.Replace(edited, upstream, fmt.Sprintf("upstreams = [%q]\n", newUpstream), 1)
		edited += "\n[addons.kube_proxy]\nmode = \"nftables\"\n"
		hostLine := fmt.Sprintf("name = %q\naddress = %q\nroles = [\"worker\"]\n", h3.Name, h3.Address)
		if !strings.Contains(edited, hostLine) {
			t.Fatalf("the config has no entry %q", hostLine)
		}
		edited = strings.Replace(edited, hostLine, hostLine+"labels = { tier = \"edge\" }\ntaints = [\"dedicated=edge:NoSchedule\"]\n", 1)
		edited += "\n[apiserver]\nextra_args = { max-requests-inflight = \"500\" }\ncert_sans = [\"api.e2e.test\"]\n\n[kubelet]\nmax_pods = 60\n"
		editedPath := write("edited.toml", edited)
		const manifest = "/etc/kubernetes/manifests/kube-apiserver.yaml"
		manifestBefore := nodes["h1"].sh(ctx, "sha256sum "+manifest)

		plan := kforgeUp(t, ctx, l, editedPath, knownHosts, nil, "--dry-run")
		if plan.err != nil {
			t.Fatalf("up --dry-run: %v\n%s", plan.err, plan.stderr)
		}
		for _, want := range []string{"[h1] will reconfigure", "+    - --max-requests-inflight=500", "restarts kube-apiserver",
			"[h2] will reconfigure", "+maxPods: 60", "would add label tier=edge", "spec.replicas",
			"mode: nftables", "forward . " + newUpstream} {
			if !strings.Contains(plan.stderr, want) {
				t.Errorf("the dry run's plan lacks %q:\n%s", want, plan.stderr)
			}
		}
		if r := plan.host("h1"); r.Action != fleet.ActionReconfigure || r.Plan == nil || len(r.Plan.Changes) == 0 {
			t.Errorf("h1 in the dry run's report: %+v", r)
		}
		if after := nodes["h1"].sh(ctx, "sha256sum "+manifest); after != manifestBefore {
			t.Error("the dry run changed h1's apiserver manifest")
		}
		// kforge status sees the hosts differ from the edited file, and says what to do.
		st, _, err := kforgeStatus(t, ctx, l, editedPath, knownHosts)
		if err == nil || st.OK || !slices.ContainsFunc(st.Problems, func(p string) bool { return strings.Contains(p, "kforge up --dry-run") }) {
			t.Errorf("status against the edited file: exit %v, ok %v, problems %q", err, st.OK, st.Problems)
		}
		for _, h := range st.Hosts {
			if h.Match != "no" || h.Changes == 0 || !slices.Contains(h.Restarts, "kubelet") {
				t.Errorf("status of %s against the edited file: %+v", h.Host, h)
			}
		}

		applied := kforgeUp(t, ctx, l, editedPath, knownHosts, nil)
		if applied.err != nil {
			t.Fatalf("up with the edited file: %v\n%s", applied.err, applied.stderr)
		}
		timings = append(timings, fmt.Sprintf("up applying an apiserver arg, max_pods on 3 hosts, a label, a taint, DNS replicas and upstreams, kube-proxy's mode: %s", applied.took.Round(100*time.Millisecond)))
		if args := apiserverArgs(ctx, nodes["h1"]); !strings.Contains(args, "--max-requests-inflight=500") {
			t.Errorf("the running kube-apiserver lacks the new flag: %q", args)
		}
		// The served certificate carries the new name (openssl, against the apiserver).
		waitFor(t, ctx, "the apiserver to serve a certificate for api.e2e.test", time.Minute, func() error {
			addr := net.JoinHostPort(hs["h1"].Address.String(), "6443")
			out, err := exec.CommandContext(ctx, "sh", "-c", "openssl s_client -connect "+addr+" </dev/null 2>/dev/null | openssl x509 -noout -ext subjectAltName").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "DNS:api.e2e.test") {
				return fmt.Errorf("openssl: %s %v", out, err)
			}
			return nil
		})
		for _, n := range []string{"h1", "h2", "h3"} {
			waitFor(t, ctx, n+"'s Node to report 60 pods", 2*time.Minute, func() error {
				nd, err := cs.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
				if err != nil {
					return err
				}
				if got := nd.Status.Capacity.Pods().Value(); got != 60 {
					return fmt.Errorf("capacity pods %d", got)
				}
				return nil
			})
		}
		nd, err := cs.CoreV1().Nodes().Get(ctx, "h3", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if nd.Labels["tier"] != "edge" || !slices.ContainsFunc(nd.Spec.Taints, func(tn corev1.Taint) bool { return tn.Key == "dedicated" && tn.Value == "edge" }) {
			t.Errorf("h3's Node: labels %v, taints %v", nd.Labels, nd.Spec.Taints)
		}
		if dep, err := cs.AppsV1().Deployments("kube-system").Get(ctx, "coredns", metav1.GetOptions{}); err != nil || *dep.Spec.Replicas != 3 {
			t.Errorf("coredns replicas: %v, %v", dep, err)
		}
		if cm, err := cs.CoreV1().ConfigMaps("kube-system").Get(ctx, "coredns", metav1.GetOptions{}); err != nil || !strings.Contains(cm.Data["Corefile"], "forward . "+newUpstream) {
			t.Errorf("the Corefile does not forward to %s: %v %v", newUpstream, cm, err)
		}
		// kube-proxy runs in nftables mode on every node, and Services still work through it.
		waitFor(t, ctx, "kube-proxy rolled out in nftables mode", 3*time.Minute, func() error {
			ds, err := cs.AppsV1().DaemonSets("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if ds.Status.ObservedGeneration < ds.Generation || ds.Status.UpdatedNumberScheduled != ds.Status.DesiredNumberScheduled || ds.Status.NumberReady != ds.Status.DesiredNumberScheduled {
				return fmt.Errorf("kube-proxy: %d of %d updated, %d ready", ds.Status.UpdatedNumberScheduled, ds.Status.DesiredNumberScheduled, ds.Status.NumberReady)
			}
			for _, n := range []string{"h1", "h2", "h3"} {
				if out := nodes[n].sh(ctx, "nft list table ip kube-proxy 2>&1 | head -3 || true"); !strings.Contains(out, "table ip kube-proxy") {
					return fmt.Errorf("%s has no nftables table kube-proxy: %s", n, out)
				}
			}
			return nil
		})
		waitFor(t, ctx, "CoreDNS rolled out with the new Corefile", 3*time.Minute, func() error {
			d, err := cs.AppsV1().Deployments("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if d.Status.ObservedGeneration < d.Generation || d.Status.UpdatedReplicas != 3 || d.Status.ReadyReplicas != 3 || d.Status.Replicas != 3 {
				return fmt.Errorf("coredns: %d updated, %d ready, %d in all", d.Status.UpdatedReplicas, d.Status.ReadyReplicas, d.Status.Replicas)
			}
			return nil
		})
		checkPodNetworking(t, ctx, cs, "h1", "h2")

		again := kforgeUp(t, ctx, l, editedPath, knownHosts, nil)
		if again.err != nil {
			t.Fatalf("up again: %v\n%s", again.err, again.stderr)
		}
		for _, n := range []string{"h1", "h2", "h3"} {
			if r := again.host(n); r.Action != fleet.ActionUnchanged || !strings.Contains(again.stderr, "["+n+"] matches the file") {
				t.Errorf("%s after the change was applied: %+v", n, r)
			}
		}
		timings = append(timings, fmt.Sprintf("no-op re-run of up that verifies every host's files: %s", again.took.Round(time.Millisecond)))

		// Drift: a flag added by hand to h1's apiserver manifest, then the original file.
		nodes["h1"].sh(ctx, `sed -i 's/^    - kube-apiserver$/&\n    - --v=2/' `+manifest)
		// The kubelet restarts the apiserver for the edit at once; up finds the cluster
		// through it, so wait for the edited apiserver to serve.
		waitFor(t, ctx, "the hand-edited apiserver to serve", 3*time.Minute, func() error {
			if args := apiserverArgs(ctx, nodes["h1"]); !strings.Contains(args, "--v=2") {
				return errors.New("the running kube-apiserver has no --v=2 yet")
			}
			body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
			if err != nil || string(body) != "ok" {
				return fmt.Errorf("/readyz: %q, %v", body, err)
			}
			return nil
		})
		back := kforgeUp(t, ctx, l, basic, knownHosts, nil, "--dry-run")
		if back.err != nil {
			t.Fatalf("up --dry-run with the original file: %v\n%s", back.err, back.stderr)
		}
		for _, want := range []string{"-    - --v=2", "-    - --max-requests-inflight=500", "-maxPods: 60"} {
			if !strings.Contains(back.stderr, want) {
				t.Errorf("the plan back to the original file lacks %q:\n%s", want, back.stderr)
			}
		}
		reverted := kforgeUp(t, ctx, l, basic, knownHosts, nil)
		if reverted.err != nil {
			t.Fatalf("up with the original file: %v\n%s", reverted.err, reverted.stderr)
		}
		if m := nodes["h1"].sh(ctx, "cat "+manifest); strings.Contains(m, "--v=2") || strings.Contains(m, "max-requests-inflight") {
			t.Errorf("h1's apiserver manifest still holds the drift or the edit:\n%s", m)
		}
		if nd, err := cs.CoreV1().Nodes().Get(ctx, "h3", metav1.GetOptions{}); err != nil || nd.Labels["tier"] != "" {
			t.Errorf("h3's label after the revert: %v, %v", nd.Labels, err)
		}
	})

	t.Run("a pod CIDR change is refused before anything changes", func(t *testing.T) {
		before := settledStates(t, ctx, cs, nodes, "h1", "h2", "h3")
		moved := write("pod-cidr.toml", mustReadFile(t, basic)+"\n[networking]\npod_cidr = \"10.200.0.0/16\"\n")
		for _, extra := range [][]string{{"--dry-run"}, nil} {
			r := kforgeUp(t, ctx, l, moved, knownHosts, nil, extra...)
			if r.err == nil || !strings.Contains(r.stderr, "networking.pod_cidr") || !strings.Contains(r.stderr, "Nothing was changed") {
				t.Errorf("up %v with a new pod CIDR: exit %v, want a refusal naming networking.pod_cidr:\n%s", extra, r.err, r.stderr)
			}
		}
		for _, n := range []string{"h1", "h2", "h3"} {
			if after := nodes[n].upState(ctx); after != before[n] {
				t.Errorf("the refused pod CIDR change changed %s:\nbefore:\n%s\nafter:\n%s", n, before[n], after)
			}
		}
	})

	t.Run("an unknown host key is refused", func(t *testing.T) {
		r := kforgeUp(t, ctx, l, grown, knownHostsNoH4, nil)
		if r.err == nil {
			t.Fatal("up went on with a host known_hosts does not know")
		}
		h4 := r.host("h4")
		if h4.Result != fleet.ResultFailed || !strings.Contains(h4.Error, "unknown ssh host key") || !strings.Contains(h4.Error, "SHA256:") {
			t.Errorf("h4: %+v, want failed with the unknown key's fingerprint", h4)
		}
		if left := nodes["h4"].sh(ctx, "ls -A /etc/kforge /var/lib/kforge /usr/local/bin | grep -v ':$' | grep -c . || true"); strings.TrimSpace(left) != "0" {
			t.Errorf("something was put on h4: %s", left)
		}
		for _, n := range []string{"h1", "h2", "h3"} {
			if a := r.host(n).Action; a != fleet.ActionUnchanged {
				t.Errorf("%s: action %q, want unchanged", n, a)
			}
		}
	})

	t.Run("up phase prepare-hosts, then --skip-phases join-workers", func(t *testing.T) {
		prep := kforgeUpCmd(t, ctx, l, []string{"up", "phase", "prepare-hosts"}, grown, knownHosts, nil)
		if prep.err != nil {
			t.Fatalf("up phase prepare-hosts: %v\n%s", prep.err, prep.stderr)
		}
		if h4 := prep.host("h4"); h4.Action != fleet.ActionJoinWorker || h4.Uploaded == 0 {
			t.Errorf("h4 after prepare-hosts: %+v, want a planned worker join with kforge and the bundle uploaded", h4)
		}
		if strings.Contains(prep.stderr, "kforge join") {
			t.Errorf("up phase prepare-hosts ran a join:\n%s", prep.stderr)
		}
		if got := nodes["h4"].sh(ctx, "test -x /usr/local/bin/kforge && test -f /etc/kforge/cluster.toml && echo prepared"); strings.TrimSpace(got) != "prepared" {
			t.Errorf("h4 holds no kforge or cluster.toml after prepare-hosts: %q", got)
		}
		skip := kforgeUp(t, ctx, l, grown, knownHosts, nil, "--skip-phases", "join-workers")
		if skip.err != nil {
			t.Fatalf("up --skip-phases join-workers: %v\n%s", skip.err, skip.stderr)
		}
		if h4 := skip.host("h4"); h4.Result != fleet.ResultSkipped || h4.Uploaded != 0 {
			t.Errorf("h4 with join-workers skipped: %+v, want skipped and nothing uploaded again", h4)
		}
		if !strings.Contains(skip.stderr, "[join-workers] skipped (--skip-phases)") {
			t.Errorf("up did not say it skipped join-workers:\n%s", skip.stderr)
		}
		if _, err := cs.CoreV1().Nodes().Get(ctx, "h4", metav1.GetOptions{}); err == nil {
			t.Error("h4 has a Node although join-workers was skipped")
		}
	})

	t.Run("growth touches only the new host", func(t *testing.T) {
		before := settledStates(t, ctx, cs, nodes, "h1", "h2", "h3")
		r := kforgeUp(t, ctx, l, grown, knownHosts, nil)
		if r.err != nil {
			t.Fatalf("up with h4 added: %v\n%s", r.err, r.stderr)
		}
		if a := r.host("h4"); a.Action != fleet.ActionJoinWorker || a.Result != fleet.ResultOK {
			t.Errorf("h4: %+v, want a worker join", a)
		}
		for _, n := range []string{"h1", "h2", "h3"} {
			if after := nodes[n].upState(ctx); after != before[n] {
				t.Errorf("adding h4 changed %s:\nbefore:\n%s\nafter:\n%s", n, before[n], after)
			}
		}
		waitFor(t, ctx, "h4 Ready", 3*time.Minute, func() error { return nodeReady(ctx, cs, "h4") })
		timings = append(timings, fmt.Sprintf("up adding one worker: %s", r.took.Round(100*time.Millisecond)))
	})

	t.Run("no second cluster: a control plane unreachable, an admin.conf the API refuses", func(t *testing.T) {
		before := settledStates(t, ctx, cs, nodes, "h2", "h3", "h4")
		// h1, the only control plane, is out of reach: up cannot tell that there is no
		// cluster, so it inits nothing.
		if err := killSSH(ctx, hs["h1"]); err != nil {
			t.Fatal(err)
		}
		r := kforgeUp(t, ctx, l, grown, knownHosts, nil)
		if err := hs["h1"].StartService(ctx, "sshd"); err != nil {
			t.Fatal(err)
		}
		if r.err == nil || !strings.Contains(r.stderr, "cannot tell whether a cluster exists") || !strings.Contains(r.stderr, "h1") {
			t.Errorf("up with h1 unreachable: exit %v, want a refusal naming h1:\n%s", r.err, r.stderr)
		}
		if h1 := r.host("h1"); h1.Result != fleet.ResultFailed {
			t.Errorf("h1: %+v, want failed as unreachable", h1)
		}
		for _, n := range []string{"h2", "h3", "h4"} {
			if h := r.host(n); h.Result != fleet.ResultSkipped {
				t.Errorf("%s: %+v, want skipped", n, h)
			}
		}
		if strings.Contains(r.stderr, "kforge init") {
			t.Errorf("up ran init with h1 unreachable:\n%s", r.stderr)
		}

		// h1's admin.conf holds a token the apiserver does not know: 401 is fatal.
		nodes["h1"].sh(ctx, `cp -p /etc/kubernetes/admin.conf /etc/kubernetes/admin.conf.e2e-keep &&
			sed -i -e '/client-key-data:/d' -e 's/client-certificate-data: .*/token: not-a-valid-token/' /etc/kubernetes/admin.conf`)
		r = kforgeUp(t, ctx, l, grown, knownHosts, nil)
		nodes["h1"].sh(ctx, "mv /etc/kubernetes/admin.conf.e2e-keep /etc/kubernetes/admin.conf")
		if r.err == nil || !strings.Contains(r.stderr, "refused admin.conf") || !strings.Contains(r.stderr, "Unauthorized") {
			t.Errorf("up with a rejected admin.conf: exit %v, want the 401 reported as fatal:\n%s", r.err, r.stderr)
		}
		if r.took > time.Minute {
			t.Errorf("up took %s to give up on a 401", r.took)
		}
		for _, n := range []string{"h2", "h3", "h4"} {
			if after := nodes[n].upState(ctx); after != before[n] {
				t.Errorf("a refused up changed %s:\nbefore:\n%s\nafter:\n%s", n, before[n], after)
			}
		}
		for _, n := range []string{"h1", "h2", "h3", "h4"} {
			if err := nodeReady(ctx, cs, n); err != nil {
				t.Errorf("after the refused runs: %v", err)
			}
		}
	})

	t.Run("HA, and a host lost in the middle", func(t *testing.T) {
		// Ctrl-C once the cluster is initialised, while h6 joins.
		var interrupted time.Time
		stopped := kforgeUp(t, ctx, l, ha, knownHosts, func(line string, p *os.Process) {
			if interrupted.IsZero() && strings.HasPrefix(line, "[h5] initialised the cluster") {
				interrupted = time.Now()
				if err := p.Signal(os.Interrupt); err != nil {
					t.Error(err)
				}
			}
		}, "--kubeconfig-out", haAdmin)
		if interrupted.IsZero() || stopped.err == nil {
			t.Fatalf("up was not interrupted after init (exit %v):\n%s", stopped.err, stopped.stderr)
		}
		if took := time.Since(interrupted); took > 30*time.Second {
			t.Errorf("up took %s to stop after Ctrl-C", took)
		}
		if h := stopped.host("h5"); h.Result != fleet.ResultOK {
			t.Errorf("h5 after the interrupted run: %+v", h)
		}
		timings = append(timings, fmt.Sprintf("up stopped %s after Ctrl-C", time.Since(interrupted).Round(100*time.Millisecond)))

		// The next run converges, except for h8, whose sshd dies in the middle of it.
		killed := false
		r := kforgeUp(t, ctx, l, ha, knownHosts, func(line string, _ *os.Process) {
			if !killed && strings.HasPrefix(line, "[h8] ") && strings.Contains(line, "preflight passed") {
				killed = true
				if err := killSSH(ctx, hs["h8"]); err != nil {
					t.Error(err)
				}
				t.Log("stopped h8's sshd and its sessions while up runs")
			}
		}, "--kubeconfig-out", haAdmin)
		if !killed {
			t.Fatalf("up never reached h8's upload:\n%s", r.stderr)
		}
		if r.err == nil {
			t.Fatalf("up succeeded although h8 was lost:\n%s", r.stderr)
		}
		if h8 := r.host("h8"); h8.Result != fleet.ResultFailed {
			t.Errorf("h8: %+v, want failed", h8)
		}
		if !strings.Contains(r.stderr, "h8:") {
			t.Errorf("the error does not name h8:\n%s", r.stderr)
		}
		for _, n := range []string{"h5", "h6", "h7"} {
			if h := r.host(n); h.Result != fleet.ResultOK {
				t.Errorf("%s: %+v, want ok", n, h)
			}
		}
		if a := r.host("h5").Action; a != fleet.ActionUnchanged {
			t.Errorf("h5 on the run after Ctrl-C: action %q, want unchanged", a)
		}
		if err := etcdHealthy(ctx, etcdVia(t, ctx, hs["h6"]), 3); err != nil {
			t.Errorf("after the HA up: %v", err)
		}
		timings = append(timings, fmt.Sprintf("up of an HA cluster after Ctrl-C (2 control-plane joins, 1 worker lost): %s", r.took.Round(100*time.Millisecond)))

		if err := hs["h8"].StartService(ctx, "sshd"); err != nil {
			t.Fatal(err)
		}
		again := kforgeUp(t, ctx, l, ha, knownHosts, nil, "--kubeconfig-out", haAdmin)
		if again.err != nil {
			t.Fatalf("up after h8 came back: %v\n%s", again.err, again.stderr)
		}
		if h8 := again.host("h8"); h8.Action != fleet.ActionJoinWorker || h8.Result != fleet.ResultOK {
			t.Errorf("h8: %+v, want joined", h8)
		}
		for _, n := range []string{"h5", "h6", "h7"} {
			if a := again.host(n).Action; a != fleet.ActionUnchanged {
				t.Errorf("%s: action %q on the re-run, want unchanged", n, a)
			}
		}
		hacs := clientFromFile(t, haAdmin)
		for _, n := range []string{"h5", "h6", "h7", "h8"} {
			waitFor(t, ctx, n+" Ready", 3*time.Minute, func() error { return nodeReady(ctx, hacs, n) })
		}
		timings = append(timings, fmt.Sprintf("up re-run that joins the lost worker: %s", again.took.Round(100*time.Millisecond)))
	})

	// Issue 11: an apiserver flag rolls over the three control planes one at a time, with
	// up killed (-9) in the middle and run again; /readyz is sampled on each apiserver
	// throughout.
	t.Run("a rollout on 3 control planes, killed and run again, takes one apiserver down at a time", func(t *testing.T) {
		haEdited := write("ha-edited.toml", mustReadFile(t, ha)+"\n[apiserver]\nextra_args = { max-requests-inflight = \"500\" }\n")
		w := watchAPIServers(t, ctx, haAdmin, []testbed.Host{hs["h5"], hs["h6"], hs["h7"]}, "")
		killed := false
		first := kforgeUp(t, ctx, l, haEdited, knownHosts, func(line string, p *os.Process) {
			if !killed && strings.HasPrefix(line, "[h5] reconfigured") {
				killed = true
				if err := p.Kill(); err != nil {
					t.Error(err)
				}
			}
		}, "--kubeconfig-out", haAdmin)
		if !killed || first.err == nil {
			w.stop()
			t.Fatalf("up was not killed after h5 was reconfigured (exit %v):\n%s", first.err, first.stderr)
		}
		second := kforgeUp(t, ctx, l, haEdited, knownHosts, nil, "--kubeconfig-out", haAdmin)
		w.stop()
		if second.err != nil {
			t.Fatalf("up after the kill: %v\n%s", second.err, second.stderr)
		}
		t.Log(w)
		timings = append(timings, fmt.Sprintf("rollout of an apiserver flag on 3 control planes, up killed after h5 then run again (%s): %s", w, (first.took+second.took).Round(100*time.Millisecond)))
		if m := w.maxDown(); m > 1 {
			t.Errorf("%d apiservers were down at once: %s", m, w)
		}
		for _, n := range []string{"h5", "h6", "h7"} {
			waitFor(t, ctx, n+"'s apiserver to run with the flag", 2*time.Minute, func() error {
				if args := apiserverArgs(ctx, nodes[n]); !strings.Contains(args, "--max-requests-inflight=500") {
					return fmt.Errorf("%s's kube-apiserver: %q", n, args)
				}
				return nil
			})
		}
		again := kforgeUp(t, ctx, l, haEdited, knownHosts, nil, "--kubeconfig-out", haAdmin)
		if again.err != nil {
			t.Fatalf("up once more: %v\n%s", again.err, again.stderr)
		}
		for _, n := range []string{"h5", "h6", "h7", "h8"} {
			if a := again.host(n).Action; a != fleet.ActionUnchanged {
				t.Errorf("%s after the rollout: action %q, want unchanged", n, a)
			}
		}
		if err := etcdHealthy(ctx, etcdVia(t, ctx, hs["h6"]), 3); err != nil {
			t.Errorf("after the rollout: %v", err)
		}
	})

	t.Run("reset -f of one worker over SSH", func(t *testing.T) {
		cmd := exec.CommandContext(ctx, l.Kforge, "reset", "-f", ha, "--hosts", "h8", "-i", l.TB.SSHKey(), "--known-hosts", knownHosts)
		cmd.Dir = dir
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kforge reset -f --hosts h8: %v\n%s", err, out)
		}
		timings = append(timings, fmt.Sprintf("reset -f of one worker: %s", time.Since(start).Round(100*time.Millisecond)))
		for _, want := range []string{"[h8] will reset", "[reset-workers] done", "[reset-control-planes] done"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("reset -f output lacks %q:\n%s", want, out)
			}
		}
		hacs := clientFromFile(t, haAdmin)
		waitFor(t, ctx, "h8's Node to be deleted", time.Minute, func() error {
			if _, err := hacs.CoreV1().Nodes().Get(ctx, "h8", metav1.GetOptions{}); err == nil {
				return errors.New("Node h8 is still there")
			}
			return nil
		})
		if got := nodes["h8"].sh(ctx, "ls /etc/kubernetes/kubelet.conf 2>/dev/null || echo gone"); strings.TrimSpace(got) != "gone" {
			t.Errorf("h8 still holds kubelet.conf after reset: %q", got)
		}
		for _, n := range []string{"h5", "h6", "h7"} {
			if err := nodeReady(ctx, hacs, n); err != nil {
				t.Errorf("after resetting h8: %v", err)
			}
		}
	})

	for _, line := range timings {
		t.Log(line)
	}
}

// apiserverArgs is the command line of the kube-apiserver running on n ("" if none).
func apiserverArgs(ctx context.Context, n *node) string {
	return n.sh(ctx, "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done | grep '^kube-apiserver ' || true")
}

func mustReadFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
