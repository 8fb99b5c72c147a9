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
// parent directories are created with dirPerm. If the file already holds data with perm, it
// is left alone.
func WriteAtomic(path string, data []byte, perm, dirPerm fs.FileMode) (Result, error) {
	res := Created
	if st, err := os.Lstat(path); err == nil {
		if st.Mode().IsRegular() {
			old, err := os.ReadFile(path)
			if err == nil && bytes.Equal(old, data) && st.Mode().Perm() == perm {
				return Unchanged, nil
			}
		}
		res = Updated
	} else if !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("checking %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return 0, fmt.Errorf("creating directory %s: %w", dir, err)
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

// EnsureDir creates dir with perm if it is missing, and tightens its mode to perm if it
// exists with another one.
func EnsureDir(dir string, perm fs.FileMode) error {
	if err := os.MkdirAll(dir, perm); err != nil {
		return fmt.Errorf("creating directory %s: %w", dir, err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("checking directory %s: %w", dir, err)
	}
	if st.Mode().Perm() != perm {
		if err := os.Chmod(dir, perm); err != nil {
			return fmt.Errorf("setting mode %o on %s: %w", perm, dir, err)
		}
	}
	return nil
}
