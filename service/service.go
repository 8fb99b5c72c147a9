// Package service runs long-lived node services (the kubelet, and containerd when nothing
// else does) under systemd when the host booted with it, and under kforge's own supervisor
// otherwise: containers, WSL, nested machines and the testbed's hosts.
package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kforge/kforge/internal/fileutil"
	"github.com/kforge/kforge/internal/wait"
)

// Spec describes one service.
type Spec struct {
	// Name is the service name: "kubelet".
	Name string
	// Command is the command line. An argument "$VAR" expands to the words of VAR and
	// "${VAR}" to one argument, with VAR read from EnvFiles, as systemd does.
	Command []string
	// EnvFiles are read in order before every start; a missing file is skipped.
	EnvFiles []string
	// Unit and DropIn are the systemd unit and drop-in contents (systemd only). An empty
	// Unit keeps a unit a package installed.
	Unit, DropIn []byte
	// Socket, if set, is a unix socket the service serves: Restart returns once it answers.
	Socket string
	// Adopt lets the supervisor restart a copy of the service that another manager started
	// (found by the command's name in this PID namespace): it stops that copy so that it
	// rereads its config. Only for well-known daemons such as containerd.
	Adopt bool
}

// SocketTimeout bounds the wait for a restarted service's socket.
const SocketTimeout = 30 * time.Second

// checkInterval is how often the managers look again while they wait for a service or a
// process.
const checkInterval = 50 * time.Millisecond

// waitSocket waits until the spec's socket answers, if it has one.
func waitSocket(ctx context.Context, s Spec) error {
	if s.Socket == "" {
		return nil
	}
	err := wait.Poll(ctx, checkInterval, SocketTimeout, func(context.Context) error { return dialSocket(s.Socket) })
	if err != nil {
		return fmt.Errorf("%s does not answer on %s after a restart: %w", s.Name, s.Socket, err)
	}
	return nil
}

// SocketAnswers reports whether something accepts connections on a unix socket.
func SocketAnswers(path string) bool { return dialSocket(path) == nil }

func dialSocket(path string) error {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

// DryRun records what a real manager would do and does nothing.
type DryRun struct {
	// Say prints one line of the plan.
	Say func(format string, args ...any)
}

// Kind implements Manager.
func (*DryRun) Kind() string { return "dry-run" }

// Restart implements Manager.
func (m *DryRun) Restart(_ context.Context, s Spec) error {
	m.Say("would (re)start %s: %s", s.Name, strings.Join(s.Command, " "))
	return nil
}

// Stop implements Manager.
func (m *DryRun) Stop(_ context.Context, name string) error {
	m.Say("would stop %s", name)
	return nil
}

// Files implements Manager: a dry run writes none of its own.
func (*DryRun) Files(Spec) []File { return nil }

// Active implements Manager: nothing runs on a dry run.
func (*DryRun) Active(context.Context, string) (bool, error) { return false, nil }

// Manager starts, restarts and stops services on this host.
type Manager interface {
	// Kind is "systemd" or "supervisor", for progress lines.
	Kind() string
	// Restart installs the service if needed and (re)starts it, so that it picks up new
	// configuration.
	Restart(ctx context.Context, s Spec) error
	// Stop stops the service; a service that is not running is fine.
	Stop(ctx context.Context, name string) error
	// Active reports whether the service runs.
	Active(ctx context.Context, name string) (bool, error)
	// Files lists the files of the manager's own that Restart writes for s (systemd's
	// units), so that Apply counts them as part of a change.
	Files(s Spec) []File
}

// Runner runs a command and returns its combined output; tests record the calls.
type Runner func(ctx context.Context, name string, args ...string) ([]byte, error)

// ExecRunner runs commands on this host.
func ExecRunner(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("running %s %v: %w: %s", name, args, err, out)
	}
	return out, nil
}

// HasSystemd reports whether systemd is this host's service manager: the same test
// sd_booted(3) makes.
func HasSystemd(root string) bool {
	st, err := os.Stat(filepath.Join(root, "/run/systemd/system"))
	return err == nil && st.IsDir()
}

// Detect returns systemd when the host runs it and kforge's supervisor otherwise.
func Detect() Manager {
	if HasSystemd("/") {
		return &Systemd{Run: ExecRunner, UnitDir: "/etc/systemd/system"}
	}
	exe, err := os.Executable()
	if err != nil {
		exe = "kforge"
	}
	return &Supervisor{StateDir: DefaultStateDir, LogDir: DefaultLogDir, Kforge: exe, AdoptWait: DefaultAdoptWait}
}

// Systemd manages services through systemctl.
type Systemd struct {
	Run     Runner
	UnitDir string // /etc/systemd/system
}

// Kind implements Manager.
func (*Systemd) Kind() string { return "systemd" }

// Files implements Manager: the unit and the drop-in.
func (m *Systemd) Files(s Spec) []File {
	var files []File
	if len(s.Unit) > 0 {
		files = append(files, File{Path: filepath.Join(m.UnitDir, s.Name+".service"), Data: s.Unit, Mode: 0o644, DirMode: 0o755})
	}
	if len(s.DropIn) > 0 {
		files = append(files, File{Path: filepath.Join(m.UnitDir, s.Name+".service.d", "10-kforge.conf"), Data: s.DropIn, Mode: 0o644, DirMode: 0o755})
	}
	return files
}

// Restart writes the unit and drop-in, reloads systemd, enables and restarts the service.
// It reloads whenever the service has units of kforge's, changed or not: a run killed
// after writing a unit and before the reload must not leave systemd with the old one.
func (m *Systemd) Restart(ctx context.Context, s Spec) error {
	files := m.Files(s)
	for _, f := range files {
		if _, err := fileutil.WriteAtomic(f.Path, f.Data, f.Mode, f.DirMode); err != nil {
			return err
		}
	}
	if len(files) > 0 {
		if _, err := m.Run(ctx, "systemctl", "daemon-reload"); err != nil {
			return err
		}
	}
	if _, err := m.Run(ctx, "systemctl", "enable", s.Name+".service"); err != nil {
		return err
	}
	if _, err := m.Run(ctx, "systemctl", "restart", s.Name+".service"); err != nil {
		return err
	}
	return waitSocket(ctx, s)
}

// Stop stops the service.
func (m *Systemd) Stop(ctx context.Context, name string) error {
	_, err := m.Run(ctx, "systemctl", "stop", name+".service")
	return err
}

// Active asks systemctl is-active.
func (m *Systemd) Active(ctx context.Context, name string) (bool, error) {
	return m.unitActive(ctx, name+".service")
}

// unitActive asks systemctl is-active about a unit.
func (m *Systemd) unitActive(ctx context.Context, unit string) (bool, error) {
	out, err := m.Run(ctx, "systemctl", "is-active", unit)
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) || len(out) > 0 {
			return false, nil
		}
		return false, err
	}
	return true, nil
}
