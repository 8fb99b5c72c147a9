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
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

// defaultMode is the mode of an uploaded file when File.Mode is zero.
const defaultMode fs.FileMode = 0o644

// modeMask is the part of a mode Upload sets and compares.
const modeMask = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// progressInterval is the least time between two Progress calls.
const progressInterval = 250 * time.Millisecond

func (f File) mode() fs.FileMode {
	if f.Mode&modeMask == 0 {
		return defaultMode
	}
	return f.Mode & modeMask
}

func (f File) validate() error {
	switch {
	case f.Dst == "":
		return errors.New("invalid upload: no destination path")
	case !path.IsAbs(f.Dst) || strings.HasSuffix(f.Dst, "/"):
		return fmt.Errorf("invalid upload destination %q: want an absolute file path", f.Dst)
	case f.LocalPath == "" && f.Src == nil:
		return fmt.Errorf("invalid upload to %s: neither LocalPath nor Src is set", f.Dst)
	case f.LocalPath != "" && f.Src != nil:
		return fmt.Errorf("invalid upload to %s: both LocalPath and Src are set", f.Dst)
	case f.Size < 0:
		return fmt.Errorf("invalid upload to %s: negative size %d", f.Dst, f.Size)
	}
	return nil
}

// source is an opened upload source.
type source struct {
	r     io.ReaderAt
	size  int64
	close func() error
}

func (f File) open() (source, error) {
	if f.LocalPath == "" {
		return source{r: f.Src, size: f.Size, close: func() error { return nil }}, nil
	}
	file, err := os.Open(f.LocalPath)
	if err != nil {
		return source{}, fmt.Errorf("opening upload source: %w", err)
	}
	fi, err := file.Stat()
	if err != nil {
		file.Close()
		return source{}, fmt.Errorf("opening upload source: %w", err)
	}
	if !fi.Mode().IsRegular() {
		file.Close()
		return source{}, fmt.Errorf("opening upload source %s: not a regular file", f.LocalPath)
	}
	return source{r: file, size: fi.Size(), close: file.Close}, nil
}

func (s source) reader(ctx context.Context) io.Reader {
	return ctxReader{ctx: ctx, r: io.NewSectionReader(s.r, 0, s.size)}
}

func (s source) sha256(ctx context.Context) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, s.reader(ctx)); err != nil {
		return "", fmt.Errorf("computing sha256 of upload source: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ctxReader fails reads once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// progressReader counts bytes read and reports them, throttled.
type progressReader struct {
	r     io.Reader
	total int64
	fn    func(sent, total int64)

	mu   sync.Mutex
	sent int64
	last time.Time
	done bool
}

func newProgressReader(r io.Reader, total int64, fn func(sent, total int64)) *progressReader {
	return &progressReader{r: r, total: total, fn: fn}
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent += int64(n)
	if p.fn != nil && !p.done && n > 0 && time.Since(p.last) >= progressInterval {
		p.last = time.Now()
		p.fn(p.sent, p.total)
	}
	return n, err
}

// finish stops the throttled reports, makes the final one and returns the
// bytes sent.
func (p *progressReader) finish() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = true
	if p.fn != nil {
		p.fn(p.sent, p.total)
	}
	return p.sent
}

// fileState is what a host says about a path.
type fileState struct {
	exists bool
	sum    string
	mode   fs.FileMode
	// uid and gid are numeric, user and group are names.
	uid, gid, user, group string
}

// matches reports whether the file already has this content, mode and owner.
func (s fileState) matches(sum string, mode fs.FileMode, owner string) bool {
	return s.exists && s.sum == sum && s.mode == mode && ownerMatches(owner, s)
}

// ownerMatches reports whether a file owned by s satisfies want, an Owner
// as in File ("" matches anything).
func ownerMatches(want string, s fileState) bool {
	if want == "" {
		return true
	}
	u, g, hasGroup := strings.Cut(want, ":")
	if u != "" && u != s.uid && u != s.user {
		return false
	}
	if hasGroup && g != "" && g != s.gid && g != s.group {
		return false
	}
	return true
}

// unixMode is m as the number chmod takes.
func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// fileModeFromUnix is the inverse of unixMode.
func fileModeFromUnix(u uint32) fs.FileMode {
	m := fs.FileMode(u & 0o777)
	if u&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if u&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if u&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// statScript prints "absent", or the sha256 of the file on one line and
// "mode uid gid user group" on the next. It uses sha256sum and stat -c
// (coreutils or busybox).
func statScript(p string) string {
	return fmt.Sprintf(`f=%s
if [ ! -e "$f" ]; then echo absent; exit 0; fi
if [ ! -f "$f" ]; then echo "$f exists but is not a regular file" >&2; exit 3; fi
sum=$(sha256sum < "$f") || exit 1
echo "${sum%%%% *}"
exec stat -L -c '%%a %%u %%g %%U %%G' "$f"
`, ShellQuote(p))
}

// statFile asks h about path p.
func statFile(ctx context.Context, h Host, p string) (fileState, error) {
	res, err := h.Run(ctx, Cmd{Script: statScript(p), Display: "checksum of " + p})
	if err != nil {
		return fileState{}, fmt.Errorf("checking %s: %w", p, err)
	}
	st, err := parseStat(res.Stdout)
	if err != nil {
		return fileState{}, fmt.Errorf("checking %s on %s: %w", p, h.Name(), err)
	}
	return st, nil
}

func parseStat(out []byte) (fileState, error) {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) == 1 && lines[0] == "absent" {
		return fileState{}, nil
	}
	if len(lines) != 2 {
		return fileState{}, fmt.Errorf("unexpected output of sha256sum and stat: %q", out)
	}
	sum := strings.TrimSpace(lines[0])
	if _, err := hex.DecodeString(sum); err != nil || len(sum) != sha256.Size*2 {
		return fileState{}, fmt.Errorf("unexpected output of sha256sum: %q", lines[0])
	}
	fields := strings.Fields(lines[1])
	if len(fields) != 5 {
		return fileState{}, fmt.Errorf("unexpected output of stat: %q", lines[1])
	}
	m, err := strconv.ParseUint(fields[0], 8, 32)
	if err != nil {
		return fileState{}, fmt.Errorf("unexpected mode in output of stat: %q", lines[1])
	}
	return fileState{
		exists: true,
		sum:    sum,
		mode:   fileModeFromUnix(uint32(m)),
		uid:    fields[1],
		gid:    fields[2],
		user:   fields[3],
		group:  fields[4],
	}, nil
}

// Sha256 returns the hex sha256 and the mode of the file at path on h, by
// running sha256sum and stat there. exists is false when there is no such
// file; a path that exists but is not a regular file is an error.
func Sha256(ctx context.Context, h Host, path string) (sum string, mode fs.FileMode, exists bool, err error) {
	st, err := statFile(ctx, h, path)
	if err != nil {
		return "", 0, false, err
	}
	return st.sum, st.mode, st.exists, nil
}

// uploadScript writes stdin to dst atomically: mkdir -p the parent, write a
// temporary file next to dst, check its sha256 against sum (so a transfer
// cut short never replaces dst), chown, chmod, rename. The temporary file is
// removed on failure.
func uploadScript(dst string, mode fs.FileMode, owner, sum string) string {
	dir, base := path.Split(dst)
	var b strings.Builder
	b.WriteString("set -e\n")
	fmt.Fprintf(&b, "mkdir -p %s\n", ShellQuote(dir))
	b.WriteString("umask 077\n")
	fmt.Fprintf(&b, "tmp=$(mktemp %s)\n", ShellQuote(dir+"."+base+".kforge-XXXXXX"))
	b.WriteString("trap 'rm -f \"$tmp\"' EXIT\n")
	b.WriteString("cat > \"$tmp\"\n")
	b.WriteString("got=$(sha256sum < \"$tmp\")\n")
	fmt.Fprintf(&b, "if [ \"${got%%%% *}\" != %s ]; then echo \"sha256 of the received data is ${got%%%% *}, want %s: transfer incomplete, destination left unchanged\" >&2; exit 3; fi\n", sum, sum)
	if owner != "" {
		fmt.Fprintf(&b, "chown %s \"$tmp\"\n", ShellQuote(owner))
	}
	// chmod after chown: chown clears the setuid and setgid bits.
	fmt.Fprintf(&b, "chmod %04o \"$tmp\"\n", unixMode(mode))
	fmt.Fprintf(&b, "mv -f \"$tmp\" %s\n", ShellQuote(dst))
	b.WriteString("trap - EXIT\n")
	return b.String()
}

// shellUpload implements Upload for hosts that only run commands: check the
// destination's sha256, mode and owner, and stream the bytes through the
// upload script's stdin when they differ.
func shellUpload(ctx context.Context, h Host, f File) (UploadResult, error) {
	start := time.Now()
	if err := f.validate(); err != nil {
		return UploadResult{}, err
	}
	src, err := f.open()
	if err != nil {
		return UploadResult{}, fmt.Errorf("uploading %s: %w", f.Dst, err)
	}
	defer src.close()
	sum := f.SHA256
	if sum == "" {
		if sum, err = src.sha256(ctx); err != nil {
			return UploadResult{}, fmt.Errorf("uploading %s: %w", f.Dst, err)
		}
	}
	mode := f.mode()
	cur, err := statFile(ctx, h, f.Dst)
	if err != nil {
		return UploadResult{}, fmt.Errorf("uploading %s: %w", f.Dst, err)
	}
	if cur.matches(sum, mode, f.Owner) {
		return UploadResult{Skipped: true, Duration: time.Since(start)}, nil
	}
	pr := newProgressReader(src.reader(ctx), src.size, f.Progress)
	_, err = h.Run(ctx, Cmd{
		Script:  uploadScript(f.Dst, mode, f.Owner, sum),
		Stdin:   pr,
		Display: "upload to " + f.Dst,
	})
	if err != nil {
		return UploadResult{}, fmt.Errorf("uploading %s: %w", f.Dst, err)
	}
	return UploadResult{Bytes: pr.finish(), Duration: time.Since(start)}, nil
}
