package testutil

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHServerOptions configures NewSSHServer.
type SSHServerOptions struct {
	// AuthorizedKeys are the public keys the server accepts, for any user.
	AuthorizedKeys []ssh.PublicKey
	// RejectAuth makes the server refuse every login.
	RejectAuth bool
	// HostKeys are the server's host keys; by default one fresh ed25519 key.
	HostKeys []ssh.Signer
	// Env is added to the environment of the commands the server runs,
	// e.g. "PATH=/fake/bin:..." to put a fake sudo first.
	Env []string
}

// SSHServer is an in-process SSH server on 127.0.0.1 for tests. It runs
// "exec" requests with sh -c as the current user, delivers "signal"
// requests to the command's process group, answers keepalive@openssh.com,
// and forwards "direct-tcpip" channels to loopback addresses only.
type SSHServer struct {
	// Addr is "127.0.0.1:port"; Host and Port are its parts.
	Addr string
	Host string
	Port int
	// HostKey is the first host key; HostKeys are all of them.
	HostKey  ssh.PublicKey
	HostKeys []ssh.PublicKey

	opts     SSHServerOptions
	config   *ssh.ServerConfig
	listener net.Listener
	wg       sync.WaitGroup

	accepted   atomic.Int64
	execs      atomic.Int64
	keepalives atomic.Int64
	forwards   atomic.Int64
	signals    atomic.Int64

	mu       sync.Mutex
	closed   bool
	conns    map[net.Conn]struct{}
	procs    map[*serverProc]struct{}
	commands []string
	users    []string
}

// serverProc is a command the server started.
type serverProc struct {
	mu     sync.Mutex
	pid    int
	exited bool
}

// kill signals the process group unless the process was already reaped.
func (p *serverProc) kill(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.exited {
		_ = syscall.Kill(-p.pid, sig)
	}
}

// NewSSHServer starts a server on 127.0.0.1:0; it stops when the test ends.
func NewSSHServer(t testing.TB, opts SSHServerOptions) *SSHServer {
	t.Helper()
	if len(opts.HostKeys) == 0 {
		opts.HostKeys = []ssh.Signer{NewSSHKey(t, "").Signer}
	}
	s := &SSHServer{
		opts:  opts,
		conns: make(map[net.Conn]struct{}),
		procs: make(map[*serverProc]struct{}),
	}
	s.config = &ssh.ServerConfig{PublicKeyCallback: s.checkKey}
	for _, k := range opts.HostKeys {
		s.config.AddHostKey(k)
		s.HostKeys = append(s.HostKeys, k.PublicKey())
	}
	s.HostKey = s.HostKeys[0]

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("starting test ssh server: %v", err)
	}
	s.listener = l
	s.Addr = l.Addr().String()
	host, port, _ := net.SplitHostPort(s.Addr)
	s.Host = host
	s.Port, _ = strconv.Atoi(port)
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.Close)
	return s
}

func (s *SSHServer) checkKey(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	s.mu.Lock()
	s.users = append(s.users, meta.User())
	s.mu.Unlock()
	if s.opts.RejectAuth {
		return nil, errors.New("test server rejects every key")
	}
	for _, k := range s.opts.AuthorizedKeys {
		if string(k.Marshal()) == string(key.Marshal()) {
			return nil, nil
		}
	}
	return nil, errors.New("key not authorized")
}

// ConnCount is the number of connections accepted (an SSH client's, or a bastion's
// tunnel's).
func (s *SSHServer) ConnCount() int { return int(s.accepted.Load()) }

// ExecCount is the number of exec requests received.
func (s *SSHServer) ExecCount() int { return int(s.execs.Load()) }

// KeepaliveCount is the number of keepalive@openssh.com requests answered.
func (s *SSHServer) KeepaliveCount() int { return int(s.keepalives.Load()) }

// ForwardCount is the number of direct-tcpip channels forwarded.
func (s *SSHServer) ForwardCount() int { return int(s.forwards.Load()) }

// SignalCount is the number of signal requests received.
func (s *SSHServer) SignalCount() int { return int(s.signals.Load()) }

// Commands returns the commands of the exec requests, in order.
func (s *SSHServer) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...)
}

// Users returns the user names of the login attempts, in order.
func (s *SSHServer) Users() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.users...)
}

// KnownHostsLine is the known_hosts line for the server's first host key.
func (s *SSHServer) KnownHostsLine() string {
	return knownhosts.Line([]string{s.Addr}, s.HostKey)
}

// CloseConnections drops every open connection; the server keeps listening.
func (s *SSHServer) CloseConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// Close stops the server: it stops listening, drops every connection,
// kills the commands still running and waits for its goroutines.
func (s *SSHServer) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.listener.Close()
	for c := range s.conns {
		c.Close()
	}
	for p := range s.procs {
		p.kill(syscall.SIGKILL)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// track registers a connection to drop on Close; false if already closed.
func (s *SSHServer) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *SSHServer) untrack(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

func (s *SSHServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.listener.Accept()
		if err != nil {
			return
		}
		if !s.track(c) {
			c.Close()
			return
		}
		s.accepted.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(c)
			defer c.Close()
			s.serveConn(c)
		}()
	}
}

func (s *SSHServer) serveConn(c net.Conn) {
	_, chans, reqs, err := ssh.NewServerConn(c, s.config)
	if err != nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for req := range reqs {
			if req.Type == "keepalive@openssh.com" {
				s.keepalives.Add(1)
				req.Reply(true, nil)
				continue
			}
			req.Reply(false, nil)
		}
	}()
	var chanWG sync.WaitGroup
	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
			chanWG.Add(1)
			go func() {
				defer chanWG.Done()
				s.serveSession(nc)
			}()
		case "direct-tcpip":
			chanWG.Add(1)
			go func() {
				defer chanWG.Done()
				s.serveForward(nc)
			}()
		default:
			nc.Reject(ssh.UnknownChannelType, "test server serves session and direct-tcpip channels only")
		}
	}
	c.Close()
	chanWG.Wait()
}

func (s *SSHServer) serveSession(nc ssh.NewChannel) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	var proc *serverProc
	exited := make(chan struct{})
	for req := range reqs {
		switch req.Type {
		case "exec":
			var payload struct{ Command string }
			if proc != nil || ssh.Unmarshal(req.Payload, &payload) != nil {
				req.Reply(false, nil)
				continue
			}
			s.execs.Add(1)
			s.mu.Lock()
			s.commands = append(s.commands, payload.Command)
			s.mu.Unlock()
			p, err := s.start(ch, payload.Command, exited)
			if err != nil {
				req.Reply(false, nil)
				continue
			}
			proc = p
			req.Reply(true, nil)
		case "signal":
			s.signals.Add(1)
			var payload struct{ Signal string }
			if proc != nil && ssh.Unmarshal(req.Payload, &payload) == nil {
				if sig, ok := signalsByName[payload.Signal]; ok {
					proc.kill(sig)
				}
			}
			if req.WantReply {
				req.Reply(proc != nil, nil)
			}
		default:
			// env, pty-req, shell, subsystem: not supported.
			if req.WantReply {
				req.Reply(false, nil)
			}
		}
	}
	// The client closed the channel: do not leave its command running.
	if proc != nil {
		proc.kill(syscall.SIGKILL)
		<-exited
	}
}

var signalsByName = map[string]syscall.Signal{
	"KILL": syscall.SIGKILL, "TERM": syscall.SIGTERM, "INT": syscall.SIGINT,
	"HUP": syscall.SIGHUP, "QUIT": syscall.SIGQUIT, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2,
}

// start runs command with sh -c, its output on ch, and reports the exit on
// ch before closing exited.
func (s *SSHServer) start(ch ssh.Channel, command string, exited chan struct{}) (*serverProc, error) {
	cmd := exec.Command("sh", "-c", command)
	cmd.Env = append(os.Environ(), s.opts.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout = ch
	cmd.Stderr = ch.Stderr()
	cmd.WaitDelay = time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &serverProc{pid: cmd.Process.Pid}
	s.mu.Lock()
	s.procs[p] = struct{}{}
	s.mu.Unlock()

	go func() {
		io.Copy(stdin, ch)
		stdin.Close()
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(exited)
		cmd.Wait()
		p.mu.Lock()
		p.exited = true
		p.mu.Unlock()
		s.mu.Lock()
		delete(s.procs, p)
		s.mu.Unlock()

		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			name := "KILL"
			for n, sig := range signalsByName {
				if sig == ws.Signal() {
					name = n
				}
			}
			ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
				Signal     string
				CoreDumped bool
				Error      string
				Lang       string
			}{Signal: name}))
		} else {
			ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(ws.ExitStatus())}))
		}
		ch.Close()
	}()
	return p, nil
}

// serveForward connects a direct-tcpip channel to a loopback address.
func (s *SSHServer) serveForward(nc ssh.NewChannel) {
	var target struct {
		Host       string
		Port       uint32
		OriginHost string
		OriginPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &target); err != nil {
		nc.Reject(ssh.ConnectionFailed, "malformed direct-tcpip request")
		return
	}
	if ip := net.ParseIP(target.Host); ip == nil || !ip.IsLoopback() {
		nc.Reject(ssh.Prohibited, "test server forwards to loopback addresses only")
		return
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(target.Host, strconv.Itoa(int(target.Port))), 5*time.Second)
	if err != nil {
		nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	if !s.track(c) {
		c.Close()
		nc.Reject(ssh.ConnectionFailed, "test server is closing")
		return
	}
	defer s.untrack(c)
	ch, reqs, err := nc.Accept()
	if err != nil {
		c.Close()
		return
	}
	s.forwards.Add(1)
	go ssh.DiscardRequests(reqs)
	done := make(chan struct{}, 2)
	go func() {
		io.Copy(c, ch)
		done <- struct{}{}
	}()
	go func() {
		io.Copy(ch, c)
		done <- struct{}{}
	}()
	<-done
	c.Close()
	ch.Close()
	<-done
}

// SSHKey is a test key pair.
type SSHKey struct {
	Signer  ssh.Signer
	Public  ssh.PublicKey
	Private ed25519.PrivateKey
	// Path is the private key in OpenSSH format, encrypted when a
	// passphrase was given.
	Path string
}

// NewSSHKey makes an ed25519 key and writes it (0600) to a file in a
// temporary directory, encrypted with passphrase unless it is empty.
func NewSSHKey(t testing.TB, passphrase string) SSHKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("generating ssh key: %v", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatalf("generating ssh key: %v", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatalf("generating ssh key: %v", err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "kforge test key")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "kforge test key", []byte(passphrase))
	}
	if err != nil {
		t.Fatalf("encoding ssh key: %v", err)
	}
	path := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatalf("writing ssh key: %v", err)
	}
	return SSHKey{Signer: signer, Public: sshPub, Private: priv, Path: path}
}

// NewSSHAgent serves an in-process ssh-agent holding keys on a Unix socket
// and returns the socket's path (what SSH_AUTH_SOCK would hold).
func NewSSHAgent(t testing.TB, keys ...SSHKey) string {
	t.Helper()
	keyring := agent.NewKeyring()
	for _, k := range keys {
		if err := keyring.Add(agent.AddedKey{PrivateKey: k.Private}); err != nil {
			t.Fatalf("adding key to test ssh-agent: %v", err)
		}
	}
	// A short directory: Unix socket paths are limited to about 100 bytes.
	dir, err := os.MkdirTemp("", "agent")
	if err != nil {
		t.Fatalf("starting test ssh-agent: %v", err)
	}
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("starting test ssh-agent: %v", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				agent.ServeAgent(keyring, c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
		os.RemoveAll(dir)
	})
	return sock
}
