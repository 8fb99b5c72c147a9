package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSH defaults.
const (
	DefaultSSHPort     = 22
	DefaultSSHUser     = "root"
	DefaultKeepAlive   = 15 * time.Second
	DefaultDialTimeout = 10 * time.Second
	// DefaultMaxSessions stays under OpenSSH's MaxSessions default of 10.
	DefaultMaxSessions = 8
)

// keepAliveRequest is the global request OpenSSH answers to prove liveness.
const keepAliveRequest = "keepalive@openssh.com"

// minKeepAliveWait is the least time a keepalive may go unanswered.
const minKeepAliveWait = 2 * time.Second

// cancelGrace is how long Run waits for a killed command's session to wind
// down before returning anyway.
const cancelGrace = 2 * time.Second

// SudoMode says when commands run under sudo.
type SudoMode int

const (
	// SudoAuto runs commands with sudo -n when User is not root, after
	// checking once that passwordless sudo works.
	SudoAuto SudoMode = iota
	// SudoNever runs commands as User.
	SudoNever
)

// SSHConfig says how to reach a host over SSH.
type SSHConfig struct {
	// Name is the host's name in cluster.toml; defaults to Address.
	Name string
	// Address is a host name or IP address.
	Address string
	// Port defaults to 22.
	Port int
	// User defaults to root.
	User string
	// KeyFiles are private key files. Passphrase-protected keys are
	// skipped when UseAgent is set (the agent is expected to hold them)
	// and an error otherwise.
	KeyFiles []string
	// UseAgent also offers the keys held by ssh-agent.
	UseAgent bool
	// AgentSocket is the ssh-agent socket; defaults to $SSH_AUTH_SOCK.
	AgentSocket string
	// KnownHostsPath defaults to ~/.ssh/known_hosts.
	KnownHostsPath string
	// AcceptNewHostKeys records the key of a host known_hosts does not list
	// yet (trust on first use). A changed key is always refused.
	AcceptNewHostKeys bool
	// OnNewHostKey, if set, is told about each recorded key, with host as
	// the host's description and fingerprint as "<type> SHA256:...".
	OnNewHostKey func(host, fingerprint string)
	// Bastion, if set, is a jump host the connection is tunnelled through.
	// Its empty KnownHostsPath, KeyFiles, AgentSocket, DialTimeout,
	// KeepAlive, OnNewHostKey and Logger are taken from this config, and
	// UseAgent and AcceptNewHostKeys are enabled when they are here.
	Bastion *SSHConfig
	// Bastions, if set, shares the bastion connection with the other hosts dialled with
	// the same Bastions through the same bastion; without it each host dials its own.
	Bastions *Bastions
	// KeepAlive is the interval between keepalive requests; defaults to
	// 15s, negative disables. The connection is closed when a keepalive
	// fails or goes unanswered for three intervals (at least 2s).
	KeepAlive time.Duration
	// DialTimeout bounds connecting and the SSH handshake; defaults to 10s.
	DialTimeout time.Duration
	// Sudo defaults to SudoAuto.
	Sudo SudoMode
	// MaxSessions bounds concurrent commands on the connection; defaults
	// to DefaultMaxSessions.
	MaxSessions int
	// Logger receives diagnostics; defaults to discarding them.
	Logger *slog.Logger
}

func (c SSHConfig) withDefaults() (SSHConfig, error) {
	if c.Address == "" {
		return c, errors.New("invalid ssh config: no address")
	}
	if c.Name == "" {
		c.Name = c.Address
	}
	if c.Port == 0 {
		c.Port = DefaultSSHPort
	}
	if c.Port < 0 || c.Port > 65535 {
		return c, fmt.Errorf("invalid ssh config for %s: port %d out of range", c.Name, c.Port)
	}
	if c.User == "" {
		c.User = DefaultSSHUser
	}
	if c.KnownHostsPath == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return c, fmt.Errorf("finding the default known_hosts file: %w", err)
		}
		c.KnownHostsPath = home + "/.ssh/known_hosts"
	}
	c.KnownHostsPath = expandHome(c.KnownHostsPath)
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// bastionConfig is the bastion's config with the inherited fields filled in.
func (c SSHConfig) bastionConfig() SSHConfig {
	b := *c.Bastion
	if b.KnownHostsPath == "" {
		b.KnownHostsPath = c.KnownHostsPath
	}
	if len(b.KeyFiles) == 0 {
		b.KeyFiles = c.KeyFiles
	}
	if b.AgentSocket == "" {
		b.AgentSocket = c.AgentSocket
	}
	if b.DialTimeout == 0 {
		b.DialTimeout = c.DialTimeout
	}
	if b.KeepAlive == 0 {
		b.KeepAlive = c.KeepAlive
	}
	if b.OnNewHostKey == nil {
		b.OnNewHostKey = c.OnNewHostKey
	}
	if b.Logger == nil {
		b.Logger = c.Logger
	}
	b.UseAgent = b.UseAgent || c.UseAgent
	b.AcceptNewHostKeys = b.AcceptNewHostKeys || c.AcceptNewHostKeys
	return b
}

// SSHHost is a host reached over SSH: one connection, one session per
// command.
type SSHHost struct {
	cfg       SSHConfig
	addr      string // host:port
	client    *ssh.Client
	bastion   *SSHHost
	agentConn net.Conn
	sessions  chan struct{}

	// releaseBastion gives the bastion connection back (see Bastions).
	releaseBastion func() error

	sudoMu    sync.Mutex
	sudoKnown bool
	sudo      bool
	sudoErr   error

	lostMu sync.Mutex
	lost   error // why the keepalive gave up

	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

var _ Host = (*SSHHost)(nil)

// Dial connects to a host over SSH, verifying its host key against
// known_hosts, and authenticates. It gives up after cfg.DialTimeout or when
// ctx is done.
func Dial(ctx context.Context, cfg SSHConfig) (*SSHHost, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	h := &SSHHost{
		cfg:      cfg,
		addr:     net.JoinHostPort(cfg.Address, strconv.Itoa(cfg.Port)),
		sessions: make(chan struct{}, cfg.MaxSessions),
		done:     make(chan struct{}),
	}
	if err := h.connect(ctx); err != nil {
		h.closeConn()
		return nil, fmt.Errorf("connecting to %s: %w", h, err)
	}
	if cfg.KeepAlive > 0 {
		go h.keepAlive()
	}
	return h, nil
}

func (h *SSHHost) connect(ctx context.Context) error {
	auth, err := h.cfg.auth(ctx)
	h.agentConn = auth.agentConn
	if err != nil {
		return err
	}
	verifier := &hostKeyVerifier{
		path:   h.cfg.KnownHostsPath,
		accept: h.cfg.AcceptNewHostKeys,
		onNew:  h.cfg.OnNewHostKey,
		logger: h.cfg.Logger,
		label:  h.String(),
		host:   h.cfg.Address,
		port:   h.cfg.Port,
	}
	algos, err := verifier.hostKeyAlgorithms(h.addr)
	if err != nil {
		return err
	}

	dctx, cancel := context.WithTimeout(ctx, h.cfg.DialTimeout)
	defer cancel()
	var conn net.Conn
	if h.cfg.Bastion != nil {
		if h.bastion, h.releaseBastion, err = h.cfg.Bastions.get(dctx, h.cfg.bastionConfig()); err != nil {
			return fmt.Errorf("through bastion: %w", err)
		}
		if conn, err = h.bastion.client.DialContext(dctx, "tcp", h.addr); err != nil {
			return fmt.Errorf("opening a tunnel through bastion %s: %w", h.bastion, h.dialError(ctx, err))
		}
	} else {
		var d net.Dialer
		if conn, err = d.DialContext(dctx, "tcp", h.addr); err != nil {
			return h.dialError(ctx, err)
		}
	}

	config := &ssh.ClientConfig{
		User:              h.cfg.User,
		Auth:              []ssh.AuthMethod{auth.method},
		HostKeyCallback:   verifier.callback,
		HostKeyAlgorithms: algos,
	}
	// NewClientConn takes no context: closing the connection interrupts it.
	stop := context.AfterFunc(dctx, func() { conn.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, h.addr, config)
	interrupted := !stop()
	verified, keyErr := verifier.outcome()
	switch {
	case keyErr != nil:
		return keyErr
	case interrupted:
		if c != nil {
			c.Close()
		}
		return h.dialError(ctx, context.DeadlineExceeded)
	case err != nil && verified:
		return h.cfg.authError(auth, err)
	case err != nil:
		return fmt.Errorf("ssh handshake: %w", err)
	}
	h.client = ssh.NewClient(c, chans, reqs)
	return nil
}

// dialError explains a failure to connect: cancelled, timed out, or err.
func (h *SSHHost) dialError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no connection within %s: %w", h.cfg.DialTimeout, err)
	}
	return err
}

// Name returns the host's name.
func (h *SSHHost) Name() string { return h.cfg.Name }

// String describes the host, e.g. "h1 (root@10.0.0.5:22)".
func (h *SSHHost) String() string {
	s := fmt.Sprintf("%s (%s@%s", h.cfg.Name, h.cfg.User, h.addr)
	if b := h.cfg.Bastion; b != nil {
		s += " via " + b.Address
	}
	return s + ")"
}

// Run runs c in a new session. Args are quoted with ShellQuote, Script runs
// under sh -c, and for users other than root both run under sudo -n (see
// SudoMode). When ctx is done the command is sent SIGKILL and its session
// closed, and Run returns within about 2s even if the server does not
// answer (output may then still reach Cmd.Stdout and Cmd.Stderr briefly).
// A KILL cannot be relayed by sudo, so under sudo a cancelled command may
// outlive its session on the host.
func (h *SSHHost) Run(ctx context.Context, c Cmd) (Result, error) {
	if err := c.validate(); err != nil {
		return Result{}, err
	}
	sudo, err := h.useSudo(ctx)
	if err != nil {
		return Result{}, err
	}
	return h.run(ctx, c, commandLine(c, sudo))
}

// commandLine is the command sent to the server for c.
func commandLine(c Cmd, sudo bool) string {
	script := c.Script
	if script == "" {
		if !sudo {
			return ShellQuote(c.Args...)
		}
		script = ShellQuote(c.Args...)
	}
	line := "sh -c " + ShellQuote(script)
	if sudo {
		line = "sudo -n -- " + line
	}
	return line
}

func (h *SSHHost) run(ctx context.Context, c Cmd, line string) (Result, error) {
	select {
	case h.sessions <- struct{}{}:
	case <-ctx.Done():
		return Result{}, fmt.Errorf("running %q on %s: %w", c.display(), h.cfg.Name, ctx.Err())
	}
	defer func() { <-h.sessions }()

	sess, err := h.client.NewSession()
	if err != nil {
		return Result{}, fmt.Errorf("running %q on %s: opening ssh session: %w", c.display(), h.cfg.Name, h.connError(err))
	}
	defer sess.Close()
	out := newOutput(c)
	sess.Stdin = c.Stdin
	sess.Stdout, sess.Stderr = out.stdout, out.stderr
	h.cfg.Logger.Debug("running command", "host", h.cfg.Name, "cmd", c.display())
	if err := sess.Start(line); err != nil {
		return Result{}, fmt.Errorf("running %q on %s: %w", c.display(), h.cfg.Name, h.connError(err))
	}

	waited := make(chan error, 1)
	go func() { waited <- sess.Wait() }()
	select {
	case err = <-waited:
	case <-ctx.Done():
		_ = sess.Signal(ssh.SIGKILL)
		_ = sess.Close()
		select {
		case <-waited:
		case <-time.After(cancelGrace):
		}
		return Result{}, fmt.Errorf("running %q on %s: %w", c.display(), h.cfg.Name, ctx.Err())
	}

	var exitErr *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case err == nil:
		return out.result(0), nil
	case errors.As(err, &exitErr):
		code := exitErr.ExitStatus()
		return out.result(code), out.exitError(h.cfg.Name, c, code, exitErr.Signal())
	case errors.As(err, &missing):
		return Result{}, fmt.Errorf("running %q on %s: the session ended without an exit status: the connection was lost or the host's sshd stopped: %w",
			c.display(), h.cfg.Name, h.connError(err))
	default:
		return Result{}, fmt.Errorf("running %q on %s: %w", c.display(), h.cfg.Name, h.connError(err))
	}
}

// useSudo reports whether commands need sudo, checking once that
// passwordless sudo works. A definite answer is cached; a failure to ask
// (cancelled, connection lost) is not.
func (h *SSHHost) useSudo(ctx context.Context) (bool, error) {
	if h.cfg.Sudo == SudoNever || h.cfg.User == "root" {
		return false, nil
	}
	h.sudoMu.Lock()
	defer h.sudoMu.Unlock()
	if h.sudoKnown {
		return h.sudo, h.sudoErr
	}
	check := Cmd{Args: []string{"sudo", "-n", "true"}}
	_, err := h.run(ctx, check, commandLine(check, false))
	var exitErr *ExitError
	switch {
	case err == nil:
		h.sudo = true
	case errors.As(err, &exitErr):
		why := fmt.Sprintf("sudo -n true exited with code %d", exitErr.Code)
		if exitErr.Code == 127 {
			why = "sudo is not installed"
		} else if exitErr.Stderr != "" {
			why += ": " + strings.ReplaceAll(exitErr.Stderr, "\n", " ")
		}
		h.sudoErr = fmt.Errorf("%w: user %s on %s cannot run sudo without a password (%s); "+
			"kforge needs root there: connect as root, or allow passwordless sudo with the line %q "+
			"in /etc/sudoers.d/kforge (edit it with visudo -f /etc/sudoers.d/kforge)",
			ErrNoSudo, h.cfg.User, h, why, h.cfg.User+" ALL=(ALL) NOPASSWD: ALL")
	default:
		return false, fmt.Errorf("checking whether %s can use sudo on %s: %w", h.cfg.User, h.cfg.Name, err)
	}
	h.sudoKnown = true
	return h.sudo, h.sudoErr
}

// Upload writes f on the host: it compares the sha256, mode and owner of
// f.Dst first and skips the transfer when they match; otherwise it streams
// the bytes into a temporary file next to f.Dst, checks their sha256 there,
// and renames the file into place (see the package documentation).
func (h *SSHHost) Upload(ctx context.Context, f File) (UploadResult, error) {
	return shellUpload(ctx, h, f)
}

// Close closes the connection, and the bastion's.
func (h *SSHHost) Close() error {
	h.closeOnce.Do(func() {
		close(h.done)
		h.closeErr = h.closeConn()
	})
	return h.closeErr
}

func (h *SSHHost) closeConn() error {
	var errs []error
	if h.client != nil {
		if err := h.client.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("closing ssh connection to %s: %w", h, err))
		}
	}
	if h.releaseBastion != nil {
		errs = append(errs, h.releaseBastion())
	}
	if h.agentConn != nil {
		h.agentConn.Close()
	}
	return errors.Join(errs...)
}

// keepAlive sends keepalive requests and closes the connection when one
// fails or goes unanswered for three intervals (at least minKeepAliveWait).
func (h *SSHHost) keepAlive() {
	interval := h.cfg.KeepAlive
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-h.done:
			return
		case <-ticker.C:
		}
		reply := make(chan error, 1)
		go func() {
			_, _, err := h.client.SendRequest(keepAliveRequest, true, nil)
			reply <- err
		}()
		wait := max(3*interval, minKeepAliveWait)
		timeout := time.NewTimer(wait)
		var err error
		select {
		case <-h.done:
			timeout.Stop()
			return
		case err = <-reply:
		case <-timeout.C:
			err = fmt.Errorf("no answer within %s", wait)
		}
		timeout.Stop()
		if err != nil {
			h.lostMu.Lock()
			h.lost = fmt.Errorf("keepalive failed: %w", err)
			h.lostMu.Unlock()
			h.cfg.Logger.Warn("ssh connection lost, closing it", "host", h.cfg.Name, "err", err)
			h.client.Close()
			return
		}
	}
}

// connError adds why the connection was lost, when the keepalive knows.
func (h *SSHHost) connError(err error) error {
	h.lostMu.Lock()
	lost := h.lost
	h.lostMu.Unlock()
	if lost != nil {
		return fmt.Errorf("connection lost (%v): %w", lost, err)
	}
	return err
}
