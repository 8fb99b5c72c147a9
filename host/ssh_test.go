package host_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/kforge/kforge/host"
	"github.com/kforge/kforge/internal/testutil"
)

func TestDialAuthFailure(t *testing.T) {
	tests := []struct {
		name     string
		opts     testutil.SSHServerOptions
		edit     func(t *testing.T, cfg *host.SSHConfig)
		wantText []string
	}{
		{
			name: "key not authorized",
			edit: func(t *testing.T, cfg *host.SSHConfig) {
				cfg.KeyFiles = []string{testutil.NewSSHKey(t, "").Path}
				cfg.User = "deploy"
			},
			wantText: []string{`user "deploy"`, "authorized_keys"},
		},
		{
			name:     "server refuses every key",
			opts:     testutil.SSHServerOptions{RejectAuth: true},
			wantText: []string{`user "root"`, "key /"},
		},
		{
			name:     "no key configured",
			edit:     func(t *testing.T, cfg *host.SSHConfig) { cfg.KeyFiles = nil },
			wantText: []string{"no ssh key"},
		},
		{
			name: "passphrase-protected key without agent",
			edit: func(t *testing.T, cfg *host.SSHConfig) {
				cfg.KeyFiles = []string{testutil.NewSSHKey(t, "correct horse").Path}
			},
			wantText: []string{"passphrase", "ssh-add"},
		},
		{
			name: "agent requested but not running",
			edit: func(t *testing.T, cfg *host.SSHConfig) {
				cfg.KeyFiles = nil
				cfg.UseAgent = true
				cfg.AgentSocket = filepath.Join(t.TempDir(), "no-agent")
			},
			wantText: []string{"ssh-agent"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newSSHFixture(t, tc.opts)
			cfg := f.cfg
			if tc.edit != nil {
				tc.edit(t, &cfg)
			}
			h, err := host.Dial(testContext(t), cfg)
			if err == nil {
				h.Close()
				t.Fatal("Dial succeeded, want an authentication error")
			}
			if !errors.Is(err, host.ErrAuth) {
				t.Fatalf("Dial error = %v, want ErrAuth", err)
			}
			for _, want := range tc.wantText {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if n := f.srv.ExecCount(); n != 0 {
				t.Errorf("server ran %d commands, want none", n)
			}
		})
	}
}

func TestDialWithAgent(t *testing.T) {
	tests := []struct {
		name     string
		keyFiles func(key testutil.SSHKey) []string
	}{
		{"agent only", func(testutil.SSHKey) []string { return nil }},
		{"passphrase-protected key file held by the agent", func(key testutil.SSHKey) []string { return []string{key.Path} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key := testutil.NewSSHKey(t, "correct horse")
			f := newSSHFixture(t, testutil.SSHServerOptions{AuthorizedKeys: []ssh.PublicKey{key.Public}})
			cfg := f.cfg
			cfg.KeyFiles = tc.keyFiles(key)
			cfg.UseAgent = true
			cfg.AgentSocket = testutil.NewSSHAgent(t, key)
			h := dial(t, cfg)
			if _, err := h.Run(testContext(t), host.Cmd{Args: []string{"true"}}); err != nil {
				t.Fatalf("Run: %v", err)
			}
		})
	}
}

func TestDialUnknownHostKey(t *testing.T) {
	tests := []struct {
		name       string
		knownHosts string // content; "-" for no file
	}{
		{"no known_hosts file", "-"},
		{"other hosts only", "[127.0.0.1]:1 " + "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newSSHFixture(t, testutil.SSHServerOptions{})
			cfg := f.cfg
			cfg.KnownHostsPath = filepath.Join(t.TempDir(), "known_hosts")
			if tc.knownHosts != "-" {
				writeFile(t, cfg.KnownHostsPath, tc.knownHosts, 0o600)
			}
			_, err := host.Dial(testContext(t), cfg)
			if !errors.Is(err, host.ErrUnknownHostKey) {
				t.Fatalf("Dial error = %v, want ErrUnknownHostKey", err)
			}
			for _, want := range []string{
				ssh.FingerprintSHA256(f.srv.HostKey),
				"ssh-ed25519",
				fmt.Sprintf("ssh-keyscan -t ed25519 -p %d 127.0.0.1 >> %s", f.srv.Port, cfg.KnownHostsPath),
				"--accept-new-host-keys",
			} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if n := f.srv.ExecCount(); n != 0 {
				t.Errorf("server ran %d commands, want none", n)
			}
			if tc.knownHosts == "-" {
				if _, err := os.Stat(cfg.KnownHostsPath); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("known_hosts was created without AcceptNewHostKeys (stat: %v)", err)
				}
			} else if got := readFile(t, cfg.KnownHostsPath); got != tc.knownHosts {
				t.Errorf("known_hosts changed without AcceptNewHostKeys:\n%s", got)
			}
		})
	}
}

func TestDialAcceptNewHostKey(t *testing.T) {
	f := newSSHFixture(t, testutil.SSHServerOptions{})
	cfg := f.cfg
	cfg.KnownHostsPath = filepath.Join(t.TempDir(), "ssh", "known_hosts")
	cfg.AcceptNewHostKeys = true
	var mu sync.Mutex
	var notes []string
	cfg.OnNewHostKey = func(host, fingerprint string) {
		mu.Lock()
		defer mu.Unlock()
		notes = append(notes, host+" "+fingerprint)
	}

	// Many connections at once must record the key exactly once.
	const dials = 8
	var wg sync.WaitGroup
	errs := make([]error, dials)
	for i := range dials {
		wg.Go(func() {
			h, err := host.Dial(testContext(t), cfg)
			if err == nil {
				h.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("Dial with AcceptNewHostKeys: %v", err)
	}
	wantLine := knownhosts.Line([]string{f.srv.Addr}, f.srv.HostKey) + "\n"
	if got := readFile(t, cfg.KnownHostsPath); got != wantLine {
		t.Errorf("known_hosts = %q, want exactly %q", got, wantLine)
	}
	fi, err := os.Stat(cfg.KnownHostsPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("known_hosts mode = %v, want 0600", fi.Mode().Perm())
	}
	fp := ssh.FingerprintSHA256(f.srv.HostKey)
	if len(notes) != 1 || !strings.Contains(notes[0], fp) || !strings.Contains(notes[0], "h1") {
		t.Errorf("OnNewHostKey calls = %q, want one naming h1 and %s", notes, fp)
	}

	// Without AcceptNewHostKeys the recorded key now verifies.
	cfg.AcceptNewHostKeys = false
	h := dial(t, cfg)
	if _, err := h.Run(testContext(t), host.Cmd{Args: []string{"true"}}); err != nil {
		t.Fatalf("Run after recording the key: %v", err)
	}
}

func TestDialAcceptNewHostKeyAppends(t *testing.T) {
	f := newSSHFixture(t, testutil.SSHServerOptions{})
	cfg := f.cfg
	cfg.AcceptNewHostKeys = true
	// An existing file without a final newline keeps its line intact.
	const other = "[127.0.0.1]:1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	writeFile(t, cfg.KnownHostsPath, other, 0o600)
	dial(t, cfg)
	want := other + "\n" + knownhosts.Line([]string{f.srv.Addr}, f.srv.HostKey) + "\n"
	if got := readFile(t, cfg.KnownHostsPath); got != want {
		t.Errorf("known_hosts = %q, want %q", got, want)
	}
}

func TestDialHostKeyChanged(t *testing.T) {
	for _, accept := range []bool{false, true} {
		t.Run(fmt.Sprintf("AcceptNewHostKeys=%v", accept), func(t *testing.T) {
			f := newSSHFixture(t, testutil.SSHServerOptions{})
			old := testutil.NewSSHKey(t, "").Public
			content := "# comment\n" + knownhosts.Line([]string{f.srv.Addr}, old) + "\n"
			writeFile(t, f.knownHosts, content, 0o600)
			cfg := f.cfg
			cfg.AcceptNewHostKeys = accept

			_, err := host.Dial(testContext(t), cfg)
			if !errors.Is(err, host.ErrHostKeyChanged) {
				t.Fatalf("Dial error = %v, want ErrHostKeyChanged", err)
			}
			for _, want := range []string{
				f.knownHosts + ":2",
				ssh.FingerprintSHA256(f.srv.HostKey),
				ssh.FingerprintSHA256(old),
				"ssh-keygen -R",
			} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if got := readFile(t, f.knownHosts); got != content {
				t.Errorf("known_hosts was modified:\n%s", got)
			}
			if n := f.srv.ExecCount(); n != 0 {
				t.Errorf("server ran %d commands, want none", n)
			}
		})
	}
}

// TestDialPrefersKnownKeyType: the server has an ECDSA and an ed25519 key and
// known_hosts holds only the ed25519 one. With the library's default order
// the server would present ECDSA and the connection would fail as a changed
// key.
func TestDialPrefersKnownKeyType(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecdsaSigner, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	ed := testutil.NewSSHKey(t, "")
	f := newSSHFixture(t, testutil.SSHServerOptions{HostKeys: []ssh.Signer{ecdsaSigner, ed.Signer}})
	writeFile(t, f.knownHosts, knownhosts.Line([]string{f.srv.Addr}, ed.Public)+"\n", 0o600)
	h := f.dial(t)
	if _, err := h.Run(testContext(t), host.Cmd{Args: []string{"true"}}); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestDialCancelAndTimeout(t *testing.T) {
	// A listener that accepts TCP connections but never speaks SSH.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	key := testutil.NewSSHKey(t, "")
	cfg := host.SSHConfig{
		Name: "h1", Address: "127.0.0.1", Port: port, KeyFiles: []string{key.Path},
		KnownHostsPath: filepath.Join(t.TempDir(), "known_hosts"),
	}

	t.Run("timeout", func(t *testing.T) {
		cfg := cfg
		cfg.DialTimeout = 200 * time.Millisecond
		start := time.Now()
		_, err := host.Dial(testContext(t), cfg)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Dial error = %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Dial took %s with a 200ms timeout", d)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(testContext(t), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := host.Dial(ctx, cfg)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Dial error = %v, want the context's error", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Dial took %s after its context ended", d)
		}
	})
}

func TestBastion(t *testing.T) {
	key := testutil.NewSSHKey(t, "")
	jump := testutil.NewSSHServer(t, testutil.SSHServerOptions{AuthorizedKeys: []ssh.PublicKey{key.Public}})
	target := testutil.NewSSHServer(t, testutil.SSHServerOptions{AuthorizedKeys: []ssh.PublicKey{key.Public}})
	knownHosts := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, knownHosts, jump.KnownHostsLine()+"\n"+target.KnownHostsLine()+"\n", 0o600)

	h := dial(t, host.SSHConfig{
		Name:           "h1",
		Address:        target.Host,
		Port:           target.Port,
		KeyFiles:       []string{key.Path},
		KnownHostsPath: knownHosts,
		Bastion:        &host.SSHConfig{Address: jump.Host, Port: jump.Port, User: "jumper"},
	})
	res, err := h.Run(testContext(t), host.Cmd{Args: []string{"echo", "through the bastion"}})
	if err != nil {
		t.Fatalf("Run through bastion: %v", err)
	}
	if string(res.Stdout) != "through the bastion\n" {
		t.Errorf("stdout = %q", res.Stdout)
	}
	if jump.ForwardCount() != 1 || jump.ExecCount() != 0 || target.ExecCount() != 1 {
		t.Errorf("bastion forwards %d, bastion execs %d, target execs %d; want 1, 0, 1",
			jump.ForwardCount(), jump.ExecCount(), target.ExecCount())
	}
	if users := jump.Users(); len(users) == 0 || users[0] != "jumper" {
		t.Errorf("bastion login users = %q, want jumper", users)
	}
	if want := fmt.Sprintf("h1 (root@%s via %s)", target.Addr, jump.Host); h.String() != want {
		t.Errorf("String() = %q, want %q", h.String(), want)
	}

	// The bastion's host key is verified too.
	writeFile(t, knownHosts, target.KnownHostsLine()+"\n", 0o600)
	_, err = host.Dial(testContext(t), host.SSHConfig{
		Name: "h1", Address: target.Host, Port: target.Port, KeyFiles: []string{key.Path},
		KnownHostsPath: knownHosts, Bastion: &host.SSHConfig{Address: jump.Host, Port: jump.Port},
	})
	if !errors.Is(err, host.ErrUnknownHostKey) || !strings.Contains(err.Error(), "bastion") {
		t.Errorf("Dial with an unknown bastion key: error = %v, want ErrUnknownHostKey about the bastion", err)
	}
}

func TestKeepAlive(t *testing.T) {
	f := newSSHFixture(t, testutil.SSHServerOptions{})
	cfg := f.cfg
	cfg.KeepAlive = 20 * time.Millisecond
	h := dial(t, cfg)
	waitFor(t, 3*time.Second, "two keepalives", func() bool { return f.srv.KeepaliveCount() >= 2 })

	f.srv.CloseConnections()
	// Once the keepalive notices, the connection is closed and Run fails
	// at once instead of hanging.
	waitFor(t, 3*time.Second, "Run to fail on the dropped connection", func() bool {
		ctx, cancel := context.WithTimeout(testContext(t), time.Second)
		defer cancel()
		_, err := h.Run(ctx, host.Cmd{Args: []string{"true"}})
		return err != nil && !errors.Is(err, context.DeadlineExceeded)
	})
}

// fakeSudo writes a sudo script that exits with code and otherwise checks
// for -n -- and runs its arguments, and returns the server env putting it
// first in PATH.
func fakeSudo(t *testing.T, fail bool) []string {
	t.Helper()
	dir := t.TempDir()
	script := `#!/bin/sh
[ "$1" = "-n" ] || { echo "fake sudo: want -n first, got $*" >&2; exit 90; }
shift
[ "$1" = "--" ] && shift
exec "$@"
`
	if fail {
		script = "#!/bin/sh\necho 'sudo: a password is required' >&2\nexit 1\n"
	}
	writeFile(t, filepath.Join(dir, "sudo"), script, 0o755)
	return []string{"PATH=" + dir + ":" + os.Getenv("PATH")}
}

func TestSudo(t *testing.T) {
	t.Run("passwordless sudo wraps every command", func(t *testing.T) {
		f := newSSHFixture(t, testutil.SSHServerOptions{Env: fakeSudo(t, false)})
		cfg := f.cfg
		cfg.User = "deploy"
		h := dial(t, cfg)
		for range 2 {
			res, err := h.Run(testContext(t), host.Cmd{Args: []string{"echo", "it's sudo"}})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if string(res.Stdout) != "it's sudo\n" {
				t.Errorf("stdout = %q", res.Stdout)
			}
		}
		if _, err := h.Run(testContext(t), host.Cmd{Script: "test -n \"$0\" && echo ok"}); err != nil {
			t.Fatalf("Run script: %v", err)
		}
		cmds := f.srv.Commands()
		if len(cmds) != 4 || cmds[0] != "sudo -n true" {
			t.Fatalf("commands = %q, want the sudo check once and then 3 commands", cmds)
		}
		for _, c := range cmds[1:] {
			if !strings.HasPrefix(c, "sudo -n -- sh -c ") {
				t.Errorf("command %q is not wrapped in sudo -n -- sh -c", c)
			}
		}
	})
	t.Run("no passwordless sudo", func(t *testing.T) {
		f := newSSHFixture(t, testutil.SSHServerOptions{Env: fakeSudo(t, true)})
		cfg := f.cfg
		cfg.User = "deploy"
		h := dial(t, cfg)
		for range 2 {
			_, err := h.Run(testContext(t), host.Cmd{Args: []string{"true"}})
			if !errors.Is(err, host.ErrNoSudo) {
				t.Fatalf("Run error = %v, want ErrNoSudo", err)
			}
			for _, want := range []string{"deploy", "h1", "NOPASSWD", "a password is required"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		}
		if n := f.srv.ExecCount(); n != 1 {
			t.Errorf("server ran %d commands, want only the sudo check, once", n)
		}
	})
	for _, tc := range []struct {
		name string
		user string
		mode host.SudoMode
	}{
		{"root needs no sudo", "root", host.SudoAuto},
		{"SudoNever", "deploy", host.SudoNever},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSSHFixture(t, testutil.SSHServerOptions{Env: fakeSudo(t, true)})
			cfg := f.cfg
			cfg.User, cfg.Sudo = tc.user, tc.mode
			h := dial(t, cfg)
			if _, err := h.Run(testContext(t), host.Cmd{Args: []string{"true"}}); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if cmds := f.srv.Commands(); len(cmds) != 1 || cmds[0] != "true" {
				t.Errorf("commands = %q, want just %q", cmds, "true")
			}
		})
	}
}

func TestSSHHostString(t *testing.T) {
	f := newSSHFixture(t, testutil.SSHServerOptions{})
	h := f.dial(t)
	if h.Name() != "h1" {
		t.Errorf("Name() = %q, want h1", h.Name())
	}
	if want := fmt.Sprintf("h1 (root@%s)", f.srv.Addr); h.String() != want {
		t.Errorf("String() = %q, want %q", h.String(), want)
	}
}

func TestConcurrentRuns(t *testing.T) {
	f := newSSHFixture(t, testutil.SSHServerOptions{})
	h := f.dial(t)
	// More than MaxSessions at once: the extra ones wait for a session.
	const n = 3 * host.DefaultMaxSessions
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			res, err := h.Run(testContext(t), host.Cmd{Script: fmt.Sprintf("sleep 0.05; echo %d", i)})
			if err == nil && string(res.Stdout) != fmt.Sprintf("%d\n", i) {
				err = fmt.Errorf("command %d printed %q", i, res.Stdout)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// TestSecretsStayOutOfLogs runs a failing command that gets a secret on
// stdin, with debug logging on, and checks that neither the log nor the
// error contains it.
func TestSecretsStayOutOfLogs(t *testing.T) {
	const secret = "abcdef.0123456789abcdef"
	f := newSSHFixture(t, testutil.SSHServerOptions{})
	var logs bytes.Buffer
	cfg := f.cfg
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := dial(t, cfg)
	_, err := h.Run(testContext(t), host.Cmd{Script: "read token; echo \"bad token\" >&2; exit 1", Stdin: strings.NewReader(secret + "\n")})
	if err == nil {
		t.Fatal("Run succeeded, want the command's failure")
	}
	if !strings.Contains(logs.String(), "read token") {
		t.Fatalf("debug log does not mention the command, so this test checks nothing:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), secret) || strings.Contains(err.Error(), secret) {
		t.Errorf("secret leaked:\nlog: %s\nerror: %v", logs.String(), err)
	}
}

// TestBastionShared: hosts dialled at once through the same bastion with one Bastions
// share one connection to it, which outlives every host but the last; the next dial after
// that connects again.
func TestBastionShared(t *testing.T) {
	key := testutil.NewSSHKey(t, "")
	jump := testutil.NewSSHServer(t, testutil.SSHServerOptions{AuthorizedKeys: []ssh.PublicKey{key.Public}})
	target := testutil.NewSSHServer(t, testutil.SSHServerOptions{AuthorizedKeys: []ssh.PublicKey{key.Public}})
	knownHosts := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, knownHosts, jump.KnownHostsLine()+"\n"+target.KnownHostsLine()+"\n", 0o600)
	var bastions host.Bastions
	cfg := func(name string) host.SSHConfig {
		return host.SSHConfig{
			Name: name, Address: target.Host, Port: target.Port, KeyFiles: []string{key.Path},
			KnownHostsPath: knownHosts, DialTimeout: 5 * time.Second,
			Bastion:  &host.SSHConfig{Address: jump.Host, Port: jump.Port, User: "jumper"},
			Bastions: &bastions,
		}
	}

	const n = 12
	hosts := make([]*host.SSHHost, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hosts[i], errs[i] = host.Dial(testContext(t), cfg(fmt.Sprintf("h%d", i)))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Dial h%d: %v", i, err)
		}
	}
	if got := jump.ConnCount(); got != 1 {
		t.Errorf("the bastion got %d connections for %d hosts, want 1", got, n)
	}
	if got := jump.ForwardCount(); got != n {
		t.Errorf("the bastion forwarded %d tunnels, want %d", got, n)
	}

	// Closing all but one host leaves the last one working through the bastion.
	for _, h := range hosts[1:] {
		if err := h.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	res, err := hosts[0].Run(testContext(t), host.Cmd{Args: []string{"echo", "still through"}})
	if err != nil || string(res.Stdout) != "still through\n" {
		t.Fatalf("Run after the other hosts closed: %q, %v", res.Stdout, err)
	}
	if err := hosts[0].Close(); err != nil {
		t.Errorf("Close: %v", err)
	}

	// The last host closed the bastion connection: a new host dials a new one.
	h := dial(t, cfg("again"))
	if _, err := h.Run(testContext(t), host.Cmd{Args: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
	if got := jump.ConnCount(); got != 2 {
		t.Errorf("the bastion got %d connections in all, want 2: the first should have been closed with its last host", got)
	}
}
