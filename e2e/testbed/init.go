package testbed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// initName is the name a host's PID 1 runs under: <state>/bin/kf-init.
const initName = "kf-init"

// Service names for StopService and StartService.
const (
	SSHD       = "sshd"
	Containerd = "containerd"
)

// Restart backoff: the first restart after a quick exit waits restartMin, each further
// quick exit doubles the wait up to restartMax; a run of restartReset or more resets it.
const (
	restartMin   = 100 * time.Millisecond
	restartMax   = 5 * time.Second
	restartReset = 10 * time.Second
	stopTimeout  = 10 * time.Second
)

// Service states in the status file.
const (
	StateStarting   = "starting"   // started, not answering yet
	StateRunning    = "running"    // answering on its socket
	StateStopping   = "stopping"   // sent SIGTERM
	StateStopped    = "stopped"    // stopped on request
	StateRestarting = "restarting" // exited; waiting out the backoff
)

// initConfig is what the testbed tells a host's PID 1: <host dir>/init.json.
type initConfig struct {
	Name     string        `json:"name"`
	HostDir  string        `json:"hostDir"`
	Mounts   []initMount   `json:"mounts"`
	Services []serviceSpec `json:"services"`
}

type initMount struct {
	Source string `json:"source"`
	Target string `json:"target"`
}

type serviceSpec struct {
	Name string   `json:"name"`
	Argv []string `json:"argv"`
	// PidFile is in the host: /run/<name>.pid, the pid as the host sees it.
	PidFile string `json:"pidFile"`
	// The service is running once it accepts a connection on ReadyTCP or ReadyUnix.
	ReadyTCP  string `json:"readyTCP,omitempty"`
	ReadyUnix string `json:"readyUnix,omitempty"`
}

// hostStatus is what PID 1 reports in <host dir>/status.json.
type hostStatus struct {
	Boot     time.Time       `json:"boot"`
	Services []ServiceStatus `json:"services"`
}

// ServiceStatus is the state of one service of a host.
type ServiceStatus struct {
	Name  string `json:"name"`
	State string `json:"state"`
	// PID as the host sees it (what its pid file says); 0 when not running.
	PID      int       `json:"pid"`
	Restarts int       `json:"restarts"`
	Since    time.Time `json:"since"`
	LastExit string    `json:"lastExit,omitempty"`
}

func init() {
	// A process started as kf-init is a host's PID 1, whatever binary it is: run the init
	// and never return to the binary's own main.
	if filepath.Base(os.Args[0]) == initName {
		os.Exit(initMain(os.Args[1:]))
	}
}

func initMain(args []string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: kf-init <host dir>/init.json\nkf-init is the PID 1 of a kforge testbed host; the testbed starts it.")
		return 2
	}
	var cfg initConfig
	b, err := os.ReadFile(args[0])
	if err == nil {
		err = json.Unmarshal(b, &cfg)
	}
	if err != nil {
		log.Error("reading the init configuration", "err", err)
		return 1
	}
	if os.Getpid() != 1 {
		log.Error("kf-init must be PID 1 of a new PID namespace", "pid", os.Getpid())
		return 1
	}
	// The host's state directory may be hidden by the host's own mounts (a state dir under
	// /tmp, say): keep a handle on it and reach it through that from now on.
	hostDir, err := os.Open(cfg.HostDir)
	if err != nil {
		log.Error("opening the host's state directory", "err", err)
		return 1
	}
	defer hostDir.Close()
	fdDir := fmt.Sprintf("/proc/self/fd/%d", hostDir.Fd())
	for i, m := range cfg.Mounts {
		if rest, ok := strings.CutPrefix(m.Source, cfg.HostDir+"/"); ok {
			cfg.Mounts[i].Source = fdDir + "/" + rest
		}
	}
	if err := setupHost(cfg); err != nil {
		log.Error("setting up the host", "host", cfg.Name, "err", err)
		return 1
	}
	cfg.HostDir = fdDir
	log.Info("host is up", "host", cfg.Name)
	return newSupervisor(cfg, log).run()
}

// setupHost turns the fresh namespaces into the host: its hostname, /proc, /run, /sys and
// private paths, then shared propagation inside (as systemd makes it), which mounts by the
// kubelet and containerd need. Everything was made private first, so no mount of a host
// reaches the machine or another host.
func setupHost(cfg initConfig) error {
	steps := []struct {
		what string
		do   func() error
	}{
		{"making mounts private", func() error { return unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "") }},
		{"setting the hostname", func() error { return unix.Sethostname([]byte(cfg.Name)) }},
		{"mounting /proc", func() error {
			return unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
		}},
		{"mounting /run", func() error {
			return unix.Mount("tmpfs", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=755,size=256m")
		}},
		{"mounting /sys", mountSys},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
	}
	for _, m := range cfg.Mounts {
		if err := unix.Mount(m.Source, m.Target, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind-mounting %s on %s: %w", m.Source, m.Target, err)
		}
	}
	for _, d := range []struct {
		path string
		mode fs.FileMode
	}{{"/run/sshd", 0o755}, {"/run/lock", fs.ModeSticky | 0o777}} {
		if err := os.Mkdir(d.path, d.mode); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			return err
		}
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SHARED, ""); err != nil {
		return fmt.Errorf("making mounts shared: %w", err)
	}
	return os.Chdir("/")
}

// mountSys mounts a sysfs of the host's network namespace (so /sys/class/net shows its own
// links) and moves the machine's cgroup hierarchies back under it: a plain sysfs mount
// would hide them, as `ip netns exec` does.
func mountSys() error {
	const tmp = "/run/.kf-cgroup"
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return err
	}
	if err := unix.Mount("/sys/fs/cgroup", tmp, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("binding /sys/fs/cgroup: %w", err)
	}
	if err := unix.Mount("sysfs", "/sys", "sysfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return err
	}
	if err := unix.Mount(tmp, "/sys/fs/cgroup", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("moving the cgroup hierarchies under the new /sys: %w", err)
	}
	return os.Remove(tmp)
}

// supervisor is a tiny service manager: it starts each service, restarts it when it exits
// (as systemd's Restart=always does, with a backoff), stops and starts it when the testbed
// asks (a file in <host dir>/down and a SIGHUP), and reaps every process that ends up as
// its child.
type supervisor struct {
	cfg        initConfig
	log        *slog.Logger
	svcs       []*service
	boot       time.Time
	stopping   bool // SIGTERM: stop everything, then exit
	lastStatus []byte
}

type service struct {
	spec     serviceSpec
	pid      int
	state    string
	want     bool
	restarts int
	started  time.Time
	since    time.Time
	backoff  time.Duration
	next     time.Time // restart due (StateRestarting)
	killAt   time.Time // SIGKILL due (StateStopping)
	lastExit string
}

func newSupervisor(cfg initConfig, log *slog.Logger) *supervisor {
	m := &supervisor{cfg: cfg, log: log, boot: time.Now()}
	for _, s := range cfg.Services {
		m.svcs = append(m.svcs, &service{spec: s, state: StateStopped, since: m.boot})
	}
	return m
}

func (m *supervisor) run() int {
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, unix.SIGCHLD, unix.SIGHUP, unix.SIGTERM, unix.SIGINT)
	m.readWanted()
	timer := time.NewTimer(time.Hour)
	for {
		now := time.Now()
		m.reap(now)
		m.step(now)
		m.writeStatus()
		if m.stopping && m.allStopped() {
			m.log.Info("all services stopped; powering off")
			return 0
		}
		timer.Reset(m.nextWake(time.Now()))
		select {
		case sig := <-sigs:
			switch sig {
			case unix.SIGHUP:
				m.readWanted()
			case unix.SIGTERM, unix.SIGINT:
				m.log.Info("shutting down", "signal", sig.String())
				m.stopping = true
				for _, s := range m.svcs {
					s.want = false
				}
			}
		case <-timer.C:
		}
	}
}

// readWanted reads which services the testbed wants down: <host dir>/down/<name>.
func (m *supervisor) readWanted() {
	for _, s := range m.svcs {
		_, err := os.Stat(filepath.Join(m.cfg.HostDir, "down", s.spec.Name))
		s.want = err != nil && !m.stopping
		if s.want && s.state == StateStopped {
			s.backoff = 0
			s.next = time.Time{}
		}
	}
}

// step moves each service towards what is wanted.
func (m *supervisor) step(now time.Time) {
	for _, s := range m.svcs {
		switch {
		case !s.want && (s.state == StateStarting || s.state == StateRunning):
			m.log.Info("stopping", "service", s.spec.Name, "pid", s.pid)
			_ = unix.Kill(s.pid, unix.SIGTERM)
			m.setState(s, StateStopping, now)
			s.killAt = now.Add(stopTimeout)
		case !s.want && s.state == StateRestarting:
			m.setState(s, StateStopped, now)
		case s.state == StateStopping && !now.Before(s.killAt):
			m.log.Warn("did not stop in time; killing", "service", s.spec.Name, "pid", s.pid)
			_ = unix.Kill(s.pid, unix.SIGKILL)
			s.killAt = now.Add(time.Hour)
		case s.want && s.state == StateStopped:
			m.start(s, now)
		case s.want && s.state == StateRestarting && !now.Before(s.next):
			s.restarts++
			m.start(s, now)
		case s.state == StateStarting && ready(s.spec):
			m.log.Info("ready", "service", s.spec.Name, "pid", s.pid, "after", now.Sub(s.started).Round(time.Millisecond))
			m.setState(s, StateRunning, now)
		}
	}
}

func (m *supervisor) setState(s *service, state string, now time.Time) {
	s.state, s.since = state, now
}

func (m *supervisor) start(s *service, now time.Time) {
	s.started = now
	if err := m.spawn(s); err != nil {
		m.log.Error("starting", "service", s.spec.Name, "err", err)
		s.lastExit = err.Error()
		m.scheduleRestart(s, now)
		return
	}
	m.log.Info("started", "service", s.spec.Name, "pid", s.pid)
	if s.spec.ReadyTCP == "" && s.spec.ReadyUnix == "" {
		m.setState(s, StateRunning, now)
	} else {
		m.setState(s, StateStarting, now)
	}
}

func (m *supervisor) spawn(s *service) error {
	logPath := filepath.Join(m.cfg.HostDir, "log", s.spec.Name+".log")
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer null.Close()
	fmt.Fprintf(logf, "--- kf-init %s: starting %q\n", time.Now().UTC().Format(time.RFC3339Nano), s.spec.Argv)
	p, err := os.StartProcess(s.spec.Argv[0], s.spec.Argv, &os.ProcAttr{
		Dir:   "/",
		Env:   baseEnv(),
		Files: []*os.File{null, logf, logf},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		return err
	}
	s.pid = p.Pid
	_ = p.Release() // reap() waits for it, with every other child
	if s.spec.PidFile != "" {
		if err := os.WriteFile(s.spec.PidFile, []byte(strconv.Itoa(s.pid)+"\n"), 0o644); err != nil {
			m.log.Warn("writing the pid file", "service", s.spec.Name, "err", err)
		}
	}
	return nil
}

// reap collects every exited child: services, and orphans the host's PID 1 inherits.
func (m *supervisor) reap(now time.Time) {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		for _, s := range m.svcs {
			if s.pid == pid {
				m.exited(s, ws, now)
			}
		}
	}
}

func (m *supervisor) exited(s *service, ws unix.WaitStatus, now time.Time) {
	s.pid = 0
	if s.spec.PidFile != "" {
		os.Remove(s.spec.PidFile)
	}
	switch {
	case ws.Signaled():
		s.lastExit = "killed by " + ws.Signal().String()
	default:
		s.lastExit = fmt.Sprintf("exit status %d", ws.ExitStatus())
	}
	ran := now.Sub(s.started).Round(time.Millisecond)
	if s.state == StateStopping || !s.want {
		m.log.Info("stopped", "service", s.spec.Name, "exit", s.lastExit, "ran", ran)
		m.setState(s, StateStopped, now)
		return
	}
	m.scheduleRestart(s, now)
	m.log.Info("exited; restarting", "service", s.spec.Name, "exit", s.lastExit, "ran", ran, "in", s.backoff)
}

func (m *supervisor) scheduleRestart(s *service, now time.Time) {
	s.backoff = nextBackoff(s.backoff, now.Sub(s.started))
	s.next = now.Add(s.backoff)
	m.setState(s, StateRestarting, now)
}

// nextBackoff is the wait before the next restart, given the last wait and how long the
// service ran.
func nextBackoff(last, ran time.Duration) time.Duration {
	if last == 0 || ran >= restartReset {
		return restartMin
	}
	return min(2*last, restartMax)
}

// nextWake is when the loop must look again, signals aside.
func (m *supervisor) nextWake(now time.Time) time.Duration {
	d := time.Hour
	for _, s := range m.svcs {
		switch s.state {
		case StateStarting:
			d = min(d, 20*time.Millisecond)
		case StateRestarting:
			d = min(d, max(s.next.Sub(now), time.Millisecond))
		case StateStopping:
			d = min(d, max(s.killAt.Sub(now), time.Millisecond))
		}
	}
	return d
}

func (m *supervisor) allStopped() bool {
	for _, s := range m.svcs {
		if s.pid != 0 {
			return false
		}
	}
	return true
}

// ready checks whether a service accepts connections.
func ready(s serviceSpec) bool {
	network, addr := "tcp", s.ReadyTCP
	if s.ReadyUnix != "" {
		network, addr = "unix", s.ReadyUnix
	}
	c, err := net.DialTimeout(network, addr, 100*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// writeStatus writes status.json when something changed, through a rename: the testbed
// polls it.
func (m *supervisor) writeStatus() {
	st := hostStatus{Boot: m.boot}
	for _, s := range m.svcs {
		st.Services = append(st.Services, ServiceStatus{
			Name: s.spec.Name, State: s.state, PID: s.pid, Restarts: s.restarts, Since: s.since, LastExit: s.lastExit,
		})
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil || bytes.Equal(b, m.lastStatus) {
		return
	}
	if err := writeFileAtomic(filepath.Join(m.cfg.HostDir, "status.json"), append(b, '\n'), 0o644); err != nil {
		m.log.Warn("writing the status", "err", err)
		return
	}
	m.lastStatus = b
}
