package phases

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/kforge/kforge/kubelet"
)

// TestContainerdConfigKeepsOperatorEdits re-runs container-runtime over a config.toml that
// someone else wrote or edited: kforge rewrites only its own file, keeps an edited one that
// has what the cluster needs, refuses one that does not, and replaces a foreign file only
// after a backup of that very file.
func TestContainerdConfigKeepsOperatorEdits(t *testing.T) {
	registry := "\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n"
	d := newTestData(t, testCluster(t, nil), "cp1", io.Discard, nil)
	svc := &fakeServices{active: map[string]bool{"containerd": true}}
	d.Services = svc
	path := d.Path(kubelet.ContainerdConfigPath)
	write := func(content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func() string {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	backups := func() []string {
		t.Helper()
		m, err := filepath.Glob(path + ".kforge-backup*")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, f := range m {
			b, _ := os.ReadFile(f)
			out = append(out, string(b))
		}
		return out
	}

	// A distribution's file that disables the CRI plugin: replaced, after a backup.
	distro := "disabled_plugins = [\"cri\"]\n"
	write(distro)
	if err := configureContainerd(t.Context(), d); err != nil {
		t.Fatalf("over the distribution's file: %v", err)
	}
	kforge := read()
	if !strings.HasPrefix(kforge, kubelet.ContainerdMarker) {
		t.Fatalf("config.toml after the first run is not kforge's:\n%s", kforge)
	}
	if b := backups(); len(b) != 1 || b[0] != distro {
		t.Fatalf("backups after replacing the distribution's file: %q, want it", b)
	}

	// The operator adds a registry directory to kforge's file: a re-run keeps it.
	write(kforge + registry)
	restarts := len(svc.restarts)
	if err := configureContainerd(t.Context(), d); err != nil {
		t.Fatalf("over an edited file that has every setting: %v", err)
	}
	if got := read(); got != kforge+registry {
		t.Fatalf("the operator's edit was lost; config.toml is now:\n%s", got)
	}
	if len(svc.restarts) != restarts {
		t.Errorf("containerd restarted for a file kforge left alone")
	}

	// The operator's edit drops a setting the cluster needs: refused, file untouched.
	edited := strings.Replace(kforge+registry, "sandbox_image = ", "sandbox_image = \"my/pause\"\n  # ", 1)
	write(edited)
	err := configureContainerd(t.Context(), d)
	if err == nil || !strings.Contains(err.Error(), "sandbox_image = ") {
		t.Fatalf("over an edited file without the pause image: %v, want a refusal that says what to add", err)
	}
	if got := read(); got != edited {
		t.Errorf("a refused file was changed:\n%s", got)
	}

	// Another package reinstalls its own file: replaced, and the backup is of that file.
	other := "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"other/pause\"\n"
	write(other)
	if err := configureContainerd(t.Context(), d); err != nil {
		t.Fatalf("over another foreign file: %v", err)
	}
	if got := read(); got != kforge {
		t.Errorf("config.toml after replacing a foreign file:\n%s\nwant kforge's", got)
	}
	if diff := cmp.Diff([]string{distro, other}, backups(), cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("backups: each replaced file, the last one too (-want +got):\n%s", diff)
	}

	// kforge's own file, out of date (the host lost CAP_SYS_RESOURCE): rewritten.
	d.Facts.CapSysResource = !d.Facts.CapSysResource
	if err := configureContainerd(t.Context(), d); err != nil {
		t.Fatalf("over kforge's own file: %v", err)
	}
	if got := read(); got == kforge || !strings.HasPrefix(got, kubelet.ContainerdMarker) {
		t.Errorf("kforge's own out-of-date file was not rewritten:\n%s", got)
	}
}
