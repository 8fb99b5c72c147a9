package preflight

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// System is everything the checks read from the host. LocalSystem is the real machine;
// tests use a fake.
type System interface {
	// ReadFile returns a file's content: /proc and /sys files, manifests, kubelet files.
	ReadFile(path string) ([]byte, error)
	// ReadDir returns the names of a directory's entries, sorted.
	ReadDir(path string) ([]string, error)
	// Readlink returns the target of a symbolic link, such as /proc/<pid>/fd/<n>.
	Readlink(path string) (string, error)
	// LookPath finds an executable on PATH, like exec.LookPath.
	LookPath(file string) (string, error)
	// Output runs a command and returns its standard output. A command that is not found
	// gives an error matching exec.ErrNotFound; a failing one, its standard error.
	Output(ctx context.Context, name string, args ...string) ([]byte, error)
	// Listen binds a TCP address ("host:port", host may be empty) and releases it at once.
	// An address in use gives an error matching syscall.EADDRINUSE.
	Listen(ctx context.Context, addr string) error
	// DialUnix connects to a unix socket and closes the connection.
	DialUnix(ctx context.Context, path string) error
	// Euid is the effective user id of this process.
	Euid() int
	// NumCPU is the number of CPUs this process may use.
	NumCPU() int
	// LookupHost resolves a host name to addresses.
	LookupHost(ctx context.Context, host string) ([]string, error)
	// Getenv returns an environment variable of this process, "" if unset.
	Getenv(key string) string
}

// LocalSystem returns the System of the machine this process runs on.
func LocalSystem() System { return localSystem{} }

type localSystem struct{}

func (localSystem) ReadFile(path string) ([]byte, error) { return os.ReadFile(path) }

func (localSystem) ReadDir(path string) ([]string, error) {
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	slices.Sort(names)
	return names, nil
}

func (localSystem) Readlink(path string) (string, error) { return os.Readlink(path) }

func (localSystem) LookPath(file string) (string, error) { return exec.LookPath(file) }

func (localSystem) Output(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = time.Second
	out, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return out, fmt.Errorf("%w: %s", err, msg)
		}
		return out, err
	}
	return out, nil
}

func (localSystem) Listen(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return l.Close()
}

func (localSystem) DialUnix(ctx context.Context, path string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return err
	}
	return c.Close()
}

func (localSystem) Euid() int { return os.Geteuid() }

func (localSystem) NumCPU() int { return runtime.NumCPU() }

func (localSystem) LookupHost(ctx context.Context, host string) ([]string, error) {
	return net.DefaultResolver.LookupHost(ctx, host)
}

func (localSystem) Getenv(key string) string { return os.Getenv(key) }
