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
	dirs := Dirs{ManifestsDir: "/etc/kubernetes/manifests", KubeconfigDir: "/etc/kubernetes", CertDir: "/etc/kubernetes/pki"}
	withEtcd := dirs
	withEtcd.EtcdDataDir = "/data/etcd"
	paths := func(d Dirs) (files []string, ifEmpty []string) {
		for _, p := range Paths(d) {
			if p.IfEmpty {
				ifEmpty = append(ifEmpty, p.Path)
			} else {
				files = append(files, p.Path)
			}
		}
		return files, ifEmpty
	}
	got, ifEmpty := paths(withEtcd)
	for _, want := range []string{
		"/etc/kubernetes/manifests/etcd.yaml", "/etc/kubernetes/admin.conf", "/etc/kubernetes/kubelet.conf",
		"/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/pki/ca.key", "/etc/kubernetes/pki/etcd/peer.key", "/etc/kubernetes/pki/sa.pub",
		"/var/lib/kubelet/config.yaml", "/var/lib/kubelet/pki", "/var/lib/kubelet/pods",
		"/var/lib/cni/networks", "/etc/cni/net.d/10-flannel.conflist", "/run/flannel/subnet.env",
		"/data/etcd/member", "/var/lib/kforge/restart-pending", "/var/lib/kforge/init-in-progress",
		"/etc/kubernetes/pki/encryption-config.yaml", "/etc/kubernetes/apiserver/audit-policy.yaml",
		"/etc/kubernetes/apiserver/admission-config.yaml", "/etc/kubernetes/apiserver/authentication-config.yaml",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("Paths lacks %s", want)
		}
	}
	if diff := cmp.Diff([]string{"/etc/kubernetes/pki/etcd", "/etc/kubernetes/apiserver"}, ifEmpty); diff != "" {
		t.Errorf("directories removed only when empty (-want +got):\n%s", diff)
	}
	// Never a whole directory that may hold what kforge did not create.
	for _, p := range got {
		for _, dir := range []string{"/etc/kubernetes", "/etc/kubernetes/pki", "/var/lib/kubelet", "/var/lib/cni", "/etc/cni/net.d", "/data/etcd", "/var/lib/kforge"} {
			if p == dir {
				t.Errorf("Paths removes all of %s", dir)
			}
		}
	}
	external, _ := paths(dirs)
	if slices.ContainsFunc(external, func(p string) bool { return strings.HasPrefix(p, "/data/etcd") }) {
		t.Errorf("with external etcd, Paths still removes local etcd data: %v", external)
	}
}

// noMounts is a mount table with nothing under the test's paths.
func noMounts() (string, error) { return "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n", nil }

// TestResetRemovesOnlyKnownNames: files kforge and the kubelet did not create, beside
// the ones they did, survive reset.
func TestResetRemovesOnlyKnownNames(t *testing.T) {
	root := t.TempDir()
	at := func(p string) string { return filepath.Join(root, p) }
	ours := []string{"/var/lib/etcd/member/snap/db", "/var/lib/kubelet/config.yaml", "/var/lib/kubelet/pods/a/x", "/etc/kubernetes/pki/ca.key", "/etc/kubernetes/pki/etcd/ca.key"}
	theirs := []string{"/var/lib/etcd/lost+found/x", "/var/lib/kubelet/operator-notes", "/etc/kubernetes/pki/my-own.pem"}
	for _, f := range append(slices.Clone(ours), theirs...) {
		os.MkdirAll(filepath.Dir(at(f)), 0o700)
		if err := os.WriteFile(at(f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dirs := Dirs{ManifestsDir: "/etc/kubernetes/manifests", KubeconfigDir: "/etc/kubernetes", CertDir: "/etc/kubernetes/pki", EtcdDataDir: "/var/lib/etcd"}
	for s := range removeSteps(Paths(dirs), at, noMounts, StatFSID) {
		if err := s.Do(); err != nil {
			t.Errorf("%s: %v", s.Desc, err)
		}
	}
	for _, f := range append(ours, "/etc/kubernetes/pki/etcd") {
		if _, err := os.Lstat(at(f)); err == nil {
			t.Errorf("%s is still there", f)
		}
	}
	for _, f := range theirs {
		if _, err := os.Lstat(at(f)); err != nil {
			t.Errorf("%s, which kforge did not create, is gone: %v", f, err)
		}
	}
}

func TestParseMountinfo(t *testing.T) {
	b, err := os.ReadFile("testdata/mountinfo-kubelet")
	if err != nil {
		t.Fatal(err)
	}
	mounts := ParseMountinfo(string(b))
	if len(mounts) != 8 {
		t.Fatalf("parsed %d mounts, want 8", len(mounts))
	}
	want := Mount{ID: 42, Parent: 40, Point: "/var/lib/kubelet/pods/0f1e/volumes/kubernetes.io~csi/pvc 1/mount", FSType: "ext4", Source: "/dev/sdc1"}
	if diff := cmp.Diff(want, mounts[6]); diff != "" {
		t.Errorf("the CSI volume's line (-want +got):\n%s", diff)
	}
	var below []string
	for _, m := range AtOrBelow(mounts, "/var/lib/kubelet/pods") {
		below = append(below, m.Point)
	}
	if diff := cmp.Diff([]string{"/var/lib/kubelet/pods/0f1e/volumes/kubernetes.io~projected/kube-api-access-x",
		"/var/lib/kubelet/pods/0f1e/volumes/kubernetes.io~csi/pvc 1/mount"}, below); diff != "" {
		t.Errorf("AtOrBelow /var/lib/kubelet/pods (-want +got):\n%s", diff)
	}
	if m := AtOrBelow(mounts, "/var/lib/etcd/member"); len(m) != 0 {
		t.Errorf("a disk mounted at /var/lib/etcd counts as under its member directory: %v", m)
	}
}

// TestRemoveRefusesWhatIsStillMounted: a volume the unmount left behind (the mount table
// is read when the removal runs) stops the removal of the directory it is in, with the
// mount named; nothing of that directory is removed.
func TestRemoveRefusesWhatIsStillMounted(t *testing.T) {
	fixture, err := os.ReadFile("testdata/mountinfo-kubelet")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	// The fixture's mount points are host paths; the test's root stands in for /.
	mountinfo := func() (string, error) {
		return strings.ReplaceAll(string(fixture), " /var/lib/", " "+root+"/var/lib/"), nil
	}
	at := func(p string) string { return filepath.Join(root, p) }
	secret := at("/var/lib/kubelet/pods/0f1e/volumes/kubernetes.io~csi/pvc 1/mount/data")
	os.MkdirAll(filepath.Dir(secret), 0o700)
	os.WriteFile(secret, []byte("x"), 0o600)
	os.MkdirAll(at("/var/lib/etcd/member"), 0o700)

	var errs []error
	for s := range removeSteps([]Target{{Path: "/var/lib/kubelet/pods"}, {Path: "/var/lib/etcd/member"}}, at, mountinfo, StatFSID) {
		if err := s.Do(); err != nil {
			errs = append(errs, err)
		}
	}
	var me *MountedError
	if len(errs) != 1 || !errors.As(errs[0], &me) {
		t.Fatalf("errors %v, want one refusal of the pods directory", errs)
	}
	if msg := errs[0].Error(); !strings.Contains(msg, "refusing to remove "+at("/var/lib/kubelet/pods")) ||
		!strings.Contains(msg, "kube-api-access-x (tmpfs tmpfs) is mounted there; unmount it (umount ") {
		t.Errorf("refusal %q does not name the directory, the mount and what to do", msg)
	}
	if _, err := os.Stat(secret); err != nil {
		t.Errorf("a file in a mounted volume was removed: %v", err)
	}
	if _, err := os.Stat(at("/var/lib/etcd/member")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("etcd's member directory under a disk mounted at /var/lib/etcd is still there: %v", err)
	}
}

// TestRemoveTreeStopsAtAnotherMount: the walk never crosses into another filesystem or
// mount (a bind mount has its own mount ID on the same device); the rest is removed.
func TestRemoveTreeStopsAtAnotherMount(t *testing.T) {
	root := t.TempDir()
	pods := filepath.Join(root, "pods")
	for _, f := range []string{"a/volumes/v/data", "a/etc-hosts", "b/x"} {
		os.MkdirAll(filepath.Dir(filepath.Join(pods, f)), 0o700)
		os.WriteFile(filepath.Join(pods, f), []byte("x"), 0o600)
	}
	mounted := filepath.Join(pods, "a/volumes/v")
	fsID := func(p string) (FSID, error) {
		id, err := StatFSID(p)
		if p == mounted || strings.HasPrefix(p, mounted+"/") {
			id.Mount++ // as a bind mount: same device, another mount
		}
		return id, err
	}
	err := removeTree(pods, fsID)
	var ce *CrossMountError
	if !errors.As(err, &ce) || ce.Path != mounted {
		t.Fatalf("removeTree: %v, want a refusal at %s", err, mounted)
	}
	if _, err := os.Stat(filepath.Join(mounted, "data")); err != nil {
		t.Errorf("the file on the other mount was removed: %v", err)
	}
	for _, gone := range []string{"a/etc-hosts", "b"} {
		if _, err := os.Lstat(filepath.Join(pods, gone)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there: %v", gone, err)
		}
	}
}

func TestRemoveTreeRemovesALinkNotItsTarget(t *testing.T) {
	root := t.TempDir()
	target := filepath.Join(root, "elsewhere")
	os.MkdirAll(target, 0o700)
	os.WriteFile(filepath.Join(target, "keep"), []byte("x"), 0o600)
	dir := filepath.Join(root, "pods")
	os.MkdirAll(dir, 0o700)
	if err := os.Symlink(target, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := removeTree(dir, StatFSID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(target, "keep")); err != nil {
		t.Errorf("the link's target lost its file: %v", err)
	}
}

func TestRemoveStepsLookWhenTheirTurnComes(t *testing.T) {
	root := t.TempDir()
	at := func(p string) string { return filepath.Join(root, p) }
	if err := os.MkdirAll(at("/var/lib/kubelet/pods/etcd/member"), 0o700); err != nil {
		t.Fatal(err)
	}
	var descs []string
	for s := range removeSteps([]Target{{Path: "/var/lib/kubelet/pods"}, {Path: "/var/lib/kubelet/pods/etcd/member"}, {Path: "/missing"}}, at, noMounts, StatFSID) {
		descs = append(descs, s.Desc)
		if err := s.Do(); err != nil {
			t.Errorf("%s: %v", s.Desc, err)
		}
	}
	if diff := cmp.Diff([]string{"remove /var/lib/kubelet/pods"}, descs); diff != "" {
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
