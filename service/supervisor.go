package service

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kforge/kforge/internal/fileutil"
	"github.com/kforge/kforge/internal/wait"
)

// Where the supervisor keeps its pid files and logs, and how long it waits for another
// manager to take a service back.
const (
	DefaultStateDir  = "/run/kforge"
	DefaultLogDir    = "/var/log/kforge"
	DefaultAdoptWait = 10 * time.Second
)

// Supervisor runs each service under a `kforge supervise` process of its own: it restarts
// the service when it exits, keeps pid files and a log file, restarts it on SIGHUP and
// stops it on SIGTERM.
type Supervisor struct {
	StateDir string // pid files: <StateDir>/<name>.pid (supervisor), <name>.child.pid
	LogDir   string // <LogDir>/<name>.log
	Kforge   string // the kforge binary that runs `supervise`
	// AdoptWait is how long Restart waits for another service manager to start a service
	// again after stopping the copy it ran (see Spec.Adopt); zero looks once.
	AdoptWait time.Duration
}

// Kind implements Manager.
func (*Supervisor) Kind() string { return "supervisor" }

// Files implements Manager: the supervisor has no files of its own to write.
func (*Supervisor) Files(Spec) []File { return nil }

func (m *Supervisor) pidFile(name string) string { return filepath.Join(m.StateDir, name+".pid") }

// ChildPidFile is where the supervisor records the service's own pid.
func (m *Supervisor) ChildPidFile(name string) string {
	return filepath.Join(m.StateDir, name+".child.pid")
}

// LogFile is the service's log.
func (m *Supervisor) LogFile(name string) string { return filepath.Join(m.LogDir, name+".log") }

// running returns the pid of the live supervisor of name, or 0.
func (m *Supervisor) running(name string) int {
	pid := readPid(m.pidFile(name))
	if pid <= 0 || !alive(pid) {
		return 0
	}
	// The pid may have been reused: it must still be a supervise process.
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), "supervise\x00") {
		return 0
	}
	return pid
}

// Restart starts a supervisor for s, or tells a running one to restart the service with a
// fresh read of its env files. A copy of the service that something else started (an init
// system, a container entrypoint) is stopped first; if that something starts it again, it
// keeps it, and kforge starts no supervisor.
func (m *Supervisor) Restart(ctx context.Context, s Spec) error {
	if pid := m.running(s.Name); pid > 0 {
		old := readPid(m.ChildPidFile(s.Name))
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			return fmt.Errorf("asking the %s supervisor (pid %d) to restart it: %w", s.Name, pid, err)
		}
		if err := m.waitChild(ctx, s.Name, old); err != nil {
			return err
		}
		return waitSocket(ctx, s)
	}
	if s.Adopt && len(s.Command) > 0 {
		if foreign := FindProcesses(filepath.Base(s.Command[0])); len(foreign) > 0 {
			restarted, err := m.restartForeign(ctx, foreign, filepath.Base(s.Command[0]))
			if err != nil {
				return fmt.Errorf("restarting %s: %w", s.Name, err)
			}
			if restarted {
				return waitSocket(ctx, s)
			}
		}
	}
	if err := os.MkdirAll(m.StateDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", m.StateDir, err)
	}
	if err := os.MkdirAll(m.LogDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", m.LogDir, err)
	}
	log, err := os.OpenFile(m.LogFile(s.Name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("opening the %s log: %w", s.Name, err)
	}
	defer log.Close()
	args := []string{"supervise", "--name", s.Name, "--state-dir", m.StateDir}
	for _, f := range s.EnvFiles {
		args = append(args, "--env-file", f)
	}
	args = append(args, "--")
	args = append(args, s.Command...)
	cmd := exec.Command(m.Kforge, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the %s supervisor: %w", s.Name, err)
	}
	// The supervisor outlives this process; its parent becomes init, which reaps it.
	if err := cmd.Process.Release(); err != nil {
		return err
	}
	if err := m.waitChild(ctx, s.Name, 0); err != nil {
		return err
	}
	return waitSocket(ctx, s)
}

// restartForeign stops processes another manager started and reports whether that manager
// started the program again within AdoptWait.
func (m *Supervisor) restartForeign(ctx context.Context, pids []int, comm string) (bool, error) {
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	gone := func(context.Context) error {
		for _, pid := range pids {
			if alive(pid) {
				return fmt.Errorf("pid %d still runs", pid)
			}
		}
		return nil
	}
	if err := wait.Poll(ctx, checkInterval, 30*time.Second, gone); err != nil {
		return false, fmt.Errorf("pids %v did not stop after SIGTERM: %w", pids, err)
	}
	err := wait.Poll(ctx, checkInterval, m.AdoptWait, func(context.Context) error {
		if len(FindProcesses(comm)) == 0 {
			return fmt.Errorf("no %s process", comm)
		}
		return nil
	})
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	return err == nil, nil
}

// waitChild waits until the supervisor has started a service process other than old.
func (m *Supervisor) waitChild(ctx context.Context, name string, old int) error {
	err := wait.Poll(ctx, checkInterval, 15*time.Second, func(context.Context) error {
		pid := readPid(m.ChildPidFile(name))
		if pid > 0 && pid != old && alive(pid) {
			return nil
		}
		return fmt.Errorf("no new process in %s yet", m.ChildPidFile(name))
	})
	if err != nil {
		return fmt.Errorf("%s did not start under the supervisor; see %s: %w", name, m.LogFile(name), err)
	}
	return nil
}

// Stop stops the supervisor of name, which stops the service first.
func (m *Supervisor) Stop(ctx context.Context, name string) error {
	pid := m.running(name)
	if pid == 0 {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stopping the %s supervisor (pid %d): %w", name, pid, err)
	}
	err := wait.Poll(ctx, checkInterval, 30*time.Second, func(context.Context) error {
		if alive(pid) {
			return errors.New("it still runs")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("the %s supervisor (pid %d) did not stop: %w", name, pid, err)
	}
	return nil
}

// Active reports whether a supervisor for name runs.
func (m *Supervisor) Active(_ context.Context, name string) (bool, error) {
	return m.running(name) > 0, nil
}

func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return pid
}

// alive reports whether pid is a live process, not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses: "123 (kubelet) S ...".
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// SuperviseOptions configure Supervise, the body of `kforge supervise`.
type SuperviseOptions struct {
	Name     string
	StateDir string
	EnvFiles []string
	Command  []string
	Log      io.Writer
	// Backoff bounds the wait between restarts after a quick exit.
	MinBackoff, MaxBackoff time.Duration
}

// Supervise runs opts.Command until ctx ends or SIGTERM arrives, restarting it whenever it
// exits and at once on SIGHUP. It runs in the foreground; Supervisor.Restart starts it
// detached.
func Supervise(ctx context.Context, opts SuperviseOptions) error {
	if opts.MinBackoff == 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 10 * time.Second
	}
	m := &Supervisor{StateDir: opts.StateDir}
	if _, err := fileutil.WriteAtomic(m.pidFile(opts.Name), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644, 0o755); err != nil {
		return err
	}
	defer os.Remove(m.pidFile(opts.Name))
	defer os.Remove(m.ChildPidFile(opts.Name))

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(stop)

	logf := func(format string, args ...any) {
		fmt.Fprintf(opts.Log, "%s kforge-supervise[%s]: %s\n", time.Now().UTC().Format(time.RFC3339), opts.Name, fmt.Sprintf(format, args...))
	}
	backoff := opts.MinBackoff
	for {
		env, err := readEnvFiles(opts.EnvFiles)
		if err != nil {
			return err
		}
		args := ExpandArgs(opts.Command, env)
		if len(args) == 0 {
			return errors.New("nothing to run: the command is empty")
		}
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Stdout, cmd.Stderr = opts.Log, opts.Log
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		started := time.Now()
		if err := cmd.Start(); err != nil {
			logf("starting %s: %v", args[0], err)
		} else {
			logf("started pid %d: %s", cmd.Process.Pid, strings.Join(args, " "))
			if _, err := fileutil.WriteAtomic(m.ChildPidFile(opts.Name), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644, 0o755); err != nil {
				logf("writing the pid file: %v", err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				logf("exited after %s: %v", time.Since(started).Round(time.Millisecond), err)
			case <-hup:
				logf("SIGHUP: restarting")
				terminate(cmd.Process.Pid, done)
				backoff = opts.MinBackoff
				continue
			case sig := <-stop:
				logf("%s: stopping", sig)
				terminate(cmd.Process.Pid, done)
				return nil
			case <-ctx.Done():
				terminate(cmd.Process.Pid, done)
				return ctx.Err()
			}
		}
		if time.Since(started) > 30*time.Second {
			backoff = opts.MinBackoff
		}
		select {
		case <-time.After(backoff):
		case <-hup:
		case <-stop:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(2*backoff, opts.MaxBackoff)
	}
}

// terminate sends SIGTERM to the process group, then SIGKILL after 10 seconds.
func terminate(pid int, done <-chan error) {
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-done
	}
}

// readEnvFiles reads KEY=VALUE lines; values may be double-quoted. Later files win.
func readEnvFiles(paths []string) (map[string]string, error) {
	env := map[string]string{}
	for _, p := range paths {
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading env file %s: %w", p, err)
		}
		s := bufio.NewScanner(f)
		for s.Scan() {
			line := strings.TrimSpace(s.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			if uq, err := strconv.Unquote(v); err == nil {
				v = uq
			}
			env[strings.TrimSpace(k)] = v
		}
		f.Close()
		if err := s.Err(); err != nil {
			return nil, fmt.Errorf("reading env file %s: %w", p, err)
		}
	}
	return env, nil
}

// ExpandArgs expands "$VAR" into the whitespace-separated words of VAR (none if unset) and
// "${VAR}" into one argument, as systemd's ExecStart does.
func ExpandArgs(args []string, env map[string]string) []string {
	var out []string
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "${") && strings.HasSuffix(a, "}"):
			out = append(out, env[a[2:len(a)-1]])
		case strings.HasPrefix(a, "$") && !strings.ContainsAny(a[1:], "${}/ ="):
			out = append(out, strings.Fields(env[a[1:]])...)
		default:
			out = append(out, a)
		}
	}
	return out
}

// FindProcesses returns the pids of the processes whose command name (/proc/<pid>/comm) is
// comm, in this PID namespace.
func FindProcesses(comm string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err == nil && strings.TrimSpace(string(b)) == comm && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}
