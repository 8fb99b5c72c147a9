package bundle

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func makeBundle(t *testing.T) *Bundle {
	t.Helper()
	dir := t.TempDir()
	for p, data := range map[string]string{"bin/kubelet": "kubelet-binary", "bin/cni/flannel": "flannel", "images/pause.tar": "tar"} {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Write(dir, map[string]string{"kubernetes": "v1.34.4"}, []File{
		{Path: "bin/kubelet", Kind: KindBinary, Install: "/usr/local/bin/kubelet"},
		{Path: "bin/cni/flannel", Kind: KindBinary, Install: "/opt/cni/bin/flannel"},
		{Path: "images/pause.tar", Kind: KindImage, Images: []string{"example.test/pause:3.10.1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWriteLoadVerify(t *testing.T) {
	b := makeBundle(t)
	if err := b.Verify(); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got := len(b.Files(KindBinary)); got != 2 {
		t.Errorf("binaries = %d, want 2", got)
	}
	// Damage one file: Verify names it.
	os.WriteFile(filepath.Join(b.Dir, "bin/kubelet"), []byte("tampered"), 0o644)
	err := b.Verify()
	if err == nil || !strings.Contains(err.Error(), "bin/kubelet: checksum mismatch") {
		t.Fatalf("Verify of a damaged bundle = %v", err)
	}
	os.Remove(filepath.Join(b.Dir, "images/pause.tar"))
	if err := b.Verify(); err == nil || !strings.Contains(err.Error(), "images/pause.tar") {
		t.Fatalf("Verify of a bundle with a missing file = %v", err)
	}
}

func TestValidateRejectsBadManifests(t *testing.T) {
	sum := strings.Repeat("a", 64)
	tests := map[string]Manifest{
		"escape":       {Format: 1, Files: []File{{Path: "../etc/passwd", SHA256: sum, Kind: KindBinary, Install: "/x"}}},
		"absolute":     {Format: 1, Files: []File{{Path: "/etc/passwd", SHA256: sum, Kind: KindBinary, Install: "/x"}}},
		"bad sum":      {Format: 1, Files: []File{{Path: "bin/x", SHA256: "zz", Kind: KindBinary, Install: "/x"}}},
		"relative dst": {Format: 1, Files: []File{{Path: "bin/x", SHA256: sum, Kind: KindBinary, Install: "usr/bin/x"}}},
		"no refs":      {Format: 1, Files: []File{{Path: "images/x.tar", SHA256: sum, Kind: KindImage}}},
		"kind":         {Format: 1, Files: []File{{Path: "x", SHA256: sum, Kind: "script"}}},
		"format":       {Format: 9},
	}
	for name, m := range tests {
		t.Run(name, func(t *testing.T) {
			if err := m.Validate(); err == nil {
				t.Error("Validate accepted a bad manifest")
			}
		})
	}
}

func TestInstallBinariesConverges(t *testing.T) {
	b := makeBundle(t)
	root := t.TempDir()
	res, err := b.InstallBinaries(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !r.Installed {
			t.Errorf("%s not installed on the first run", r.File.Path)
		}
		st, err := os.Stat(filepath.Join(root, r.File.Install))
		if err != nil || st.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v mode %v", r.File.Install, err, st.Mode())
		}
	}
	res, err = b.InstallBinaries(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Installed {
			t.Errorf("%s installed again on the second run", r.File.Path)
		}
	}
}

func TestImportImagesSkipsPresent(t *testing.T) {
	b := makeBundle(t)
	var calls []string
	present := ""
	ctr := func(_ context.Context, args ...string) ([]byte, error) {
		calls = append(calls, strings.Join(args, " "))
		if args[1] == "ls" {
			return []byte(present), nil
		}
		return nil, nil
	}
	if _, err := b.ImportImages(context.Background(), ctr); err != nil {
		t.Fatal(err)
	}
	want := []string{"images ls -q", "images import " + filepath.Join(b.Dir, "images/pause.tar")}
	if diff := cmp.Diff(want, calls); diff != "" {
		t.Errorf("first import (-want +got):\n%s", diff)
	}
	calls, present = nil, "example.test/pause:3.10.1\nsha256:abc\n"
	if _, err := b.ImportImages(context.Background(), ctr); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"images ls -q"}, calls); diff != "" {
		t.Errorf("second import (-want +got):\n%s", diff)
	}
}
