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
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kforge/kforge/e2e/lab"
	"github.com/kforge/kforge/e2e/testbed"
	"github.com/kforge/kforge/fleet"
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

// upState fingerprints what up and the cluster put on a host.
func (n *node) upState(ctx context.Context) string {
	files, containers := n.stateOf(ctx)
	more := n.sh(ctx, `find /etc/kforge /var/lib/kforge /usr/local/bin -type f -printf '%p %T@ %s\n' 2>/dev/null | sort`)
	return files + more + "containers:\n" + containers
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
		time.Sleep(2 * time.Second) // containerd removes the tasks just after the pods
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
		before := map[string]string{}
		for _, n := range []string{"h1", "h2", "h3"} {
			before[n] = nodes[n].upState(ctx)
		}
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
		before := map[string]string{}
		for _, n := range []string{"h1", "h2", "h3"} {
			before[n] = nodes[n].upState(ctx)
		}
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
		before := map[string]string{}
		for _, n := range []string{"h2", "h3", "h4"} {
			before[n] = nodes[n].upState(ctx)
		}
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
