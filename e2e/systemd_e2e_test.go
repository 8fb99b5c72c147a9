//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kforge/kforge/e2e/testbed"
)

// TestSystemdHosts is the production path: kforge up from this machine on two hosts that
// boot systemd as their PID 1 (KindSystemd: a private Debian root under systemd-nspawn).
// h1 is initialized as the control plane and h2 joins as a worker; both must go Ready
// with the kubelet running as kforge's systemd unit and containerd as Debian's service,
// and kforge's own supervisor nowhere.
func TestSystemdHosts(t *testing.T) {
	ctx := t.Context()
	l := newLabOf(t, ctx, 2, testbed.KindSystemd)
	hs := l.TB.Hosts()
	for _, h := range hs {
		if h.Kind() != testbed.KindSystemd {
			t.Fatalf("host %s is a %s host, want systemd", h.Name, h.Kind())
		}
		// PID 1 of the host is systemd, not the testbed's init.
		if comm := strings.TrimSpace(hostSh(t, ctx, h, "cat /proc/1/comm")); comm != "systemd" {
			t.Fatalf("PID 1 of %s is %q, want systemd", h.Name, comm)
		}
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "systemd.toml")
	if err := os.WriteFile(cfg, []byte(l.UpConfig("systemd", "", 1, hs...)), 0o600); err != nil {
		t.Fatal(err)
	}
	r := kforgeUp(t, ctx, l, cfg, l.TB.KnownHosts(), nil)
	if r.err != nil {
		t.Fatalf("kforge up: %v\n%s", r.err, r.stderr)
	}
	cs := clientFromFile(t, filepath.Join(dir, "admin.conf"))
	for _, h := range hs {
		took := waitFor(t, ctx, h.Name+" Ready", 3*time.Minute, func() error { return nodeReady(ctx, cs, h.Name) })
		t.Logf("%s Ready %s after up returned", h.Name, took.Round(100*time.Millisecond))
	}
	waitFor(t, ctx, "the system pods", 3*time.Minute, func() error { return systemPodsReady(ctx, cs, hs[0].Name) })

	for _, h := range hs {
		// systemctl is-active exits non-zero unless every unit is active.
		if out, errOut, err := h.Exec(ctx, nil, "systemctl", "is-active", "kubelet", "containerd"); err != nil || string(out) != "active\nactive\n" {
			t.Errorf("%s: systemctl is-active kubelet containerd says %q (%v) %s", h.Name, out, err, errOut)
		}
		// The kubelet is kforge's unit and drop-in; containerd is the package's unit,
		// which kforge configured and restarted but did not replace.
		checkUnit(t, ctx, h, "kubelet", "/etc/systemd/system/kubelet.service", "/etc/systemd/system/kubelet.service.d/10-kforge.conf")
		checkUnit(t, ctx, h, "containerd", "/lib/systemd/system/containerd.service", "")
		for _, unit := range []string{"kubelet", "containerd"} {
			// The service's main process is in the unit's cgroup: systemd started it.
			cg := hostSh(t, ctx, h, fmt.Sprintf(`grep name=systemd: /proc/$(systemctl show -p MainPID --value %s)/cgroup`, unit))
			if !strings.Contains(cg, "/system.slice/"+unit+".service") {
				t.Errorf("%s: %s's main process is not in its unit's cgroup: %s", h.Name, unit, cg)
			}
		}
		// No kforge supervisor runs: systemd is the service manager.
		if out := hostSh(t, ctx, h, `pgrep -a -f 'supervis[e] --name' || true`); out != "" {
			t.Errorf("%s: kforge supervise processes run beside systemd: %s", h.Name, out)
		}
	}
}

// checkUnit checks which unit file (and drop-in, if dropIn is set) systemd loaded for unit.
func checkUnit(t *testing.T, ctx context.Context, h testbed.Host, unit, fragment, dropIn string) {
	t.Helper()
	out := hostSh(t, ctx, h, "systemctl show -p FragmentPath -p DropInPaths "+unit)
	if !strings.Contains(out, "FragmentPath="+fragment+"\n") {
		t.Errorf("%s: the %s unit is not %s:\n%s", h.Name, unit, fragment, out)
	}
	if dropIn != "" && !strings.Contains(out, dropIn) {
		t.Errorf("%s: the %s unit lacks the drop-in %s:\n%s", h.Name, unit, dropIn, out)
	}
}

// hostSh runs a shell script inside a host and returns its output.
func hostSh(t *testing.T, ctx context.Context, h testbed.Host, script string) string {
	t.Helper()
	out, errOut, err := h.Exec(ctx, nil, "sh", "-c", script)
	if err != nil {
		t.Fatalf("%s on %s: %v\n%s%s", script, h.Name, err, out, errOut)
	}
	return string(out)
}
