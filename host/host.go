package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"
	"unicode"
)

// Host is a machine kforge acts on.
type Host interface {
	// Name is the host's name in cluster.toml, e.g. "h1".
	Name() string
	// String describes the host for messages, e.g. "h1 (root@10.0.0.5:22)".
	String() string
	// Run runs a command and waits for it. A non-zero exit returns the
	// Result and an *ExitError. When ctx is done the command is killed and
	// the error wraps ctx.Err().
	Run(ctx context.Context, c Cmd) (Result, error)
	// Upload writes f.Dst atomically with f.Mode and f.Owner, skipping the
	// transfer when the destination already has that content, mode and owner.
	Upload(ctx context.Context, f File) (UploadResult, error)
	// Close releases the connection, if any.
	Close() error
}

// Sentinel errors; branch on them with errors.Is.
var (
	// ErrAuth: the SSH server refused every authentication method tried.
	ErrAuth = errors.New("ssh authentication failed")
	// ErrUnknownHostKey: known_hosts has no key for the host.
	ErrUnknownHostKey = errors.New("unknown ssh host key")
	// ErrHostKeyChanged: known_hosts has a different key for the host.
	ErrHostKeyChanged = errors.New("ssh host key changed")
	// ErrNoSudo: the SSH user is not root and cannot run sudo without a password.
	ErrNoSudo = errors.New("passwordless sudo unavailable")
)

// Cmd is a command to run on a host. Exactly one of Args and Script is set.
//
// Secrets go through Stdin only: Args and Script appear (abbreviated) in
// errors and logs, Stdin never does.
type Cmd struct {
	// Args is an argument vector; on SSH hosts it is quoted with ShellQuote.
	Args []string
	// Script is a shell script run by sh -c.
	Script string
	// Stdin, if set, is copied to the command's standard input.
	Stdin io.Reader
	// Stdout and Stderr receive the output; when nil, the output is
	// captured into Result.
	Stdout io.Writer
	Stderr io.Writer
	// Display, if set, replaces the command text in errors and logs.
	Display string
}

// Result is what a finished command left behind.
type Result struct {
	// Stdout and Stderr hold the output when Cmd.Stdout and Cmd.Stderr were nil.
	Stdout []byte
	Stderr []byte
	// ExitCode is the exit status; 128+n when killed by signal n.
	ExitCode int
}

// File describes an upload. The source is LocalPath when set, else Src with
// Size bytes (use bytes.NewReader for in-memory content, or BytesFile).
type File struct {
	// LocalPath is a file on this machine to upload.
	LocalPath string
	// Src and Size are the content when LocalPath is empty. Src is read
	// twice (checksum, then transfer), so it must be stable.
	Src  io.ReaderAt
	Size int64
	// Dst is the absolute destination path on the host.
	Dst string
	// Mode is the destination's permission bits (setuid, setgid and sticky
	// are honoured); zero means 0644.
	Mode fs.FileMode
	// Owner is "" (leave the default: the connecting user, or root under
	// sudo), "uid:gid", "user:group" or "user".
	Owner string
	// SHA256, if set, is the source's hex sha256, known in advance (a bundle manifest
	// lists it), so that Upload need not read the source to compare. The host checks the
	// bytes it received against it before the destination is replaced.
	SHA256 string
	// Progress, if set, is called with the bytes sent so far and the total,
	// at most a few times per second, and once at the end with sent == total.
	// It may be called from another goroutine.
	Progress func(sent, total int64)
}

// BytesFile is a File whose content is data.
func BytesFile(dst string, data []byte, mode fs.FileMode) File {
	return File{Src: bytes.NewReader(data), Size: int64(len(data)), Dst: dst, Mode: mode}
}

// UploadResult reports what Upload did.
type UploadResult struct {
	// Skipped is true when the destination already matched.
	Skipped bool
	// Bytes is the number of bytes transferred (0 when skipped).
	Bytes int64
	// Duration is the time Upload took, including the checksum check.
	Duration time.Duration
}

// stderrTailLines is how many stderr lines an ExitError keeps.
const stderrTailLines = 20

// ExitError is returned when a command exits with a non-zero status.
type ExitError struct {
	// Host is the host's name.
	Host string
	// Cmd is the command, abbreviated (or Cmd.Display); never stdin.
	Cmd string
	// Code is the exit status; 128+n when killed by signal n.
	Code int
	// Signal is the signal that killed the command ("KILL"), if any.
	Signal string
	// Stderr is the last lines of the command's standard error.
	Stderr string
}

func (e *ExitError) Error() string {
	var b strings.Builder
	if e.Signal != "" {
		fmt.Fprintf(&b, "command %q on %s was killed by signal %s", e.Cmd, e.Host, e.Signal)
	} else {
		fmt.Fprintf(&b, "command %q on %s exited with code %d", e.Cmd, e.Host, e.Code)
	}
	if e.Stderr != "" {
		b.WriteString("; stderr:")
		for line := range strings.SplitSeq(e.Stderr, "\n") {
			b.WriteString("\n    ")
			b.WriteString(line)
		}
	}
	return b.String()
}

// HostError is one host's failure in ForEach.
type HostError struct {
	Host string
	Err  error
}

func (e *HostError) Error() string { return e.Host + ": " + e.Err.Error() }

func (e *HostError) Unwrap() error { return e.Err }

// validate checks that exactly one of Args and Script is set.
func (c Cmd) validate() error {
	switch {
	case len(c.Args) > 0 && c.Script != "":
		return errors.New("invalid command: both Args and Script are set")
	case len(c.Args) == 0 && c.Script == "":
		return errors.New("invalid command: neither Args nor Script is set")
	}
	return nil
}

// maxDisplay is the longest command text shown in errors.
const maxDisplay = 120

// display is the command as errors and logs show it: Display, or the quoted
// args or the script with whitespace collapsed, abbreviated. Never stdin.
func (c Cmd) display() string {
	s := c.Display
	if s == "" {
		if len(c.Args) > 0 {
			s = ShellQuote(c.Args...)
		} else {
			s = c.Script
		}
	}
	s = strings.Join(strings.FieldsFunc(s, unicode.IsSpace), " ")
	if r := []rune(s); len(r) > maxDisplay {
		s = string(r[:maxDisplay-3]) + "..."
	}
	return s
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func newTailBuffer() *tailBuffer { return &tailBuffer{max: 8 << 10} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return n, nil
	}
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return n, nil
}

// lines returns the last n lines, without a trailing newline.
func (t *tailBuffer) lines(n int) string {
	s := strings.TrimRight(string(t.buf), "\n")
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// output wires a command's stdout and stderr: to the caller's writers when
// set, else to buffers that end up in Result; stderr is also tailed for
// ExitError.
type output struct {
	stdoutBuf, stderrBuf *bytes.Buffer
	tail                 *tailBuffer
	stdout, stderr       io.Writer
}

func newOutput(c Cmd) *output {
	o := &output{tail: newTailBuffer(), stdout: c.Stdout, stderr: c.Stderr}
	if o.stdout == nil {
		o.stdoutBuf = new(bytes.Buffer)
		o.stdout = o.stdoutBuf
	}
	if o.stderr == nil {
		o.stderrBuf = new(bytes.Buffer)
		o.stderr = o.stderrBuf
	}
	o.stderr = io.MultiWriter(o.stderr, o.tail)
	return o
}

func (o *output) result(code int) Result {
	r := Result{ExitCode: code}
	if o.stdoutBuf != nil {
		r.Stdout = o.stdoutBuf.Bytes()
	}
	if o.stderrBuf != nil {
		r.Stderr = o.stderrBuf.Bytes()
	}
	return r
}

// exitError builds the error for a non-zero exit.
func (o *output) exitError(host string, c Cmd, code int, signal string) *ExitError {
	return &ExitError{Host: host, Cmd: c.display(), Code: code, Signal: signal, Stderr: o.tail.lines(stderrTailLines)}
}
