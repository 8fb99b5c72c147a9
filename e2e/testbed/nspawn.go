package testbed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Kind says what a host is made of.
type Kind string

const (
	// KindNS is a host made of namespaces over the machine's own root file system, run by
	// the testbed's kf-init: cheap and quick, but with no systemd.
	KindNS Kind = "ns"
	// KindSystemd is a host with a private Debian root file system (debootstrap) that
	// boots systemd as its PID 1 under systemd-nspawn: sshd, containerd and the kubelet
	// are systemd services there, as on a real server.
	KindSystemd Kind = "systemd"
)

// ParseKind reads a kind as a flag or a config gives it ("" is KindNS).
func ParseKind(s string) (Kind, error) {
	switch Kind(s) {
	case "", KindNS:
		return KindNS, nil
	case KindSystemd:
		return KindSystemd, nil
	}
	return "", fmt.Errorf("unknown host kind %q: want %q or %q", s, KindNS, KindSystemd)
}

// Kind is the kind of the host.
func (h Host) Kind() Kind {
	if h.kind == "" {
		return KindNS
	}
	return h.kind
}

// The environment systemd-nspawn runs with, what makes systemd boot on this machine:
//   - SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=0: the machine has hybrid cgroups v1 (controllers
//     on v1, name=systemd on v1, an empty cgroup2 beside them) and no systemd of its own
//     to delegate a v2 subtree; the container gets the legacy (all v1) layout, the same one
//     the kubelet's cgroupfs driver expects;
//   - SYSTEMD_NSPAWN_API_VFS_WRITABLE=1: /proc/sys and /sys are writable, as the kubelet
//     and kube-proxy need them (the kernel settings are the machine's, as for namespace
//     hosts). The v1 controller hierarchies stay read-only all the same, which the image's
//     kforge-testbed-cgroups.service fixes from inside (see cgroupsUnit).
var nspawnEnv = []string{"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=0", "SYSTEMD_NSPAWN_API_VFS_WRITABLE=1"}

// nspawnArgs are systemd-nspawn's arguments for host h with its root at root.
//   - --register=no --keep-unit: the machine has no systemd (nor machined) to register
//     with or to ask for a scope; nspawn stays in the cgroup /<name> it is started in and
//     puts the container below it, in a cgroup namespace of its own;
//   - --network-namespace-path: the host's network namespace, made as for any host, on
//     the testbed's bridge;
//   - --capability=all: the kubelet, containerd and runc need what a VM's root has;
//   - --system-call-filter=@keyring: nspawn's seccomp filter refuses keyctl with EPERM,
//     and runc fails every container with "unable to join session keyring: unable to
//     create session key: operation not permitted";
//   - --bind-ro=/dev/kmsg: the kubelet's OOM watcher reads it;
//   - --resolv-conf=off --timezone=off --link-journal=no: the host's files are its own,
//     nspawn copies nothing from the machine into them.
func nspawnArgs(h Host, root string) []string {
	return []string{
		"--directory=" + root, "--boot", "--machine=" + h.Name, "--hostname=" + h.Name,
		"--register=no", "--keep-unit",
		"--network-namespace-path=" + netnsPath(h.Name),
		"--capability=all",
		"--system-call-filter=@keyring",
		"--bind-ro=/dev/kmsg",
		"--resolv-conf=off", "--timezone=off", "--link-journal=no",
		"--console=read-only",
	}
}

// joinCgroupsScript moves the shell into /<name> of every cgroup hierarchy (made by
// createCgroups) and then execs its arguments: systemd-nspawn starts inside the host's
// cgroups, so everything in the host stays under /<name> and PowerOff removes it all.
const joinCgroupsScript = `set -e
for f in "$@"; do
	case "$f" in --) shift; break;; esac
	echo $$ > "$f"
	shift
done
exec "$@"`

// hostCgroupProcs lists the cgroup.procs file of /<name> in every hierarchy, the
// unified one of a hybrid machine included.
func hostCgroupProcs(name string) ([]string, error) {
	mps, err := cgroupMounts(true)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, mp := range mps {
		out = append(out, filepath.Join(mp, name, "cgroup.procs"))
	}
	return out, nil
}

// createSystemdHost gives a systemd host its root file system, a copy of the cached image,
// unless it has one (a host powered on again keeps its disk), and its identity: hostname,
// machine-id, /etc/hosts, resolv.conf, and sshd with the testbed's key.
func (t *Testbed) createSystemdHost(ctx context.Context, h Host) error {
	root := t.hostFS(h.Name)
	if _, err := os.Stat(filepath.Join(root, "usr/lib/systemd/systemd")); err != nil {
		logf, err := os.OpenFile(filepath.Join(t.dir, "log", "debootstrap.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		image, err := ensureRootfs(ctx, systemdRootfsSpec(), func(s string) { t.progress("%s", s) }, logf)
		logf.Close()
		if err != nil {
			return err
		}
		tmp := root + ".new"
		if err := copyRootfs(ctx, image, tmp); err != nil {
			return err
		}
		// What was there is what writeHostsFiles put before the image: it is written again below.
		if err := removeTree(root); err != nil {
			return err
		}
		if err := os.Rename(tmp, root); err != nil {
			return err
		}
	}
	files := map[string]string{
		"/etc/hostname":    h.Name + "\n",
		"/etc/hosts":       string(etcHosts(t.Hosts())),
		"/etc/resolv.conf": "# Written by the kforge testbed: nothing in a host reaches a real resolver.\nnameserver 127.0.0.1\n",
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/machine-id")); len(strings.TrimSpace(string(b))) == 0 {
		// A machine-id of its own, and not the first boot: systemd's first-boot presets
		// would enable every unit the image ships (ssh.socket besides ssh.service, say).
		id := make([]byte, 16)
		if _, err := io.ReadFull(rand.Reader, id); err != nil {
			return err
		}
		files["/etc/machine-id"] = hex.EncodeToString(id) + "\n"
	}
	for p, content := range files {
		dst := filepath.Join(root, p)
		if fi, err := os.Lstat(dst); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			os.Remove(dst) // Debian's resolv.conf may be a link; the host's is a file
		}
		if err := writeInPlace(dst, []byte(content)); err != nil {
			return err
		}
	}
	return t.createHostSSH(h)
}

// bootSystemd starts systemd-nspawn for the host in its cgroups and network namespace,
// records the container's PID 1 (systemd) as the host's init and waits until systemd
// reports the system running and sshd answers.
func (t *Testbed) bootSystemd(ctx context.Context, h Host) error {
	hd := t.hostDir(h.Name)
	if err := removeCgroups(ctx, h.Name); err != nil {
		return err
	}
	if err := createCgroups(h.Name); err != nil {
		return err
	}
	procs, err := hostCgroupProcs(h.Name)
	if err != nil {
		return err
	}
	// The unified hierarchy's /<name> is not made by createCgroups (it is v1 only).
	for _, p := range procs {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("creating the cgroup %s: %w", filepath.Dir(p), err)
		}
	}
	nspawn, err := lookPath("systemd-nspawn")
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(hd, "log", "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- boot %s\n", time.Now().UTC().Format(time.RFC3339))
	args := append(append(append([]string{"-c", joinCgroupsScript, "sh"}, procs...), "--", nspawn), nspawnArgs(h, t.hostFS(h.Name))...)
	cmd := exec.Command("/bin/sh", args...)
	cmd.Dir = "/"
	cmd.Env = append(baseEnv(), nspawnEnv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting systemd-nspawn: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	nspawnID, err := readProcID(cmd.Process.Pid)
	if err != nil {
		_ = cmd.Process.Kill()
		return fmt.Errorf("reading the start time of systemd-nspawn: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(hd, "nspawn.pid"), []byte(nspawnID.String()), 0o644); err != nil {
		_ = cmd.Process.Kill()
		return err
	}
	// The container's PID 1 is nspawn's child once it has exec'd systemd.
	var id procID
	deadline := time.Now().Add(30 * time.Second)
	for {
		if pid, ok := childRunning(cmd.Process.Pid, "systemd"); ok {
			if id, err = readProcID(pid); err == nil {
				break
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("systemd-nspawn exited; its output says:\n%s", tail(logf.Name(), 15))
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			return fmt.Errorf("systemd did not start in the container; nspawn's output says:\n%s", tail(logf.Name(), 15))
		}
	}
	if err := writeFileAtomic(filepath.Join(hd, "init.pid"), []byte(id.String()), 0o644); err != nil {
		_ = id.kill(syscall.SIGKILL)
		return err
	}
	t.logger().Debug("host systemd started", "host", h.Name, "nspawn", nspawnID.Pid, "pid", id.Pid)
	return t.waitSystemd(ctx, h, id, 120*time.Second)
}

// childRunning finds a child of pid whose command name is comm.
func childRunning(pid int, comm string) (int, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0, false
	}
	for _, f := range strings.Fields(string(b)) {
		child, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		if c, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", child)); err == nil && strings.TrimSpace(string(c)) == comm {
			return child, true
		}
	}
	return 0, false
}

// waitSystemd waits until the host's systemd says the system is running (or degraded:
// booted, with a failed unit, which the error then names) and sshd answers.
func (t *Testbed) waitSystemd(ctx context.Context, h Host, id procID, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if !id.alive() {
			return fmt.Errorf("the host's systemd exited; the console says:\n%s", tail(h.LogFile("console"), 15))
		}
		last = systemdRunning(ctx, h)
		if last == nil {
			last = dialSSH(ctx, h)
		}
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the host's systemd to boot: %w (last: %v); see %s", ctx.Err(), last, h.LogFile("console"))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// systemdRunning asks the host's systemd whether it has booted; a degraded system is an
// error that names the failed units.
func systemdRunning(ctx context.Context, h Host) error {
	out, _, err := h.Exec(ctx, nil, "systemctl", "is-system-running")
	state := strings.TrimSpace(string(out))
	switch {
	case state == "running":
		return nil
	case state == "degraded":
		failed, _, _ := h.Exec(ctx, nil, "systemctl", "--failed", "--no-legend", "--plain")
		return fmt.Errorf("systemd is degraded: %s", strings.TrimSpace(string(failed)))
	case state != "":
		return fmt.Errorf("systemd is %s", state)
	}
	return err
}

// powerOffSystemd kills the container's PID 1, which takes its whole PID namespace with
// it; systemd-nspawn then exits by itself. It waits for nspawn too, and removes the
// directory nspawn keeps for the machine in /run, which it cannot remove itself when /run
// is not a tmpfs.
func (t *Testbed) powerOffSystemd(ctx context.Context, h Host) error {
	if id, err := t.initID(h.Name); err == nil && id.alive() {
		if err := id.kill(syscall.SIGKILL); err != nil {
			return err
		}
		if err := id.waitGone(ctx, 30*time.Second); err != nil {
			return err
		}
	}
	if b, err := os.ReadFile(filepath.Join(t.hostDir(h.Name), "nspawn.pid")); err == nil {
		if id, err := parseProcID(string(b)); err == nil && id.alive() {
			if err := id.waitGone(ctx, 5*time.Second); err != nil {
				_ = id.kill(syscall.SIGKILL)
				if err := id.waitGone(ctx, 10*time.Second); err != nil {
					return err
				}
			}
		}
	}
	os.Remove(filepath.Join(t.hostDir(h.Name), "nspawn.pid"))
	if err := os.Remove(filepath.Join("/run/systemd/nspawn/propagate", h.Name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing nspawn's propagation directory: %w", err)
	}
	return nil
}

// systemdServices reports the host's sshd and containerd as its systemd sees them.
func (h Host) systemdServices(ctx context.Context) ([]ServiceStatus, error) {
	var out []ServiceStatus
	for _, name := range []string{SSHD, Containerd} {
		state, _, err := h.Exec(ctx, nil, "systemctl", "is-active", name+".service")
		s := strings.TrimSpace(string(state))
		if err != nil && s == "" {
			return nil, err
		}
		st := ServiceStatus{Name: name, State: StateStopped}
		switch s {
		case "active":
			st.State = StateRunning
		case "activating", "reloading":
			st.State = StateStarting
		case "deactivating":
			st.State = StateStopping
		}
		out = append(out, st)
	}
	return out, nil
}

// setSystemdService stops or starts a service with systemctl, which returns once it is
// done (sshd.service is Debian's alias of ssh.service).
func (h Host) setSystemdService(ctx context.Context, name string, up bool) error {
	verb := "stop"
	if up {
		verb = "start"
	}
	if _, _, err := h.Exec(ctx, nil, "systemctl", verb, name+".service"); err != nil {
		return err
	}
	if up && name == SSHD {
		return waitSSH(ctx, h)
	}
	return nil
}

// waitSSH waits up to 30 s for the host's sshd to accept connections.
func waitSSH(ctx context.Context, h Host) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := dialSSH(ctx, h)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
