package preflight

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLocalSystemListen(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	sys := LocalSystem()
	if err := sys.Listen(t.Context(), addr); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("Listen(%s) while it is held = %v, want EADDRINUSE", addr, err)
	}
	l.Close()
	if err := sys.Listen(t.Context(), addr); err != nil {
		t.Errorf("Listen(%s) once freed: %v", addr, err)
	}
}

func TestLocalSystemDialUnix(t *testing.T) {
	// Unix socket paths are limited to about 108 bytes; t.TempDir can be longer.
	dir, err := os.MkdirTemp("", "pf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "cri.sock")
	sys := LocalSystem()
	if err := sys.DialUnix(t.Context(), sock); err == nil {
		t.Error("DialUnix to a missing socket succeeded")
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := sys.DialUnix(t.Context(), sock); err != nil {
		t.Errorf("DialUnix to a listening socket: %v", err)
	}
}

func TestLocalSystemFiles(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"b", "a", "c"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("target", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	sys := LocalSystem()
	names, err := sys.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "b", "c", "link"}, names); diff != "" {
		t.Errorf("ReadDir (-want +got):\n%s", diff)
	}
	if _, err := sys.ReadDir(filepath.Join(dir, "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadDir of a missing dir = %v, want ErrNotExist", err)
	}
	if b, err := sys.ReadFile(filepath.Join(dir, "a")); err != nil || string(b) != "a" {
		t.Errorf("ReadFile = %q, %v", b, err)
	}
	if target, err := sys.Readlink(filepath.Join(dir, "link")); err != nil || target != "target" {
		t.Errorf("Readlink = %q, %v", target, err)
	}
}

func TestLocalSystemOutput(t *testing.T) {
	sys := LocalSystem()
	if _, err := sys.Output(t.Context(), "kforge-test-no-such-binary", "--version"); !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("Output of a missing binary = %v, want exec.ErrNotFound", err)
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh on PATH, so there is no command to run")
	}
	out, err := sys.Output(t.Context(), sh, "-c", "echo Kubernetes v1.34.4")
	if err != nil || string(out) != "Kubernetes v1.34.4\n" {
		t.Errorf("Output = %q, %v", out, err)
	}
	_, err = sys.Output(t.Context(), sh, "-c", "echo broken >&2; exit 3")
	if err == nil || !strings.Contains(err.Error(), "exit status 3: broken") {
		t.Errorf("Output of a failing command = %v, want its exit status and stderr", err)
	}
}

// loopbackSystem is LocalSystem with Listen kept on 127.0.0.1, because tests bind only
// loopback addresses.
type loopbackSystem struct{ System }

func (l loopbackSystem) Listen(ctx context.Context, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	return l.System.Listen(ctx, net.JoinHostPort("127.0.0.1", port))
}

// TestInitChecksOnThisMachine runs every check against the real machine. Results depend on
// the machine, so it asserts only that nothing panics and that Run returns nil or an *Error.
func TestInitChecksOnThisMachine(t *testing.T) {
	p := testParams(loopbackSystem{LocalSystem()})
	p.NodeName = "localhost" // resolves from /etc/hosts, with no DNS query
	p.ManifestsDir = t.TempDir()
	p.KubeconfigDir = t.TempDir()
	p.KubeletConfigPath = filepath.Join(t.TempDir(), "config.yaml")
	p.Cluster.Etcd.Local.DataDir = t.TempDir()

	var out bytes.Buffer
	err := Run(t.Context(), InitChecks(p), IgnoreSet{}, &out)
	var pe *Error
	if err != nil && !errors.As(err, &pe) {
		t.Fatalf("Run on this machine failed to run, not just to pass: %v", err)
	}
	t.Logf("output:\n%s\nerror: %v", out.String(), err)
	t.Logf("host facts: %+v", DetectHostFacts(LocalSystem()))
}
