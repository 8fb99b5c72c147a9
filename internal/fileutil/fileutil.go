// Package fileutil writes files the way every kforge phase must: atomically, with an exact
// mode, and not at all when the content and mode are already right (so a re-run changes no
// byte and no mtime).
package fileutil

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Result says what WriteAtomic did.
type Result int

// WriteAtomic results.
const (
	Unchanged Result = iota // the file already had this content and mode
	Created                 // there was no file
	Updated                 // the file had other content or another mode
)

func (r Result) String() string {
	return [...]string{"unchanged", "created", "updated"}[r]
}

// WriteAtomic writes data to path with mode perm through a temp file in the same directory
// and a rename, so readers see the old file or the new one, never half of one. Missing
// parent directories are created with dirPerm (EnsureDir). If the file already holds data with perm, it
// is left alone.
func WriteAtomic(path string, data []byte, perm, dirPerm fs.FileMode) (Result, error) {
	res, err := Compare(path, data, perm)
	if err != nil || res == Unchanged {
		return res, err
	}
	dir := filepath.Dir(path)
	if err := EnsureDir(dir, dirPerm); err != nil {
		return 0, err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) (Result, error) {
		f.Close()
		os.Remove(tmp)
		return 0, fmt.Errorf("writing %s: %w", path, err)
	}
	// CreateTemp makes the file 0600, so a key is never readable by others, even briefly.
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("writing %s: %w", path, err)
	}
	return res, nil
}

// Compare says what WriteAtomic(path, data, perm, ...) would do, without doing it.
func Compare(path string, data []byte, perm fs.FileMode) (Result, error) {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Created, nil
	}
	if err != nil {
		return 0, fmt.Errorf("checking %s: %w", path, err)
	}
	if st.Mode().IsRegular() && st.Mode().Perm() == perm {
		old, err := os.ReadFile(path)
		if err == nil && bytes.Equal(old, data) {
			return Unchanged, nil
		}
	}
	return Updated, nil
}

// EnsureDir creates dir, and the parents it lacks, with mode perm (exactly, whatever the
// umask). A directory that already exists is left as it is: kforge never changes the mode of
// a directory it did not create, since a mistyped setting may name /var/lib or /etc.
func EnsureDir(dir string, perm fs.FileMode) error {
	// Find the directories that are missing, from dir up to the first one that exists.
	var missing []string
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err == nil {
			if !st.IsDir() {
				return fmt.Errorf("creating directory %s: %s is not a directory", dir, p)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("checking directory %s: %w", p, err)
		}
		missing = append(missing, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		p := missing[i]
		if err := os.Mkdir(p, perm); err != nil {
			if errors.Is(err, fs.ErrExist) {
				continue // made by someone else meanwhile: theirs, left alone
			}
			return fmt.Errorf("creating directory %s: %w", p, err)
		}
		// Mkdir applies the umask; the mode of a directory kforge created is exactly perm.
		if err := os.Chmod(p, perm); err != nil {
			return fmt.Errorf("setting mode %o on %s: %w", perm, p, err)
		}
	}
	return nil
}

// FreeName returns base if nothing is at it, else the first of base-1, base-2, ... that is
// free: where kforge keeps a copy of a file it replaces, without writing over an earlier copy.
// at maps a path to where it is on this host (a dry run's scratch root), or is nil.
func FreeName(base string, at func(string) string) string {
	if at == nil {
		at = func(p string) string { return p }
	}
	name := base
	for i := 1; ; i++ {
		if _, err := os.Lstat(at(name)); errors.Is(err, fs.ErrNotExist) {
			return name
		}
		name = fmt.Sprintf("%s-%d", base, i)
	}
}

// SymlinkAtomic makes path a symlink to target: it creates the link under a temp name in
// the same directory and renames it over path, so readers see the old file or the new
// link, never no file. A path that already links to target is left alone. The temp name
// is fixed (.<name>.tmp-link), so a run killed between the two steps leaves a link the
// next run replaces; anything else at that name is not kforge's and stops the run.
func SymlinkAtomic(path, target string) (Result, error) {
	res := Updated
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		res = Created
	case err != nil:
		return 0, fmt.Errorf("checking %s: %w", path, err)
	case st.IsDir():
		return 0, fmt.Errorf("linking %s to %s: %s is a directory", path, target, path)
	case st.Mode()&fs.ModeSymlink != 0:
		if old, err := os.Readlink(path); err == nil && old == target {
			return Unchanged, nil
		}
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-link")
	if st, err := os.Lstat(tmp); err == nil {
		if st.Mode()&fs.ModeSymlink == 0 {
			return 0, fmt.Errorf("linking %s to %s: %s is in the way and is not a link kforge left", path, target, tmp)
		}
		if err := os.Remove(tmp); err != nil {
			return 0, fmt.Errorf("linking %s to %s: removing the link a killed run left: %w", path, target, err)
		}
	}
	if err := os.Symlink(target, tmp); err != nil {
		return 0, fmt.Errorf("linking %s to %s: %w", path, target, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("linking %s to %s: %w", path, target, err)
	}
	return res, nil
}
