package nodecleanup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// FSID tells filesystems and mounts apart: the device and, where the kernel reports it,
// the mount (a bind mount of the same filesystem has the same device but its own mount).
type FSID struct {
	Dev, Mount uint64
}

// StatFSID reads the FSID of path, not following a symlink.
func StatFSID(path string) (FSID, error) {
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS|unix.STATX_MNT_ID, &st); err != nil {
		return FSID{}, &fs.PathError{Op: "statx", Path: path, Err: err}
	}
	id := FSID{Dev: unix.Mkdev(st.Dev_major, st.Dev_minor)}
	if st.Mask&unix.STATX_MNT_ID != 0 {
		id.Mount = st.Mnt_id
	}
	return id, nil
}

// CrossMountError is a refusal to remove something on another filesystem or mount than
// the directory it is in.
type CrossMountError struct {
	Path string
}

func (e *CrossMountError) Error() string {
	return fmt.Sprintf("refusing to remove %s: it is on another filesystem or mount than %s; unmount it and run reset again",
		e.Path, filepath.Dir(e.Path))
}

// removeTree removes p and, if it is a directory, everything in it, as long as all of it
// is on the filesystem and mount of p's parent (fsID). What is on another is refused with
// a *CrossMountError and left in place with the directories above it; the rest goes.
func removeTree(p string, fsID func(string) (FSID, error)) error {
	want, err := fsID(filepath.Dir(p))
	if err != nil {
		return err
	}
	return removeWithin(p, want, fsID)
}

func removeWithin(p string, want FSID, fsID func(string) (FSID, error)) error {
	st, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	got, err := fsID(p)
	if err != nil {
		return err
	}
	if got != want {
		return &CrossMountError{Path: p}
	}
	if !st.IsDir() {
		return os.Remove(p)
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if err := removeWithin(filepath.Join(p, e.Name()), want, fsID); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return os.Remove(p)
}
