package host_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kforge/kforge/host"
	"github.com/kforge/kforge/internal/testutil"
)

// sshFixture is an in-process SSH server, a key it accepts, a known_hosts
// file that trusts it, and a config that reaches it. The config's system-wide
// known_hosts is a file in the test's directory that does not exist yet, so
// that the machine's /etc/ssh/ssh_known_hosts plays no part.
type sshFixture struct {
	srv        *testutil.SSHServer
	key        testutil.SSHKey
	knownHosts string
	cfg        host.SSHConfig
}

func newSSHFixture(t *testing.T, opts testutil.SSHServerOptions) *sshFixture {
	t.Helper()
	key := testutil.NewSSHKey(t, "")
	opts.AuthorizedKeys = append(opts.AuthorizedKeys, key.Public)
	srv := testutil.NewSSHServer(t, opts)
	dir := t.TempDir()
	knownHosts := filepath.Join(dir, "known_hosts")
	writeFile(t, knownHosts, srv.KnownHostsLine()+"\n", 0o600)
	return &sshFixture{
		srv:        srv,
		key:        key,
		knownHosts: knownHosts,
		cfg: host.SSHConfig{
			Name:                 "h1",
			Address:              srv.Host,
			Port:                 srv.Port,
			KeyFiles:             []string{key.Path},
			KnownHostsPath:       knownHosts,
			SystemKnownHostsPath: filepath.Join(dir, "ssh_known_hosts"),
			DialTimeout:          5 * time.Second,
		},
	}
}

// dial connects with f.cfg and closes the host when the test ends.
func (f *sshFixture) dial(t *testing.T) *host.SSHHost {
	t.Helper()
	return dial(t, f.cfg)
}

func dial(t *testing.T, cfg host.SSHConfig) *host.SSHHost {
	t.Helper()
	h, err := host.Dial(testContext(t), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

// newSSHHost dials a fresh in-process SSH server as host "h1" and returns both.
func newSSHHost(t *testing.T) (host.Host, *testutil.SSHServer) {
	t.Helper()
	f := newSSHFixture(t, testutil.SSHServerOptions{})
	return f.dial(t), f.srv
}

// testContext is cancelled when the test ends and at the latest after 20s,
// so a hung command fails the test instead of the whole run.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitFor polls cond every 10ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
