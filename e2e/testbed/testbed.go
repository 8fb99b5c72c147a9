package testbed

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options say what Up builds.
type Options struct {
	// Hosts is how many hosts h1..hN to have. Up keeps hosts it finds, more included.
	Hosts int
	// StateDir holds everything the testbed keeps; DefaultStateDir if empty.
	StateDir string
	// Subnet of the bridge; DefaultSubnet if empty. A testbed keeps the subnet it was
	// created with.
	Subnet string
	// Out receives progress lines; nil discards them.
	Out io.Writer
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// Kind of the hosts Up creates: KindNS if empty. Up refuses to keep a host h1..hN of
	// another kind.
	Kind Kind
}

// Testbed is a set of hosts on this machine, described by its state directory.
type Testbed struct {
	// Out receives progress lines and Logger diagnostics; both may be set after Load.
	Out    io.Writer
	Logger *slog.Logger

	dir string
	mu  sync.Mutex // guards st
	st  *state
}

// ErrNoTestbed is returned by Load when the state directory holds no testbed.
var ErrNoTestbed = errors.New("no testbed")

// errNotRoot explains the one requirement nothing can work around.
var errNotRoot = errors.New("the testbed needs root: it creates network namespaces, a bridge, mounts and cgroups")

// Up makes sure the testbed has at least opts.Hosts hosts h1..hN, all running: it installs
// missing Debian packages, creates the bridge, the hosts' namespaces, files and keys, and
// boots each host. Hosts that already run and are healthy are kept as they are; a host
// that is powered off or unhealthy is (re)booted with its files intact. Once it has
// written its state, Up returns the Testbed even when it fails, so that the caller can
// Down what it made.
func Up(ctx context.Context, opts Options) (*Testbed, error) {
	if os.Geteuid() != 0 {
		return nil, errNotRoot
	}
	kind, err := ParseKind(string(opts.Kind))
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(cmp.Or(opts.StateDir, DefaultStateDir))
	if err != nil {
		return nil, err
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer lock.unlock()

	t := &Testbed{Out: opts.Out, Logger: opts.Logger, dir: dir}
	st, err := readState(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		st = &state{Version: stateVersion, Subnet: cmp.Or(opts.Subnet, DefaultSubnet)}
	case err != nil:
		return nil, err
	case opts.Subnet != "" && opts.Subnet != st.Subnet:
		return nil, fmt.Errorf("the testbed in %s uses the subnet %s, not %s: run down first to change it", dir, st.Subnet, opts.Subnet)
	}
	t.st = st
	subnet, err := parseSubnet(st.Subnet)
	if err != nil {
		return nil, err
	}
	if err := t.save(); err != nil {
		return t, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "log"), 0o755); err != nil {
		return t, err
	}
	if err := t.prepareMachine(ctx, kind); err != nil {
		return t, err
	}
	t.mu.Lock()
	noteRunNetns(st)
	t.mu.Unlock()
	if err := ensureBridge(ctx, dir, subnet); err != nil {
		return t, err
	}
	if err := ensureForwardRules(ctx); err != nil {
		return t, err
	}

	stored := kind // as hostState records it: empty for KindNS
	if kind == KindNS {
		stored = ""
	}
	t.mu.Lock()
	for i := 1; i <= opts.Hosts; i++ {
		name := "h" + strconv.Itoa(i)
		if j := slices.IndexFunc(st.Hosts, func(h hostState) bool { return h.Name == name }); j >= 0 {
			if have := cmp.Or(st.Hosts[j].Kind, KindNS); have != kind {
				t.mu.Unlock()
				return t, fmt.Errorf("host %s is a %s host, not %s: run down first to change the kind of the hosts", name, have, kind)
			}
			continue
		}
		idx, err := allocIndex(st, name, maxIndex(subnet))
		if err != nil {
			t.mu.Unlock()
			return t, err
		}
		st.Hosts = append(st.Hosts, hostState{Name: name, Index: idx, Kind: stored})
	}
	t.mu.Unlock()
	if err := t.save(); err != nil {
		return t, err
	}
	hosts := t.Hosts()
	if err := t.writeHostsFiles(hosts); err != nil {
		return t, err
	}
	// Two at a time: the machine has few cores, and containerd's start is most of a host's.
	err = forEach(hosts, 2, func(h Host) error { return t.ensureHost(ctx, h) })
	return t, errors.Join(err, t.writeKnownHosts(hosts))
}

// Add creates one more host named name and boots it. Every host's /etc/hosts and the
// known_hosts file learn about it.
func (t *Testbed) Add(ctx context.Context, name string) (Host, error) {
	if err := validName(name); err != nil {
		return Host{}, err
	}
	lock, err := lockDir(t.dir)
	if err != nil {
		return Host{}, err
	}
	defer lock.unlock()
	if err := t.reload(); err != nil {
		return Host{}, err
	}
	if _, ok := t.Host(name); ok {
		return Host{}, fmt.Errorf("host %s exists already", name)
	}
	subnet, err := parseSubnet(t.st.Subnet)
	if err != nil {
		return Host{}, err
	}
	t.mu.Lock()
	idx, err := allocIndex(t.st, name, maxIndex(subnet))
	if err == nil {
		t.st.Hosts = append(t.st.Hosts, hostState{Name: name, Index: idx})
	}
	t.mu.Unlock()
	if err != nil {
		return Host{}, err
	}
	if err := t.save(); err != nil {
		return Host{}, err
	}
	h, _ := t.Host(name)
	hosts := t.Hosts()
	if err := t.writeHostsFiles(hosts); err != nil {
		return h, err
	}
	if err := t.ensureHost(ctx, h); err != nil {
		return h, err
	}
	return h, t.writeKnownHosts(hosts)
}

// Load finds the testbed in stateDir (DefaultStateDir if empty). It fails with
// ErrNoTestbed when there is none.
func Load(stateDir string) (*Testbed, error) {
	dir, err := filepath.Abs(cmp.Or(stateDir, DefaultStateDir))
	if err != nil {
		return nil, err
	}
	st, err := readState(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s", ErrNoTestbed, dir)
	}
	if err != nil {
		return nil, err
	}
	return &Testbed{dir: dir, st: st}, nil
}

// Dir is the state directory.
func (t *Testbed) Dir() string { return t.dir }

// SSHKey is the private key that logs in as root on every host (its public half is
// SSHKey()+".pub").
func (t *Testbed) SSHKey() string { return filepath.Join(t.dir, "ssh", "id_ed25519") }

// KnownHosts is a known_hosts file with every host's key, by name and by address.
func (t *Testbed) KnownHosts() string { return filepath.Join(t.dir, "ssh", "known_hosts") }

// Subnet is the hosts' network.
func (t *Testbed) Subnet() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.st.Subnet
}

// Hosts lists the hosts in address order.
func (t *Testbed) Hosts() []Host {
	t.mu.Lock()
	defer t.mu.Unlock()
	subnet, err := parseSubnet(t.st.Subnet)
	if err != nil {
		return nil
	}
	var hs []Host
	for _, h := range t.st.Hosts {
		hs = append(hs, Host{Name: h.Name, Address: hostAddr(subnet, h.Index), SSHPort: SSHPort, index: h.Index, kind: h.Kind, tb: t})
	}
	slices.SortFunc(hs, func(a, b Host) int { return a.index - b.index })
	return hs
}

// Host returns the host called name.
func (t *Testbed) Host(name string) (Host, bool) {
	for _, h := range t.Hosts() {
		if h.Name == name {
			return h, true
		}
	}
	return Host{}, false
}

func (t *Testbed) hostDir(name string) string { return filepath.Join(t.dir, "hosts", name) }
func (t *Testbed) initBin() string            { return filepath.Join(t.dir, "bin", initName) }

func (t *Testbed) save() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return writeState(t.dir, t.st)
}

func (t *Testbed) reload() error {
	st, err := readState(t.dir)
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.st = st
	t.mu.Unlock()
	return nil
}

func (t *Testbed) progress(format string, args ...any) {
	if t.Out != nil {
		fmt.Fprintf(t.Out, "[testbed] "+format+"\n", args...)
	}
}

func (t *Testbed) logger() *slog.Logger {
	if t.Logger != nil {
		return t.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// prepareMachine does what every host needs once: packages, mount points, the testbed's
// SSH key, the init binary and the stock containerd configuration.
func (t *Testbed) prepareMachine(ctx context.Context, kind Kind) error {
	aptLog, err := os.OpenFile(filepath.Join(t.dir, "log", "apt.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer aptLog.Close()
	pkgs := Packages
	if kind == KindSystemd {
		pkgs = append(slices.Clone(pkgs), machinePackagesSystemd...)
	}
	if err := EnsurePackages(ctx, pkgs, func(s string) { t.progress("%s", s) }, aptLog); err != nil {
		return fmt.Errorf("installing the packages hosts need: %w", err)
	}
	if err := ensureMountpoints(t.st, t.save); err != nil {
		return err
	}
	if err := ensureKeyPair(t.SSHKey(), "kforge-testbed"); err != nil {
		return fmt.Errorf("creating the testbed's SSH key: %w", err)
	}
	if err := t.installInit(); err != nil {
		return err
	}
	path := filepath.Join(t.dir, "containerd-config-default.toml")
	if _, err := os.Stat(path); err != nil {
		out, err := run(ctx, nil, "containerd", "config", "default")
		if err != nil {
			return fmt.Errorf("getting containerd's default configuration: %w", err)
		}
		if err := writeFileAtomic(path, out, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// installInit puts the running binary at <state>/bin/kf-init: a hard link when it can, a
// copy otherwise. A host's PID 1 runs it (see the init function in init.go).
func (t *Testbed) installInit() error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the running binary for the hosts' init: %w", err)
	}
	dst := t.initBin()
	if a, err := os.Stat(exe); err == nil {
		if b, err := os.Stat(dst); err == nil && os.SameFile(a, b) {
			return nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp := dst + ".tmp"
	os.Remove(tmp)
	if err := os.Link(exe, tmp); err != nil {
		b, err := os.ReadFile(exe)
		if err != nil {
			return fmt.Errorf("copying %s for the hosts' init: %w", exe, err)
		}
		if err := os.WriteFile(tmp, b, 0o755); err != nil {
			return fmt.Errorf("copying %s for the hosts' init: %w", exe, err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("installing the hosts' init: %w", err)
	}
	return nil
}

// writeHostsFiles gives every host an /etc/hosts that names all of them. The file is
// rewritten in place: running hosts have it bind-mounted.
func (t *Testbed) writeHostsFiles(hosts []Host) error {
	content := etcHosts(hosts)
	for _, h := range hosts {
		p := filepath.Join(t.hostFS(h.Name), "etc/hosts")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := writeInPlace(p, content); err != nil {
			return err
		}
	}
	return nil
}

// ensureHost keeps a healthy running host, and otherwise builds what is missing and
// boots it.
func (t *Testbed) ensureHost(ctx context.Context, h Host) error {
	start := time.Now()
	if id, err := t.initID(h.Name); err == nil && id.alive() {
		if err := t.checkHealth(ctx, h); err == nil {
			t.progress("%s %s: running (kept)", h.Name, h.Address)
			return nil
		} else {
			t.progress("%s: unhealthy (%v): rebooting it", h.Name, err)
		}
		if err := h.PowerOff(ctx); err != nil {
			return err
		}
	}
	if err := t.createHost(ctx, h); err != nil {
		return fmt.Errorf("creating host %s: %w", h.Name, err)
	}
	if err := t.boot(ctx, h); err != nil {
		return fmt.Errorf("booting host %s: %w", h.Name, err)
	}
	t.progress("%s %s: up in %s", h.Name, h.Address, time.Since(start).Round(time.Millisecond))
	return nil
}

// createHost makes the host's files and network; what exists is kept.
func (t *Testbed) createHost(ctx context.Context, h Host) error {
	for _, d := range []string{"log", "down"} {
		if err := os.MkdirAll(filepath.Join(t.hostDir(h.Name), d), 0o755); err != nil {
			return err
		}
	}
	if h.Kind() == KindSystemd {
		if err := t.createSystemdHost(ctx, h); err != nil {
			return err
		}
	} else if err := t.createNSHostFiles(h); err != nil {
		return err
	}
	subnet, err := parseSubnet(t.Subnet())
	if err != nil {
		return err
	}
	if p := addrPrefix(h.Address, subnet); !hostNetworkOK(ctx, h.Name, h.index, p) {
		if err := createHostNetwork(ctx, h.Name, h.index, p); err != nil {
			return err
		}
	}
	return nil
}

// createNSHostFiles makes a namespace host's private paths, its sshd and containerd's
// stock configuration.
func (t *Testbed) createNSHostFiles(h Host) error {
	if err := t.createHostFS(h.Name); err != nil {
		return err
	}
	if err := t.createHostSSH(h); err != nil {
		return err
	}
	cfg := filepath.Join(t.hostFS(h.Name), "etc/containerd/config.toml")
	if _, err := os.Stat(cfg); errors.Is(err, fs.ErrNotExist) {
		b, err := os.ReadFile(filepath.Join(t.dir, "containerd-config-default.toml"))
		if err != nil {
			return err
		}
		if err := writeFileAtomic(cfg, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// services are what each host's PID 1 runs, as a cloud image's systemd would.
func services(h Host) ([]serviceSpec, error) {
	sshd, err := lookPath("sshd")
	if err != nil {
		return nil, err
	}
	containerd, err := lookPath("containerd")
	if err != nil {
		return nil, err
	}
	return []serviceSpec{
		{Name: SSHD, Argv: []string{sshd, "-D", "-e", "-f", "/etc/ssh/sshd_config"}, PidFile: "/run/sshd.pid",
			ReadyTCP: net.JoinHostPort(h.Address.String(), strconv.Itoa(SSHPort))},
		{Name: Containerd, Argv: []string{containerd}, PidFile: "/run/containerd.pid",
			ReadyUnix: "/run/containerd/containerd.sock"},
	}, nil
}

// boot starts the host's PID 1 and waits until its services answer. The host's cgroups
// start empty, as after a real boot.
func (t *Testbed) boot(ctx context.Context, h Host) error {
	if h.Kind() == KindSystemd {
		return t.bootSystemd(ctx, h)
	}
	return t.bootNS(ctx, h)
}

// bootNS starts a namespace host's kf-init in its network namespace and new mount, UTS
// and PID namespaces.
func (t *Testbed) bootNS(ctx context.Context, h Host) error {
	hd := t.hostDir(h.Name)
	if err := removeCgroups(ctx, h.Name); err != nil {
		return err
	}
	if err := createCgroups(h.Name); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(hd, "down")); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(hd, "down"), 0o755); err != nil {
		return err
	}
	os.Remove(filepath.Join(hd, "status.json"))
	svcs, err := services(h)
	if err != nil {
		return err
	}
	cfg := initConfig{Name: h.Name, HostDir: hd, Services: svcs}
	for _, p := range PrivatePaths {
		cfg.Mounts = append(cfg.Mounts, initMount{Source: filepath.Join(t.hostFS(h.Name), p.Path), Target: p.Path})
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(hd, "init.json")
	if err := writeFileAtomic(cfgPath, b, 0o644); err != nil {
		return err
	}
	nsenter, err := lookPath("nsenter")
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(hd, "log", "init.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	// nsenter joins the network namespace and execs kf-init, which is then PID 1 of the
	// PID namespace this clone creates.
	cmd := exec.Command(nsenter, "--net="+netnsPath(h.Name), "--", t.initBin(), cfgPath)
	cmd.Dir = "/"
	cmd.Env = baseEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setsid:     true,
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS | syscall.CLONE_NEWPID,
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the host's init: %w", err)
	}
	id, err := readProcID(cmd.Process.Pid)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("reading the start time of the host's init: %w", err)
	}
	// While this process lives it is the init's parent and reaps it; after that, the
	// machine's init does.
	go func() { _ = cmd.Wait() }()
	if err := writeFileAtomic(filepath.Join(hd, "init.pid"), []byte(id.String()), 0o644); err != nil {
		_ = id.kill(syscall.SIGKILL)
		return err
	}
	t.logger().Debug("host init started", "host", h.Name, "pid", id.Pid)
	return t.waitServices(ctx, h, id, nil, 60*time.Second)
}

// waitServices waits until every service (or only those in names) is running and, for
// sshd, reachable from the machine.
func (t *Testbed) waitServices(ctx context.Context, h Host, id procID, names []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if !id.alive() {
			return fmt.Errorf("the host's init exited; its log says:\n%s", tail(filepath.Join(t.hostDir(h.Name), "log", "init.log"), 15))
		}
		last = t.servicesRunning(h, names)
		if last == nil && (names == nil || slices.Contains(names, SSHD)) {
			last = dialSSH(ctx, h)
		}
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the host's services: %w (last: %v); see %s",
				ctx.Err(), last, filepath.Join(t.hostDir(h.Name), "log"))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (t *Testbed) servicesRunning(h Host, names []string) error {
	st, err := t.readStatus(h.Name)
	if err != nil {
		return err
	}
	for _, s := range st.Services {
		if (names == nil || slices.Contains(names, s.Name)) && s.State != StateRunning {
			msg := fmt.Sprintf("%s is %s", s.Name, s.State)
			if s.LastExit != "" {
				msg += " (last exit: " + s.LastExit + ")"
			}
			return errors.New(msg)
		}
	}
	return nil
}

func dialSSH(ctx context.Context, h Host) error {
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", h.SSHAddr())
	if err != nil {
		return err
	}
	return c.Close()
}

// checkHealth says why a running host is not fit to keep, or nil.
func (t *Testbed) checkHealth(ctx context.Context, h Host) error {
	subnet, err := parseSubnet(t.Subnet())
	if err != nil {
		return err
	}
	if !hostNetworkOK(ctx, h.Name, h.index, addrPrefix(h.Address, subnet)) {
		return errors.New("its network is broken")
	}
	if h.Kind() == KindSystemd {
		if err := systemdRunning(ctx, h); err != nil {
			return err
		}
		return dialSSH(ctx, h)
	}
	if err := t.servicesRunning(h, nil); err != nil {
		return err
	}
	return dialSSH(ctx, h)
}

func (t *Testbed) readStatus(name string) (*hostStatus, error) {
	b, err := os.ReadFile(filepath.Join(t.hostDir(name), "status.json"))
	if err != nil {
		return nil, fmt.Errorf("reading the status of host %s: %w", name, err)
	}
	var st hostStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("reading the status of host %s: %w", name, err)
	}
	return &st, nil
}

// initID is the host's PID 1 as its pid file names it.
func (t *Testbed) initID(name string) (procID, error) {
	b, err := os.ReadFile(filepath.Join(t.hostDir(name), "init.pid"))
	if err != nil {
		return procID{}, err
	}
	return parseProcID(string(b))
}

// Down removes everything the testbed made: every host's processes (its PID 1 is killed
// by pid, which kills everything in its PID namespace), network namespaces, cables and
// cgroups, the bridge, the FORWARD rules, the mount points it created and the state
// directory. Down of a testbed that is half made, or already gone, is fine.
func (t *Testbed) Down(ctx context.Context) error {
	lock, err := lockDir(t.dir)
	if err != nil {
		return err
	}
	defer lock.unlock()
	if err := t.reload(); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return t.down(ctx)
}

// Down removes the testbed in stateDir, if there is one, and sweeps up what a testbed
// leaves on the machine even without its state: the bridge (if it is this state
// directory's), the tagged FORWARD rules, and kf- network namespaces with the processes
// in them.
func Down(ctx context.Context, stateDir string) error {
	if os.Geteuid() != 0 {
		return errNotRoot
	}
	t, err := Load(stateDir)
	if errors.Is(err, ErrNoTestbed) {
		dir, _ := filepath.Abs(cmp.Or(stateDir, DefaultStateDir))
		t = &Testbed{dir: dir, st: &state{Version: stateVersion}}
	} else if err != nil {
		return err
	}
	return t.Down(ctx)
}

func (t *Testbed) down(ctx context.Context) error {
	if t.st == nil {
		t.st = &state{Version: stateVersion}
	}
	var errs []error
	hosts := t.Hosts()
	slices.Reverse(hosts)
	for _, h := range hosts {
		if err := h.PowerOff(ctx); err != nil {
			errs = append(errs, err)
		}
		if err := removeHostNetwork(ctx, h.Name, h.index); err != nil {
			errs = append(errs, err)
		}
	}
	if err := sweepNetns(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := removeForwardRules(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := removeBridge(ctx, t.dir); err != nil {
		errs = append(errs, err)
	}
	if err := restoreRunNetns(t.st); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...) // the state stays, for the next Down
	}
	// The state directory goes only if nothing is mounted inside it: removing it must not
	// reach into anything else.
	if m := mountsUnder(t.dir); len(m) > 0 {
		return fmt.Errorf("leaving %s in place: these mounts are under it: %s", t.dir, strings.Join(m, ", "))
	}
	if err := os.RemoveAll(t.dir); err != nil {
		return fmt.Errorf("removing the state directory: %w", err)
	}
	t.mu.Lock()
	st := t.st
	t.st = &state{Version: stateVersion, Subnet: st.Subnet}
	t.mu.Unlock()
	// Last, the mount points the testbed created in the machine. One that something else
	// has filled since is left alone and reported; nothing of the testbed is left to retry.
	return removeMountpoints(st)
}

// sweepNetns removes kf- network namespaces that no state lists any more, killing the
// processes in them by pid first.
func sweepNetns(ctx context.Context) error {
	entries, err := os.ReadDir("/run/netns")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), NetnsPrefix) {
			continue
		}
		host := strings.TrimPrefix(e.Name(), NetnsPrefix)
		if netnsMounted(host) {
			var st syscall.Stat_t
			if err := syscall.Stat(netnsPath(host), &st); err == nil {
				for _, pid := range processesIn("net", st.Ino) {
					if id, err := readProcID(pid); err == nil {
						_ = id.kill(syscall.SIGKILL)
						_ = id.waitGone(ctx, 10*time.Second)
					}
				}
			}
		}
		if _, err := run(ctx, nil, "ip", "netns", "del", e.Name()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// forEach runs fn for every host, at most limit at a time, and joins the failures.
func forEach(hosts []Host, limit int, fn func(Host) error) error {
	sem := make(chan struct{}, limit)
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = fn(h)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
