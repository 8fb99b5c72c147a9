package fileutil

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestEnsureDir(t *testing.T) {
	tests := []struct {
		name     string
		existing fs.FileMode // 0: the directory does not exist
		want     fs.FileMode
	}{
		{name: "missing: created with the mode", want: 0o700},
		{name: "existing with another mode: left alone", existing: 0o755, want: 0o755},
		{name: "existing and looser: still left alone", existing: 0o777, want: 0o777},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "a", "b")
			if tc.existing != 0 {
				if err := os.MkdirAll(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(dir, tc.existing); err != nil {
					t.Fatal(err)
				}
			}
			if err := EnsureDir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Mode().Perm(); got != tc.want {
				t.Errorf("mode of %s = %o, want %o", dir, got, tc.want)
			}
		})
	}
}

// TestEnsureDirSetsTheModeOfEveryDirectoryItCreates checks that the parents EnsureDir
// creates get the mode too, whatever the umask, and that an existing parent keeps its own.
func TestEnsureDirSetsTheModeOfEveryDirectoryItCreates(t *testing.T) {
	root := t.TempDir()
	if err := os.Chmod(root, 0o751); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "x", "y")
	if err := EnsureDir(dir, 0o770); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]fs.FileMode{root: 0o751, filepath.Join(root, "x"): 0o770, dir: 0o770} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("mode of %s = %o, want %o", p, got, want)
		}
	}
}

// TestFreeName: a copy never goes over an earlier one.
func TestFreeName(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "admin.conf.old")
	if got := FreeName(base, nil); got != base {
		t.Errorf("FreeName with nothing there = %s, want %s", got, base)
	}
	for _, p := range []string{base, base + "-1"} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := FreeName(base, nil), base+"-2"; got != want {
		t.Errorf("FreeName with two copies there = %s, want %s", got, want)
	}
	// at maps the name to where it is looked for.
	if got := FreeName("/x", func(p string) string { return filepath.Join(dir, "admin.conf.old"+p[len("/x"):]) }); got != "/x-2" {
		t.Errorf("FreeName through at = %s, want /x-2", got)
	}
}

func TestSymlinkAtomic(t *testing.T) {
	const tmpName = ".current.pem.tmp-link"
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, dir string)
		want    Result
		wantErr bool
	}{
		{name: "nothing there", want: Created},
		{name: "a regular file is replaced", want: Updated, setup: func(t *testing.T, dir string) {
			mustWrite(t, filepath.Join(dir, "current.pem"), "old")
		}},
		{name: "a link elsewhere is replaced", want: Updated, setup: func(t *testing.T, dir string) {
			mustLink(t, "other.pem", filepath.Join(dir, "current.pem"))
		}},
		{name: "the link already there", want: Unchanged, setup: func(t *testing.T, dir string) {
			mustLink(t, "new.pem", filepath.Join(dir, "current.pem"))
		}},
		{name: "a killed run's temp link is replaced", want: Created, setup: func(t *testing.T, dir string) {
			mustLink(t, "stale.pem", filepath.Join(dir, tmpName))
		}},
		{name: "a file at the temp name is not ours", wantErr: true, setup: func(t *testing.T, dir string) {
			mustWrite(t, filepath.Join(dir, tmpName), "someone's")
		}},
		{name: "a directory at the path", wantErr: true, setup: func(t *testing.T, dir string) {
			if err := os.Mkdir(filepath.Join(dir, "current.pem"), 0o755); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			path := filepath.Join(dir, "current.pem")
			got, err := SymlinkAtomic(path, "new.pem")
			if tc.wantErr {
				if err == nil {
					t.Fatalf("SymlinkAtomic succeeded (%v), want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("SymlinkAtomic = %v, want %v", got, tc.want)
			}
			if target, err := os.Readlink(path); err != nil || target != "new.pem" {
				t.Errorf("%s links to %q (%v), want new.pem", path, target, err)
			}
			if _, err := os.Lstat(filepath.Join(dir, tmpName)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the temp link is still there (%v)", err)
			}
		})
	}
}

func mustWrite(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustLink(t *testing.T, target, path string) {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}
