package nodecleanup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDropChains(t *testing.T) {
	save := `*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:FLANNEL-POSTRTG - [0:0]
:DOCKER - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG
-A POSTROUTING -s 172.17.0.0/16 -j MASQUERADE
-A KUBE-SERVICES -d 10.96.0.1/32 -j KUBE-SVC-X
-A DOCKER -i docker0 -j RETURN
COMMIT
`
	want := `*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A POSTROUTING -s 172.17.0.0/16 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
COMMIT
`
	got, n := dropChains([]byte(save), ownedChain)
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("dropChains (-want +got):\n%s", diff)
	}
	if n != 5 {
		t.Errorf("removed %d lines, want 5", n)
	}
}

func TestRemoveContentsKeepsTheDirectory(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "member", "snap"), 0o700)
	os.WriteFile(filepath.Join(dir, "member", "snap", "db"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(dir, "file"), []byte("x"), 0o600)
	if err := removeContents(dir); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Fatalf("after removeContents: %v entries, %v", len(entries), err)
	}
	f := filepath.Join(dir, "single")
	os.WriteFile(f, []byte("x"), 0o600)
	if err := removeContents(f); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f); err == nil {
		t.Fatal("removeContents left a file")
	}
}

func TestMountsToUnmount(t *testing.T) {
	line := func(id int, mp string) string {
		return fmt.Sprintf("%d 1 0:1 / %s rw shared:1 - tmpfs tmpfs rw", id, mp)
	}
	tests := []struct {
		name string
		mnts []string
		want []string
	}{
		{name: "the dir itself is a mount: kept", mnts: []string{line(1, "/"), line(2, "/var/lib/kubelet")}},
		{name: "pod volumes below go, deepest first",
			mnts: []string{line(2, "/var/lib/kubelet"), line(3, "/var/lib/kubelet/pods/a/volumes/x"), line(4, "/var/lib/kubelet/pods/a")},
			want: []string{"/var/lib/kubelet/pods/a/volumes/x", "/var/lib/kubelet/pods/a"}},
		{name: "the kubelet's self-bind on top goes, the lowest stays",
			mnts: []string{line(2, "/var/lib/kubelet"), line(3, "/var/lib/kubelet")},
			want: []string{"/var/lib/kubelet"}},
		{name: "a sibling with the same prefix is not below", mnts: []string{line(2, "/var/lib/kubelet-other")}},
		{name: "escaped names are decoded, a mount listed twice goes once",
			mnts: []string{line(2, `/var/lib/kubelet/pods/a/volumes/my\040vol`), line(3, `/var/lib/kubelet/pods/a/volumes/my\040vol`)},
			want: []string{"/var/lib/kubelet/pods/a/volumes/my vol"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mountsToUnmount(strings.Join(tc.mnts, "\n"), "/var/lib/kubelet")
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("mountsToUnmount (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPaths(t *testing.T) {
	base := []string{
		"/etc/kubernetes/manifests/etcd.yaml", "/etc/kubernetes/manifests/kube-apiserver.yaml",
		"/etc/kubernetes/manifests/kube-controller-manager.yaml", "/etc/kubernetes/manifests/kube-scheduler.yaml",
		"/etc/kubernetes/admin.conf", "/etc/kubernetes/super-admin.conf", "/etc/kubernetes/kubelet.conf",
		"/etc/kubernetes/controller-manager.conf", "/etc/kubernetes/scheduler.conf", "/etc/kubernetes/bootstrap-kubelet.conf",
		"/etc/kubernetes/pki", "/var/lib/kubelet", "/var/lib/cni", "/etc/cni/net.d", "/run/flannel", "/var/lib/kube-proxy",
	}
	dirs := Dirs{ManifestsDir: "/etc/kubernetes/manifests", KubeconfigDir: "/etc/kubernetes", CertDir: "/etc/kubernetes/pki"}
	tests := []struct {
		name string
		dirs Dirs
		want []string
	}{
		{name: "external etcd", dirs: dirs, want: base},
		{name: "local etcd: its data too", dirs: Dirs{ManifestsDir: dirs.ManifestsDir, KubeconfigDir: dirs.KubeconfigDir,
			CertDir: dirs.CertDir, EtcdDataDir: "/data/etcd"}, want: append(slices.Clone(base), "/data/etcd")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Paths(tc.dirs)); diff != "" {
				t.Errorf("Paths (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRemoveStepsSkipMissingPathsAndKeepDirectories(t *testing.T) {
	root := t.TempDir()
	at := func(p string) string { return filepath.Join(root, p) }
	for _, f := range []string{"/etc/kubernetes/admin.conf", "/var/lib/etcd/member/snap/db"} {
		if err := os.MkdirAll(filepath.Dir(at(f)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(at(f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var descs []string
	for s := range removeSteps([]string{"/etc/kubernetes/admin.conf", "/etc/kubernetes/kubelet.conf", "/var/lib/etcd"}, at) {
		descs = append(descs, s.Desc)
		if err := s.Do(); err != nil {
			t.Errorf("%s: %v", s.Desc, err)
		}
	}
	if diff := cmp.Diff([]string{"remove /etc/kubernetes/admin.conf", "remove /var/lib/etcd"}, descs); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if _, err := os.Lstat(at("/etc/kubernetes/admin.conf")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("admin.conf is still there: %v", err)
	}
	if entries, err := os.ReadDir(at("/var/lib/etcd")); err != nil || len(entries) != 0 {
		t.Errorf("the etcd data directory: %d entries, %v; want it empty and kept", len(entries), err)
	}
}

func TestRemoveStepsLookWhenTheirTurnComes(t *testing.T) {
	root := t.TempDir()
	at := func(p string) string { return filepath.Join(root, p) }
	if err := os.MkdirAll(at("/var/lib/kubelet/etcd/member"), 0o700); err != nil {
		t.Fatal(err)
	}
	var descs []string
	for s := range removeSteps([]string{"/var/lib/kubelet", "/var/lib/kubelet/etcd"}, at) {
		descs = append(descs, s.Desc)
		if err := s.Do(); err != nil {
			t.Errorf("%s: %v", s.Desc, err)
		}
	}
	if diff := cmp.Diff([]string{"remove /var/lib/kubelet"}, descs); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
}

type flakyRuntime struct {
	failures int
	calls    int
}

func (f *flakyRuntime) RemoveSandbox(context.Context, string) error {
	f.calls++
	if f.calls <= f.failures {
		return fmt.Errorf("removing pod sandbox: container is in CONTAINER_CREATED state (attempt %d)", f.calls)
	}
	return nil
}

func TestRemoveSandbox(t *testing.T) {
	tests := []struct {
		name      string
		failures  int
		cancelled bool
		wantCalls int
		wantErr   string
	}{
		{name: "removed at once", wantCalls: 1},
		{name: "a container still starting: removed on the next try", failures: 1, wantCalls: 2},
		{name: "cancelled: the last error, no more tries", failures: 5, cancelled: true, wantCalls: 1,
			wantErr: "removing pod sandbox: container is in CONTAINER_CREATED state (attempt 1)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tc.cancelled {
				cancel()
			}
			f := &flakyRuntime{failures: tc.failures}
			err := removeSandbox(ctx, f, "abc")
			if tc.wantErr == "" && err != nil {
				t.Fatalf("removeSandbox: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("removeSandbox error = %v, want %q", err, tc.wantErr)
			}
			if f.calls != tc.wantCalls {
				t.Errorf("RemoveSandbox called %d times, want %d", f.calls, tc.wantCalls)
			}
		})
	}
}

func TestSandboxStepsWarnWhenTheRuntimeDoesNotAnswer(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var warnings []error
	var steps []string
	for s := range sandboxSteps(ctx, "unix://"+filepath.Join(t.TempDir(), "containerd.sock"), func(err error) { warnings = append(warnings, err) }) {
		steps = append(steps, s.Desc)
	}
	if len(steps) != 0 {
		t.Errorf("steps %v without a runtime, want none", steps)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0].Error(), "cannot list pods") ||
		!strings.HasSuffix(warnings[0].Error(), "is containerd running? Pods were left alone") {
		t.Errorf("warnings = %v, want one saying the pods were left alone", warnings)
	}
}
