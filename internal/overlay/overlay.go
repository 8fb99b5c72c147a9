// Package overlay is a dry run's view of a host's files: the run writes under a scratch
// directory, and each path it touches is first filled there from the host, read only, so
// the run reads and compares against what the host holds, as a real run would. Changes
// then lists what the run would create or change on the host.
package overlay

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// Limits of what is filled from the host: a directory is filled this deep, and a file
// larger than MaxFileSize is left out (etcd's data and binaries are neither read nor
// compared by content through the overlay; a run that writes them writes them whole).
const (
	MaxDepth    = 2
	MaxFileSize = 4 << 20
)

// Overlay maps host paths to the scratch directory, filling each from the host the first
// time it is asked for.
type Overlay struct {
	// Base is the host's root: "/" on a real host, a directory in tests.
	Base string
	// Scratch is where the run writes.
	Scratch string

	mu     sync.Mutex
	filled map[string]bool
	err    error
}

// New returns an overlay of base under scratch.
func New(base, scratch string) *Overlay {
	return &Overlay{Base: base, Scratch: scratch, filled: map[string]bool{}}
}

// Path returns where the run finds and writes the host path p, filling it from the host
// first: a file or symlink is copied, a directory is made with the host's mode and filled
// MaxDepth levels deep. What the run wrote already is never replaced. An error filling it
// is kept for Err; the path is returned anyway, so the run sees less of the host rather
// than stopping.
func (o *Overlay) Path(p string) string {
	p = filepath.Clean("/" + p)
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.filled[p] && !o.ancestorFilled(p) {
		o.filled[p] = true
		if err := o.fill(p, 0); err != nil && o.err == nil {
			o.err = fmt.Errorf("reading %s from the host for the dry run: %w", p, err)
		}
	}
	return filepath.Join(o.Scratch, p)
}

// Err is the first error met filling a path.
func (o *Overlay) Err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

// ancestorFilled reports whether a directory above p was filled, which filled p too if
// it was within MaxDepth.
func (o *Overlay) ancestorFilled(p string) bool {
	for d, depth := filepath.Dir(p), 1; depth <= MaxDepth; d, depth = filepath.Dir(d), depth+1 {
		if o.filled[d] {
			if st, err := os.Lstat(filepath.Join(o.Base, d)); err == nil && st.IsDir() {
				return true
			}
		}
		if d == "/" {
			break
		}
	}
	return false
}

func (o *Overlay) fill(p string, depth int) error {
	src, dst := filepath.Join(o.Base, p), filepath.Join(o.Scratch, p)
	st, err := os.Lstat(src)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := os.Lstat(dst); err == nil && !st.IsDir() {
		return nil // the run wrote it
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	switch {
	case st.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return os.Symlink(target, dst)
	case st.Mode().IsRegular():
		if st.Size() > MaxFileSize {
			return nil
		}
		return copyFile(src, dst, st.Mode().Perm())
	case st.IsDir():
		if err := os.Mkdir(dst, st.Mode().Perm()); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if depth >= MaxDepth {
			return nil
		}
		entries, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := o.fill(filepath.Join(p, e.Name()), depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, io.LimitReader(in, MaxFileSize)); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode) // past the umask
}
