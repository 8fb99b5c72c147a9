package testbed

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRootfsKey(t *testing.T) {
	base := systemdRootfsSpec()
	if !strings.HasPrefix(base.key(), Release+"-") {
		t.Errorf("key %q does not start with the release", base.key())
	}
	if base.key() != systemdRootfsSpec().key() {
		t.Error("the key of the same spec changed")
	}
	// The package list, the release and the image's changes all name a new image.
	for name, change := range map[string]func(*rootfsSpec){
		"package": func(s *rootfsSpec) { s.Packages = append(s.Packages, "curl") },
		"release": func(s *rootfsSpec) { s.Release = "trixie" },
		"masked":  func(s *rootfsSpec) { s.Masked = s.Masked[1:] },
		"unit":    func(s *rootfsSpec) { s.CgroupsUnit += "#" },
		"dirs":    func(s *rootfsSpec) { s.Dirs = nil },
	} {
		s := systemdRootfsSpec()
		change(&s)
		if s.key() == base.key() {
			t.Errorf("changing the %s keeps the key %s", name, base.key())
		}
	}
}

// TestCustomizeRootfs runs the image changes on a stand-in for a fresh debootstrap.
func TestCustomizeRootfs(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"etc/machine-id":                   "0123456789abcdef0123456789abcdef\n",
		"etc/hostname":                     "builder\n",
		"etc/ssh/ssh_host_ed25519_key":     "secret",
		"etc/ssh/ssh_host_ed25519_key.pub": "public",
		"etc/ssh/ssh_host_rsa_key":         "secret",
		"etc/ssh/sshd_config":              "# Debian's\n",
		"etc/systemd/system/multi-user.target.wants/containerd.service": "",
	}
	for p, c := range files {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	spec := systemdRootfsSpec()
	// Twice: a build that failed after this step runs it again.
	for range 2 {
		if err := customizeRootfs(root, spec); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range spec.Masked {
		if target, err := os.Readlink(filepath.Join(root, "etc/systemd/system", u)); err != nil || target != "/dev/null" {
			t.Errorf("%s is not masked: %q, %v", u, target, err)
		}
	}
	if target, err := os.Readlink(filepath.Join(root, "etc/systemd/system/sysinit.target.wants", cgroupsUnitName)); err != nil || target != "../"+cgroupsUnitName {
		t.Errorf("%s is not enabled: %q, %v", cgroupsUnitName, target, err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "etc/systemd/system", cgroupsUnitName)); err != nil || string(b) != cgroupsUnit {
		t.Errorf("%s: %q, %v", cgroupsUnitName, b, err)
	}
	for _, gone := range []string{"etc/machine-id", "etc/hostname", "etc/ssh/ssh_host_ed25519_key", "etc/ssh/ssh_host_ed25519_key.pub", "etc/ssh/ssh_host_rsa_key"} {
		if _, err := os.Lstat(filepath.Join(root, gone)); err == nil {
			t.Errorf("%s is still in the image: every host needs its own", gone)
		}
	}
	for _, kept := range []string{"etc/ssh/sshd_config", "etc/systemd/system/multi-user.target.wants/containerd.service"} {
		if _, err := os.Lstat(filepath.Join(root, kept)); err != nil {
			t.Errorf("%s is gone: %v", kept, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(root, "lib/modules")); err != nil || !fi.IsDir() {
		t.Errorf("/lib/modules is missing: %v", err)
	}
}

func TestParseKind(t *testing.T) {
	for in, want := range map[string]Kind{"": KindNS, "ns": KindNS, "systemd": KindSystemd} {
		if got, err := ParseKind(in); err != nil || got != want {
			t.Errorf("ParseKind(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseKind("vm"); err == nil {
		t.Error(`ParseKind("vm") succeeded`)
	}
}

// TestBareRootfs: the bare Debian is its own cache entry, and the systemd hosts' changes
// stay out of it.
func TestBareRootfs(t *testing.T) {
	bare := bareRootfsSpec()
	if bare.key() == systemdRootfsSpec().key() {
		t.Fatalf("the bare and the systemd images share the key %s", bare.key())
	}
	if len(bare.Packages) > 0 {
		t.Errorf("the bare image has packages added: %q", bare.Packages)
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/machine-id"), []byte("0123456789abcdef0123456789abcdef\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := customizeRootfs(root, bare); err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{"etc/systemd", "lib/modules", "etc/machine-id"} {
		if _, err := os.Lstat(filepath.Join(root, absent)); err == nil {
			t.Errorf("the bare image has %s", absent)
		}
	}
}
