package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Host is one test host. The value stays valid across PowerOff and PowerOn.
type Host struct {
	Name    string
	Address netip.Addr
	SSHPort int

	index int
	kind  Kind
	tb    *Testbed
}

// SSHAddr is host:port for an SSH client.
func (h Host) SSHAddr() string {
	return net.JoinHostPort(h.Address.String(), strconv.Itoa(h.SSHPort))
}

// NetNS is the path of the host's network namespace.
func (h Host) NetNS() string { return netnsPath(h.Name) }

// StateDir is where the machine keeps the host: fs/ (its private paths), log/ (init,
// sshd and containerd logs), status.json (its services).
func (h Host) StateDir() string { return h.tb.hostDir(h.Name) }

// PrivatePath is where the machine keeps path p of the host, if p is in one of the
// host's PrivatePaths ("" otherwise); every path of a systemd host is private. It works
// while the host is powered off.
func (h Host) PrivatePath(p string) string {
	p = filepath.Clean(p)
	if h.Kind() == KindSystemd {
		return filepath.Join(h.tb.hostFS(h.Name), p)
	}
	for _, pp := range PrivatePaths {
		if p == pp.Path || strings.HasPrefix(p, pp.Path+"/") {
			return filepath.Join(h.tb.hostFS(h.Name), p)
		}
	}
	return ""
}

// LogFile is the log of a service (SSHD, Containerd) or of the host's init ("init").
func (h Host) LogFile(service string) string {
	return filepath.Join(h.StateDir(), "log", service+".log")
}

// InitPID is the machine's pid of the host's PID 1, or ErrPoweredOff.
func (h Host) InitPID() (int, error) {
	id, err := h.init()
	if err != nil {
		return 0, err
	}
	return id.Pid, nil
}

func (h Host) init() (procID, error) {
	id, err := h.tb.initID(h.Name)
	if err != nil || !id.alive() {
		return procID{}, fmt.Errorf("host %s: %w", h.Name, ErrPoweredOff)
	}
	return id, nil
}

// Command returns a command that runs args inside the host, as root in its namespaces
// (through nsenter on its PID 1), with the environment of a root login. Cancelling ctx
// kills the command's whole process group, the part inside the host included.
func (h Host) Command(ctx context.Context, args ...string) *exec.Cmd {
	nsenter, lookErr := lookPath("nsenter")
	id, err := h.init()
	full := append(nsenterArgs(id.Pid), args...)
	cmd := exec.CommandContext(ctx, nsenter, full...)
	cmd.Env = baseEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err = errors.Join(lookErr, err); err != nil {
		cmd.Err = err
	}
	return cmd
}

// nsenterArgs enter every namespace of a host's PID 1, its root and working directory.
func nsenterArgs(pid int) []string {
	return []string{"-t", strconv.Itoa(pid), "-n", "-m", "-u", "-p", "-r", "-w", "--"}
}

// EnterArgv is the argument vector (nsenter first) that runs cmd inside the host: what
// Command runs, for a caller that wants to exec it itself, say with a terminal.
func (h Host) EnterArgv(cmd ...string) ([]string, error) {
	nsenter, err := lookPath("nsenter")
	if err != nil {
		return nil, err
	}
	id, err := h.init()
	if err != nil {
		return nil, err
	}
	return append(append([]string{nsenter}, nsenterArgs(id.Pid)...), cmd...), nil
}

// HostEnv is the environment commands in a host get: a root login's, not the caller's.
func HostEnv() []string { return baseEnv() }

// EnterCommand is the shell command a person runs to get a shell in the host.
func (h Host) EnterCommand() string {
	pid, err := h.InitPID()
	if err != nil {
		return "(powered off)"
	}
	return "nsenter " + strings.Join(nsenterArgs(pid), " ") + " bash"
}

// SSHCommand is the ssh command line that logs in to the host as root.
func (h Host) SSHCommand() string {
	return strings.Join(h.SSHArgv(), " ")
}

// SSHArgv is SSHCommand as an argument vector, followed by a remote command if given.
func (h Host) SSHArgv(remote ...string) []string {
	argv := []string{"ssh", "-i", h.tb.SSHKey(), "-o", "UserKnownHostsFile=" + h.tb.KnownHosts(),
		"-o", "StrictHostKeyChecking=yes", "root@" + h.Address.String()}
	return append(argv, remote...)
}

// Exec runs cmd inside the host with stdin (nil for none) and returns its output. A
// non-zero exit is an error that wraps *exec.ExitError.
func (h Host) Exec(ctx context.Context, stdin io.Reader, cmd ...string) (stdout, stderr []byte, err error) {
	c := h.Command(ctx, cmd...)
	c.Stdin = stdin
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		return out.Bytes(), errb.Bytes(), fmt.Errorf("running %q in host %s: %w: %s",
			strings.Join(cmd, " "), h.Name, err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), errb.Bytes(), nil
}

// Services reports the host's services as its PID 1 last wrote them.
func (h Host) Services() ([]ServiceStatus, error) {
	if _, err := h.init(); err != nil {
		return nil, err
	}
	if h.Kind() == KindSystemd {
		return h.systemdServices(context.Background())
	}
	st, err := h.tb.readStatus(h.Name)
	if err != nil {
		return nil, err
	}
	return st.Services, nil
}

// StopService stops a service (SSHD or Containerd) and keeps it stopped until
// StartService or the next boot, as `systemctl stop` would. It returns once the service
// has exited.
func (h Host) StopService(ctx context.Context, name string) error {
	return h.setService(ctx, name, false)
}

// StartService starts a service that StopService stopped and waits until it answers.
func (h Host) StartService(ctx context.Context, name string) error {
	return h.setService(ctx, name, true)
}

func (h Host) setService(ctx context.Context, name string, up bool) error {
	if name != SSHD && name != Containerd {
		return fmt.Errorf("host %s has no service %q (it has %s and %s)", h.Name, name, SSHD, Containerd)
	}
	id, err := h.init()
	if err != nil {
		return err
	}
	if h.Kind() == KindSystemd {
		return h.setSystemdService(ctx, name, up)
	}
	marker := filepath.Join(h.StateDir(), "down", name)
	if up {
		err = os.Remove(marker)
		if errors.Is(err, os.ErrNotExist) {
			err = nil
		}
	} else {
		err = os.WriteFile(marker, nil, 0o644)
	}
	if err != nil {
		return fmt.Errorf("marking %s on host %s: %w", name, h.Name, err)
	}
	if err := id.kill(syscall.SIGHUP); err != nil {
		return err
	}
	if up {
		if err := h.tb.waitServices(ctx, h, id, []string{name}, 60*time.Second); err != nil {
			return fmt.Errorf("starting %s on host %s: %w", name, h.Name, err)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		st, err := h.tb.readStatus(h.Name)
		if err == nil {
			i := slices.IndexFunc(st.Services, func(s ServiceStatus) bool { return s.Name == name })
			if i >= 0 && st.Services[i].State == StateStopped {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopping %s on host %s: %w", name, h.Name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// PowerOff cuts the host's power: it kills its PID 1, so the kernel kills everything in
// its PID namespace, and its mounts and /run go with it. Its cgroups are removed; its
// files (the private paths) stay, as a disk would. Powering off a host that is off is
// fine.
func (h Host) PowerOff(ctx context.Context) error {
	if h.Kind() == KindSystemd {
		if err := h.tb.powerOffSystemd(ctx, h); err != nil {
			return fmt.Errorf("powering off host %s: %w", h.Name, err)
		}
	}
	id, err := h.tb.initID(h.Name)
	if err == nil && id.alive() {
		if err := id.kill(syscall.SIGKILL); err != nil {
			return fmt.Errorf("powering off host %s: %w", h.Name, err)
		}
		if err := id.waitGone(ctx, 30*time.Second); err != nil {
			return fmt.Errorf("powering off host %s: %w", h.Name, err)
		}
	}
	os.Remove(filepath.Join(h.StateDir(), "init.pid"))
	if err := removeCgroups(ctx, h.Name); err != nil {
		return fmt.Errorf("powering off host %s: %w", h.Name, err)
	}
	return nil
}

// PowerOn boots a powered-off host with the files it had and waits for its services. A
// host that runs is left alone.
func (h Host) PowerOn(ctx context.Context) error {
	if _, err := h.init(); err == nil {
		return nil
	}
	if err := h.tb.createHost(ctx, h); err != nil {
		return fmt.Errorf("powering on host %s: %w", h.Name, err)
	}
	if err := h.tb.boot(ctx, h); err != nil {
		return fmt.Errorf("powering on host %s: %w", h.Name, err)
	}
	return nil
}

// Usage is what a host's processes use.
type Usage struct {
	Processes int `json:"processes"`
	// RSSKiB sums the processes' resident sets (shared pages counted in each).
	RSSKiB int64 `json:"rssKiB"`
	// PSSKiB sums their proportional sets (shared pages split among their users).
	PSSKiB int64 `json:"pssKiB"`
}

// Usage adds up the memory of the host's PID 1 and all its descendants: its services,
// and the containers' processes too.
func (h Host) Usage() (Usage, error) {
	id, err := h.init()
	if err != nil {
		return Usage{}, err
	}
	var u Usage
	for _, pid := range descendants(id.Pid) {
		u.Processes++
		u.RSSKiB += rssKiB(pid)
		u.PSSKiB += pssKiB(pid)
	}
	return u, nil
}

func pssKiB(pid int) int64 {
	return procKiB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
}
