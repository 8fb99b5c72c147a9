package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// localWaitDelay bounds how long Run waits for output pipes held open by
// background children once the command itself has exited or been killed.
const localWaitDelay = 2 * time.Second

// Local is the machine kforge runs on. Commands run as the current user,
// without sudo.
type Local struct {
	name string
}

var _ Host = (*Local)(nil)

// NewLocal returns the local machine as a Host called name ("local" if empty).
func NewLocal(name string) *Local {
	if name == "" {
		name = "local"
	}
	return &Local{name: name}
}

// Name returns the host's name.
func (l *Local) Name() string { return l.name }

// String describes the host, e.g. "h1 (local)".
func (l *Local) String() string { return l.name + " (local)" }

// Close does nothing.
func (l *Local) Close() error { return nil }

// Run runs c with os/exec: Args directly, Script with sh -c. The command gets
// its own process group, killed as a whole when ctx is done.
func (l *Local) Run(ctx context.Context, c Cmd) (Result, error) {
	if err := c.validate(); err != nil {
		return Result{}, err
	}
	argv := c.Args
	if c.Script != "" {
		argv = []string{"sh", "-c", c.Script}
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	setProcessGroup(cmd)
	cmd.WaitDelay = localWaitDelay
	cmd.Stdin = c.Stdin
	out := newOutput(c)
	cmd.Stdout, cmd.Stderr = out.stdout, out.stderr

	err := cmd.Run()
	if ctxErr := ctx.Err(); err != nil && ctxErr != nil {
		return Result{}, fmt.Errorf("running %q on %s: %w", c.display(), l.name, ctxErr)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.result(0), nil
	case errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState.Success():
		// The command succeeded; a background child kept its output open.
		return out.result(0), nil
	case errors.As(err, &ee):
		code, signal := exitStatus(ee.ProcessState)
		return out.result(code), out.exitError(l.name, c, code, signal)
	default:
		return Result{}, fmt.Errorf("running %q on %s: %w", c.display(), l.name, err)
	}
}

// Upload copies f to f.Dst on this machine: a temporary file in the same
// directory, then chown, chmod and rename. It skips the copy when f.Dst
// already has the same content, mode and owner.
func (l *Local) Upload(ctx context.Context, f File) (UploadResult, error) {
	start := time.Now()
	if err := f.validate(); err != nil {
		return UploadResult{}, err
	}
	res, err := l.upload(ctx, f, start)
	if err != nil {
		return UploadResult{}, fmt.Errorf("uploading %s on %s: %w", f.Dst, l.name, err)
	}
	return res, nil
}

func (l *Local) upload(ctx context.Context, f File, start time.Time) (UploadResult, error) {
	src, err := f.open()
	if err != nil {
		return UploadResult{}, err
	}
	defer src.close()
	sum, err := src.sha256(ctx)
	if err != nil {
		return UploadResult{}, err
	}
	mode := f.mode()
	uid, gid, err := lookupOwner(f.Owner)
	if err != nil {
		return UploadResult{}, err
	}
	same, err := localMatches(ctx, f.Dst, sum, mode, uid, gid)
	if err != nil {
		return UploadResult{}, err
	}
	if same {
		return UploadResult{Skipped: true, Duration: time.Since(start)}, nil
	}

	dir, base := filepath.Split(f.Dst)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return UploadResult{}, fmt.Errorf("creating parent directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+base+".kforge-*")
	if err != nil {
		return UploadResult{}, fmt.Errorf("creating temporary file: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()

	pr := newProgressReader(src.reader(ctx), src.size, f.Progress)
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), pr); err != nil {
		return UploadResult{}, fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return UploadResult{}, fmt.Errorf("source changed while copying: sha256 %s, want %s", got, sum)
	}
	if uid >= 0 || gid >= 0 {
		if err := tmp.Chown(uid, gid); err != nil {
			return UploadResult{}, fmt.Errorf("setting owner %s: %w", f.Owner, err)
		}
	}
	// chmod after chown: chown clears the setuid and setgid bits.
	if err := tmp.Chmod(mode); err != nil {
		return UploadResult{}, fmt.Errorf("setting mode %04o: %w", unixMode(mode), err)
	}
	if err := tmp.Sync(); err != nil {
		return UploadResult{}, fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return UploadResult{}, fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), f.Dst); err != nil {
		return UploadResult{}, fmt.Errorf("renaming temporary file into place: %w", err)
	}
	done = true
	return UploadResult{Bytes: pr.finish(), Duration: time.Since(start)}, nil
}

// localMatches reports whether the file at p has this sha256, mode and owner
// (uid or gid -1: any).
func localMatches(ctx context.Context, p, sum string, mode fs.FileMode, uid, gid int) (bool, error) {
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("checking existing file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return false, fmt.Errorf("%s exists but is not a regular file", p)
	}
	if fi.Mode()&modeMask != mode {
		return false, nil
	}
	if uid >= 0 || gid >= 0 {
		fuid, fgid, ok := fileOwner(fi)
		if !ok || (uid >= 0 && fuid != uid) || (gid >= 0 && fgid != gid) {
			return false, nil
		}
	}
	file, err := os.Open(p)
	if err != nil {
		return false, fmt.Errorf("checking existing file: %w", err)
	}
	defer file.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx: ctx, r: file}); err != nil {
		return false, fmt.Errorf("checking existing file: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)) == sum, nil
}

// lookupOwner resolves an Owner ("", "uid:gid", "user:group", "user") to
// numeric ids; -1 means leave unchanged.
func lookupOwner(owner string) (uid, gid int, err error) {
	uid, gid = -1, -1
	if owner == "" {
		return uid, gid, nil
	}
	u, g, _ := strings.Cut(owner, ":")
	if u != "" {
		if uid, err = strconv.Atoi(u); err != nil {
			usr, lerr := user.Lookup(u)
			if lerr != nil {
				return 0, 0, fmt.Errorf("looking up owner %q: %w", owner, lerr)
			}
			if uid, err = strconv.Atoi(usr.Uid); err != nil {
				return 0, 0, fmt.Errorf("looking up owner %q: non-numeric uid %q", owner, usr.Uid)
			}
		}
	}
	if g != "" {
		if gid, err = strconv.Atoi(g); err != nil {
			grp, lerr := user.LookupGroup(g)
			if lerr != nil {
				return 0, 0, fmt.Errorf("looking up group of owner %q: %w", owner, lerr)
			}
			if gid, err = strconv.Atoi(grp.Gid); err != nil {
				return 0, 0, fmt.Errorf("looking up group of owner %q: non-numeric gid %q", owner, grp.Gid)
			}
		}
	}
	return uid, gid, nil
}
