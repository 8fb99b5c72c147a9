package overlay

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func readT(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOverlaySeesTheHostAndListsOnlyWhatDiffers(t *testing.T) {
	base, scratch := t.TempDir(), t.TempDir()
	write(t, base+"/etc/kubernetes/manifests/kube-apiserver.yaml", "a: 1\nb: 2\nc: 3\n", 0o600)
	write(t, base+"/etc/kubernetes/manifests/etcd.yaml", "etcd: 1\n", 0o600)
	write(t, base+"/etc/kubernetes/pki/ca.crt", "CA\n", 0o644)
	write(t, base+"/etc/kubernetes/pki/etcd/ca.crt", "ETCD CA\n", 0o644)
	write(t, base+"/etc/kubernetes/pki/apiserver.key", "-----BEGIN EC PRIVATE KEY-----\nold\n", 0o600)
	write(t, base+"/var/lib/kubelet/config.yaml", "maxPods: 110\n", 0o644)
	o := New(base, scratch)

	// A directory is filled from the host: a run reading the cert directory sees the CA.
	pki := o.Path("/etc/kubernetes/pki")
	if got := readT(t, filepath.Join(pki, "etcd/ca.crt")); got != "ETCD CA\n" {
		t.Fatalf("etcd/ca.crt under the filled cert directory = %q", got)
	}
	// A file is filled from the host the first time; the run's writes then win.
	api := o.Path("/etc/kubernetes/manifests/kube-apiserver.yaml")
	if got := readT(t, api); got != "a: 1\nb: 2\nc: 3\n" {
		t.Fatalf("filled manifest = %q", got)
	}
	write(t, api, "a: 1\nb: 20\nc: 3\n", 0o600)
	if got := readT(t, o.Path("/etc/kubernetes/manifests/kube-apiserver.yaml")); got != "a: 1\nb: 20\nc: 3\n" {
		t.Fatalf("a second Path replaced what the run wrote: %q", got)
	}
	// Rewritten the same: no change.
	write(t, o.Path("/etc/kubernetes/manifests/etcd.yaml"), "etcd: 1\n", 0o600)
	// A new file, a key, a mode change.
	write(t, o.Path("/etc/kubernetes/apiserver/audit-policy.yaml"), "rules: []\n", 0o600)
	write(t, o.Path("/etc/kubernetes/pki/apiserver.key"), "-----BEGIN EC PRIVATE KEY-----\nnew\n", 0o600)
	kc := o.Path("/var/lib/kubelet/config.yaml")
	if err := os.Chmod(kc, 0o600); err != nil {
		t.Fatal(err)
	}

	changes, err := o.Changes()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]FileChange{}
	for _, c := range changes {
		got[c.Path] = c
	}
	if len(got) != 4 {
		t.Errorf("changes = %+v, want 4", changes)
	}
	if c := got["/etc/kubernetes/manifests/kube-apiserver.yaml"]; c.Action != Update || !strings.Contains(c.Diff, "-b: 2\n+b: 20\n") || c.OldSHA256 == c.NewSHA256 {
		t.Errorf("manifest change = %+v", c)
	}
	if c := got["/etc/kubernetes/apiserver/audit-policy.yaml"]; c.Action != Create || !strings.Contains(c.Diff, "+rules: []") || c.NewMode != "0600" {
		t.Errorf("new file = %+v", c)
	}
	if c := got["/etc/kubernetes/pki/apiserver.key"]; c.Action != Update || !c.Secret || c.Diff != "" {
		t.Errorf("key change = %+v, want a secret without a diff", c)
	}
	if c := got["/var/lib/kubelet/config.yaml"]; c.Action != Mode || c.OldMode != "0644" || c.NewMode != "0600" {
		t.Errorf("mode change = %+v", c)
	}
	// The host was only read.
	if readT(t, base+"/etc/kubernetes/manifests/kube-apiserver.yaml") != "a: 1\nb: 2\nc: 3\n" {
		t.Error("the host's file changed")
	}
	if _, err := os.Stat(base + "/etc/kubernetes/apiserver"); !os.IsNotExist(err) {
		t.Error("the dry run created a directory on the host")
	}
}

func TestOverlayLeavesLargeFilesAndDeepTreesOnTheHost(t *testing.T) {
	base, scratch := t.TempDir(), t.TempDir()
	write(t, base+"/var/lib/etcd/member/snap/db", "db", 0o600)
	big := strings.Repeat("x", MaxFileSize+1)
	write(t, base+"/usr/local/bin/kubelet", big, 0o755)
	o := New(base, scratch)
	dir := o.Path("/var/lib/etcd")
	if _, err := os.Stat(filepath.Join(dir, "member/snap")); err != nil {
		t.Errorf("the first levels are filled: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "member/snap/db")); !os.IsNotExist(err) {
		t.Errorf("a file deeper than MaxDepth was copied (%v)", err)
	}
	if _, err := os.Stat(o.Path("/usr/local/bin/kubelet")); !os.IsNotExist(err) {
		t.Errorf("a file larger than MaxFileSize was copied (%v)", err)
	}
	// Written whole by the run, and the same as the host's: no change.
	write(t, o.Path("/usr/local/bin/kubelet"), big, 0o755)
	changes, err := o.Changes()
	if err != nil || len(changes) != 0 {
		t.Errorf("changes = %+v, %v; want none", changes, err)
	}
}
