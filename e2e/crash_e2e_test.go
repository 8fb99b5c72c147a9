//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// crashMatrix is the crash matrix of issue 10 on a running single-node cluster: it changes
// the kubelet's configuration, containerd's configuration and a static pod's extra args,
// runs init built with the crashpoints tag so that it kills itself with SIGKILL at each
// point between recording a pending restart, writing the files and restarting the service,
// then runs init again, and checks each time that the running service uses the new
// configuration. It returns how many kills it ran.
func crashMatrix(t *testing.T, ctx context.Context, n *node, baseConfig string, initArgs []string) int {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	crashKforge := filepath.Join(n.lab.TB.Dir(), "lab", "kforge-crashpoints")
	build := exec.CommandContext(ctx, "go", "build", "-tags", "crashpoints", "-o", crashKforge, ".")
	build.Dir = root
	build.Env = append(build.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building kforge with crash points: %v\n%s", err, out)
	}
	cs := n.adminClient(ctx)
	name := n.h.Name
	maxPods, tolerance := 110, 300
	writeConfig := func() {
		t.Helper()
		cfg := baseConfig + fmt.Sprintf("[kubelet]\nmax_pods = %d\n\n[apiserver]\nextra_args = { \"default-not-ready-toleration-seconds\" = \"%d\" }\n", maxPods, tolerance)
		if err := n.lab.WriteConfig(ctx, n.h, cfg); err != nil {
			t.Fatal(err)
		}
	}
	// crashAt runs init with the crash point set and checks that it died by SIGKILL there.
	crashAt := func(point string) {
		t.Helper()
		script := fmt.Sprintf("KFORGE_CRASHPOINT=%s exec %s %s", point, crashKforge, strings.Join(initArgs, " "))
		out, errOut, err := n.h.Exec(ctx, nil, "sh", "-c", script)
		if err == nil || !strings.Contains(string(errOut), "crashpoint "+point+": kill -9") {
			t.Fatalf("init with KFORGE_CRASHPOINT=%s did not die there (err %v):\n%s\n%s", point, err, out, errOut)
		}
	}
	rerun := func() string {
		t.Helper()
		out, err := n.run(ctx, initArgs...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// pid is the oldest process named process on the host; "" when none runs (containerd
	// between being killed and its PID 1 starting it again).
	pid := func(process string) string {
		out, _, err := n.h.Exec(ctx, nil, "pgrep", "-xo", process)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	// startedAfter checks that process pid started no earlier than file's last change.
	startedAfter := func(process, file string) error {
		p := pid(process)
		if p == "" {
			return fmt.Errorf("no %s runs", process)
		}
		out, _, err := n.h.Exec(ctx, nil, "sh", "-c", fmt.Sprintf("echo $(date +%%s) $(ps -o etimes= -p %s) $(stat -c %%Y %s)", p, file))
		if err != nil {
			return err
		}
		fields := strings.Fields(string(out))
		if len(fields) != 3 {
			return fmt.Errorf("reading the times of %s (pid %s) and %s: %q", process, p, file, fields)
		}
		now, _ := strconv.Atoi(fields[0])
		elapsed, _ := strconv.Atoi(fields[1])
		mtime, _ := strconv.Atoi(fields[2])
		if started := now - elapsed; started < mtime {
			return fmt.Errorf("%s (pid %s) started at %d, before %s changed at %d: it runs the old configuration", process, p, started, file, mtime)
		}
		return nil
	}
	kills := 0

	// The kubelet: max_pods goes to config.yaml; the Node's pod capacity shows which one
	// the running kubelet read.
	for _, point := range []string{"service/kubelet/marked", "service/kubelet/written", "service/kubelet/restarted"} {
		maxPods++
		writeConfig()
		before := pid("kubelet")
		crashAt(point)
		kills++
		if point != "service/kubelet/restarted" && pid("kubelet") != before {
			t.Errorf("%s: the kubelet restarted although kforge died before restarting it", point)
		}
		time.Sleep(1100 * time.Millisecond) // a restart now starts a second after the write
		out := rerun()
		if point != "service/kubelet/restarted" && !strings.Contains(out, "started the kubelet") {
			t.Errorf("%s: the re-run did not restart the kubelet:\n%s", point, out)
		}
		if err := startedAfter("kubelet", "/var/lib/kubelet/config.yaml"); err != nil {
			t.Errorf("%s: %v", point, err)
		}
		want := int64(maxPods)
		waitFor(t, ctx, fmt.Sprintf("the Node's pod capacity to be %d after a kill at %s", want, point), 2*time.Minute, func() error {
			return nodePods(ctx, cs, name, want)
		})
		t.Logf("killed at %s; the re-run converged: the kubelet runs with max_pods %d", point, maxPods)
	}

	// containerd: the file on the host becomes one an earlier kforge wrote (recorded as
	// kforge's, with a different max_container_log_line_size), containerd is restarted on
	// it, and init must bring back the current one and restart containerd.
	const cfgPath, recordPath = "/etc/containerd/config.toml", "/etc/containerd/config.toml.kforge-sha256"
	for _, point := range []string{"service/containerd/marked", "service/containerd/written"} {
		current := n.sh(ctx, "cat "+cfgPath)
		const cri = "[plugins.\"io.containerd.grpc.v1.cri\"]\n"
		if !strings.Contains(current, cri) {
			t.Fatalf("%s has no CRI table:\n%s", cfgPath, current)
		}
		older := strings.Replace(current, cri, cri+"  max_container_log_line_size = 12345\n", 1)
		sum := sha256.Sum256([]byte(older))
		if _, errOut, err := n.h.Exec(ctx, strings.NewReader(older), "sh", "-c",
			fmt.Sprintf("cat > %s && echo %s >> %s && kill $(cat /run/containerd.pid)", cfgPath, hex.EncodeToString(sum[:]), recordPath)); err != nil {
			t.Fatalf("installing an older kforge containerd config: %v: %s", err, errOut)
		}
		waitFor(t, ctx, "containerd to run the older config", time.Minute, func() error { return startedAfter("containerd", cfgPath) })
		before := pid("containerd")
		crashAt(point)
		kills++
		if pid("containerd") != before {
			t.Errorf("%s: containerd restarted although kforge died before restarting it", point)
		}
		time.Sleep(1100 * time.Millisecond)
		out := rerun()
		if !strings.Contains(out, "containerd") {
			t.Errorf("%s: the re-run said nothing of containerd:\n%s", point, out)
		}
		if got := n.sh(ctx, "cat "+cfgPath); got != current {
			t.Errorf("%s: the re-run left containerd's config as:\n%s", point, got)
		}
		if err := startedAfter("containerd", cfgPath); err != nil {
			t.Errorf("%s: %v", point, err)
		}
		t.Logf("killed at %s; the re-run converged: containerd runs the current config", point)
	}
	waitFor(t, ctx, "the node Ready after the containerd restarts", 3*time.Minute, func() error { return nodeReady(ctx, cs, name) })

	// A static pod: the apiserver's extra args go to its manifest; the kubelet applies a
	// written manifest on its own, and a killed init must still end with it running.
	for range 2 {
		tolerance++
		writeConfig()
		crashAt("control-plane/kube-apiserver/written")
		kills++
		rerun()
		flag := fmt.Sprintf("--default-not-ready-toleration-seconds=%d", tolerance)
		waitFor(t, ctx, "the apiserver to run with "+flag, 3*time.Minute, func() error {
			if cmd := n.sh(ctx, "cat /proc/$(pgrep -xn kube-apiserver)/cmdline | tr '\\0' ' ' || true"); !strings.Contains(cmd, flag) {
				return fmt.Errorf("the running apiserver lacks %s", flag)
			}
			return nil
		})
		t.Logf("killed after writing the apiserver manifest; the apiserver runs with %s", flag)
	}
	cs = n.adminClient(ctx)
	waitFor(t, ctx, "every system pod Ready after the crash matrix", 4*time.Minute, func() error { return systemPodsReady(ctx, cs, name) })
	if err := n.lab.WriteConfig(ctx, n.h, baseConfig); err != nil {
		t.Fatal(err)
	}
	return kills
}

// nodePods checks that the Node reports a pod capacity of want.
func nodePods(ctx context.Context, cs kubernetes.Interface, name string, want int64) error {
	nd, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if got := nd.Status.Capacity.Pods().Value(); got != want {
		return fmt.Errorf("node %s has pod capacity %d, want %d", name, got, want)
	}
	return nil
}
