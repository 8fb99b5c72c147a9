//go:build e2e

package testbed_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/kforge/kforge/e2e/testbed"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the testbed needs root: it creates network namespaces, a bridge, mounts and cgroups (run `sudo make e2e`)")
	}
}

// sh runs a shell command in a host and returns its trimmed stdout.
func sh(t *testing.T, h testbed.Host, script string) string {
	t.Helper()
	out, _, err := h.Exec(context.Background(), nil, "sh", "-c", script)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// sshRun logs in to h as root with the testbed's key, verifying the host key against the
// testbed's known_hosts, and runs cmd.
func sshRun(tb *testbed.Testbed, h testbed.Host, cmd string) (string, error) {
	key, err := os.ReadFile(tb.SSHKey())
	if err != nil {
		return "", err
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		return "", err
	}
	check, err := knownhosts.New(tb.KnownHosts())
	if err != nil {
		return "", err
	}
	client, err := ssh.Dial("tcp", h.SSHAddr(), &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: check,
		Timeout:         5 * time.Second,
	})
	if err != nil {
		return "", err
	}
	defer client.Close()
	s, err := client.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	return strings.TrimSpace(string(out)), err
}

func serviceState(t *testing.T, h testbed.Host, name string) testbed.ServiceStatus {
	t.Helper()
	svcs, err := h.Services()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(svcs, func(s testbed.ServiceStatus) bool { return s.Name == name })
	if i < 0 {
		t.Fatalf("host %s has no service %s: %+v", h.Name, name, svcs)
	}
	return svcs[i]
}

func TestTestbed(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	// Its own state directory, under /tmp: the hosts' private /tmp must not hide it from
	// their PID 1.
	dir := filepath.Join(t.TempDir(), "state")
	var progress bytes.Buffer
	start := time.Now()
	tb, err := testbed.Up(ctx, testbed.Options{Hosts: 2, StateDir: dir, Out: &progress})
	upTook := time.Since(start)
	t.Cleanup(func() {
		if tb != nil {
			if err := tb.Down(context.Background()); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	if err != nil {
		t.Fatalf("Up: %v\n%s", err, progress.String())
	}
	t.Logf("Up of 2 hosts took %s:\n%s", upTook.Round(time.Millisecond), progress.String())
	hosts := tb.Hosts()
	if len(hosts) != 2 || hosts[0].Name != "h1" || hosts[1].Name != "h2" {
		t.Fatalf("hosts = %+v, want h1 and h2", hosts)
	}
	h1, h2 := hosts[0], hosts[1]

	t.Run("identity", func(t *testing.T) {
		for _, h := range hosts {
			want := fmt.Sprintf("%s %s %s", h.Name, h.Name, h.Address)
			got := sh(t, h, `echo "$(hostname) $(cat /etc/hostname) $(ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1)"`)
			if got != want {
				t.Errorf("host %s says %q, want %q", h.Name, got, want)
			}
			if r := sh(t, h, "ip route show default; ip route show table all default"); r != "" {
				t.Errorf("host %s has a default route: %s", h.Name, r)
			}
			if got := sh(t, h, "getent hosts h1 h2 | awk '{print $1}' | tr '\\n' ' '"); got != h1.Address.String()+" "+h2.Address.String() {
				t.Errorf("host %s resolves h1 h2 to %q", h.Name, got)
			}
			if got := sh(t, h, "cat /etc/resolv.conf | grep ^nameserver"); got != "nameserver 127.0.0.1" {
				t.Errorf("host %s resolv.conf: %q", h.Name, got)
			}
		}
		if a, b := sh(t, h1, "cat /etc/machine-id"), sh(t, h2, "cat /etc/machine-id"); a == b || len(a) != 32 {
			t.Errorf("machine ids %q and %q: want two different ones", a, b)
		}
	})

	t.Run("private paths", func(t *testing.T) {
		sh(t, h1, "echo h1-only > /etc/kubernetes/marker && echo bin > /usr/local/bin/marker")
		if got := sh(t, h1, "cat /etc/kubernetes/marker"); got != "h1-only" {
			t.Errorf("h1 reads back %q", got)
		}
		if got := sh(t, h2, "ls -A /etc/kubernetes /usr/local/bin | grep -c marker || true"); got != "0" {
			t.Errorf("h2 sees h1's files")
		}
		for _, p := range []string{"/etc/kubernetes/marker", "/usr/local/bin/marker"} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("the machine sees h1's %s", p)
			}
		}
		if b, err := os.ReadFile(h1.PrivatePath("/etc/kubernetes/marker")); err != nil || string(b) != "h1-only\n" {
			t.Errorf("PrivatePath: %q, %v", b, err)
		}
		// /sys/class/net is the host's own; the cgroup hierarchies are still there.
		if got := sh(t, h1, "ls /sys/class/net | tr '\\n' ' '"); got != "eth0 lo" {
			t.Errorf("h1's /sys/class/net: %q", got)
		}
		root, _ := os.ReadFile("/sys/fs/cgroup/cpuset/cpuset.cpus")
		if got := sh(t, h1, "cat /sys/fs/cgroup/cpuset/h1/cpuset.cpus"); got != strings.TrimSpace(string(root)) {
			t.Errorf("h1's cgroupRoot has cpuset.cpus %q, the machine %q", got, root)
		}
		if got := sh(t, h1, "findmnt -no PROPAGATION /"); got != "shared" {
			t.Errorf("/ in h1 is %q, want shared", got)
		}
	})

	t.Run("ssh", func(t *testing.T) {
		for _, h := range hosts {
			got, err := sshRun(tb, h, "hostname; ls /root/.ssh")
			if err != nil {
				t.Fatalf("ssh to %s: %v", h.Name, err)
			}
			if got != h.Name+"\nauthorized_keys" {
				t.Errorf("ssh to %s: %q", h.Name, got)
			}
		}
		// The known_hosts file pins each host's own key: h2's key does not pass for h1.
		kh, _ := os.ReadFile(tb.KnownHosts())
		var swapped []string
		for _, line := range strings.Split(strings.TrimSpace(string(kh)), "\n") {
			f := strings.Fields(line)
			if strings.HasPrefix(f[0], "h2,") {
				swapped = append(swapped, strings.Join(append([]string{"h1," + h1.Address.String()}, f[1:]...), " "))
			}
		}
		bad := filepath.Join(t.TempDir(), "known_hosts")
		os.WriteFile(bad, []byte(strings.Join(swapped, "\n")+"\n"), 0o644)
		check, _ := knownhosts.New(bad)
		key, _ := os.ReadFile(tb.SSHKey())
		signer, _ := ssh.ParsePrivateKey(key)
		_, err := ssh.Dial("tcp", h1.SSHAddr(), &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: check, Timeout: 5 * time.Second})
		var ke *knownhosts.KeyError
		if !errors.As(err, &ke) {
			t.Errorf("ssh to h1 with h2's key pinned: %v, want a key mismatch", err)
		}
		// sshd listens on the host's address only.
		if got := sh(t, h1, "ss -Hltn | awk '$4 ~ /:22$/ {print $4}'"); got != h1.Address.String()+":22" {
			t.Errorf("h1's sshd listens on %q", got)
		}
	})

	t.Run("containerd", func(t *testing.T) {
		uuids := map[string]bool{}
		for _, h := range hosts {
			out := sh(t, h, "ctr version")
			i := strings.Index(out, "Server:")
			if i < 0 {
				t.Fatalf("ctr version in %s has no server part:\n%s", h.Name, out)
			}
			for _, line := range strings.Split(out[i:], "\n") {
				if u, ok := strings.CutPrefix(strings.TrimSpace(line), "UUID:"); ok {
					uuids[strings.TrimSpace(u)] = true
				}
			}
			cfg := sh(t, h, "cat /etc/containerd/config.toml")
			for _, want := range []string{`address = "/run/containerd/containerd.sock"`, `root = "/var/lib/containerd"`, `restrict_oom_score_adj = false`} {
				if !strings.Contains(cfg, want) {
					t.Errorf("%s's containerd config lacks %q: it should be containerd's stock one", h.Name, want)
				}
			}
		}
		if len(uuids) != 2 {
			t.Errorf("containerd UUIDs %v: want one containerd per host", uuids)
		}
		// runc runs a container in a host: mounts, cgroups (in the host's own subtree) and
		// namespaces all work there.
		got := sh(t, h1, `mkdir -p /tmp/rootfs/bin && cp /bin/busybox /tmp/rootfs/bin/ &&
			ctr run --rm --cgroup /h1/e2e --rootfs /tmp/rootfs e2e /bin/busybox sh -c 'echo ran in $(hostname); grep memory /proc/self/cgroup'`)
		if want := "ran in h1\n4:memory:/h1/e2e"; !strings.HasPrefix(got, "ran in h1\n") || !strings.Contains(got, ":memory:/h1/e2e") {
			t.Errorf("a container in h1 says %q, want something like %q", got, want)
		}
	})

	t.Run("pid namespace", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cmd := h1.Command(cctx, "sleep", "1000")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		deadline := time.Now().Add(5 * time.Second)
		for sh(t, h1, "pgrep -x sleep || true") == "" && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if got := sh(t, h1, "pgrep -x sleep | wc -l"); got != "1" {
			t.Errorf("h1 sees %s sleep processes, want 1", got)
		}
		if got := sh(t, h2, "pgrep -x sleep | wc -l"); got != "0" {
			t.Errorf("h2 sees %s of h1's sleep processes", got)
		}
		if got := sh(t, h2, "cat /proc/1/comm"); got != "kf-init" {
			t.Errorf("h2's PID 1 is %q", got)
		}
		cancel()
		<-done
		deadline = time.Now().Add(5 * time.Second)
		for sh(t, h1, "pgrep -x sleep || true") != "" && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if got := sh(t, h1, "pgrep -x sleep || true"); got != "" {
			t.Errorf("cancelling Command's context left the process in the host running: %s", got)
		}
	})

	t.Run("no egress", func(t *testing.T) {
		_, stderr, err := h1.Exec(ctx, nil, "ip", "route", "get", "192.0.2.1")
		if err == nil || !strings.Contains(string(stderr), "unreachable") {
			t.Errorf("a host has a route out of the testbed: %v %s", err, stderr)
		}
		out, err := onMachine(ctx, "iptables", "-S", "FORWARD")
		if err != nil || !strings.Contains(out, "-i "+testbed.Bridge+" ! -o "+testbed.Bridge) || !strings.Contains(out, "-j DROP") {
			t.Errorf("no FORWARD drop for the bridge: %v\n%s", err, out)
		}
		if got := sh(t, h1, "timeout 5 bash -c '</dev/tcp/"+h2.Address.String()+"/22' && echo ok || echo fail"); got != "ok" {
			t.Errorf("h1 cannot reach h2's sshd: %s", got)
		}
	})

	t.Run("stop and start a service", func(t *testing.T) {
		if err := h1.StopService(ctx, testbed.SSHD); err != nil {
			t.Fatal(err)
		}
		if _, err := sshRun(tb, h1, "true"); err == nil {
			t.Error("ssh to h1 works with sshd stopped")
		}
		if s := serviceState(t, h1, testbed.SSHD); s.State != testbed.StateStopped {
			t.Errorf("sshd is %s after StopService", s.State)
		}
		if err := h1.StartService(ctx, testbed.SSHD); err != nil {
			t.Fatal(err)
		}
		if got, err := sshRun(tb, h1, "hostname"); err != nil || got != "h1" {
			t.Errorf("ssh after StartService: %q, %v", got, err)
		}
		if err := h2.StopService(ctx, "kubelet"); err == nil {
			t.Error("StopService of an unknown service succeeded")
		}
	})

	t.Run("containerd restarts when it exits", func(t *testing.T) {
		before := serviceState(t, h2, testbed.Containerd)
		old := sh(t, h2, "cat /run/containerd.pid")
		// What kforge does after rewriting the configuration.
		sh(t, h2, "kill $(cat /run/containerd.pid)")
		var s testbed.ServiceStatus
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			s = serviceState(t, h2, testbed.Containerd)
			if s.State == testbed.StateRunning && s.PID != before.PID {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if s.State != testbed.StateRunning || s.PID == before.PID || s.Restarts != before.Restarts+1 {
			t.Fatalf("containerd after kill: %+v (before: %+v)", s, before)
		}
		if now := sh(t, h2, "cat /run/containerd.pid"); now == old || now != strconv.Itoa(s.PID) {
			t.Errorf("pid file %s -> %s, status says %d", old, now, s.PID)
		}
		sh(t, h2, "ctr version >/dev/null")
	})

	t.Run("power cycle", func(t *testing.T) {
		sh(t, h2, "echo disk > /var/lib/kubelet/survives; echo ram > /run/goes")
		pid, _ := h2.InitPID()
		if err := h2.PowerOff(ctx); err != nil {
			t.Fatal(err)
		}
		if _, _, err := h2.Exec(ctx, nil, "true"); !errors.Is(err, testbed.ErrPoweredOff) {
			t.Errorf("Exec on a powered-off host: %v, want ErrPoweredOff", err)
		}
		if syscall.Kill(pid, 0) == nil && !zombie(pid) {
			t.Errorf("h2's init (pid %d) survived PowerOff", pid)
		}
		if _, err := os.Stat("/sys/fs/cgroup/memory/h2"); err == nil {
			t.Error("h2's cgroup is still there after PowerOff")
		}
		if err := h2.PowerOn(ctx); err != nil {
			t.Fatal(err)
		}
		if got := sh(t, h2, "cat /var/lib/kubelet/survives; ls /run/goes 2>/dev/null || echo gone"); got != "disk\ngone" {
			t.Errorf("after a power cycle: %q, want the disk kept and /run fresh", got)
		}
		if got, err := sshRun(tb, h2, "hostname"); err != nil || got != "h2" {
			t.Errorf("ssh after PowerOn: %q, %v", got, err)
		}
	})

	t.Run("up again keeps the hosts", func(t *testing.T) {
		var pids []int
		for _, h := range hosts {
			p, _ := h.InitPID()
			pids = append(pids, p)
		}
		again, err := testbed.Up(ctx, testbed.Options{Hosts: 2, StateDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		for i, h := range again.Hosts() {
			if p, _ := h.InitPID(); p != pids[i] {
				t.Errorf("Up replaced the healthy host %s (init %d -> %d)", h.Name, pids[i], p)
			}
		}
	})

	t.Run("measurements", func(t *testing.T) {
		time.Sleep(2 * time.Second) // let containerd settle
		for _, h := range hosts {
			u, err := h.Usage()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("idle host %s: %d processes, PSS %.1f MiB, RSS %.1f MiB", h.Name, u.Processes, float64(u.PSSKiB)/1024, float64(u.RSSKiB)/1024)
		}
		added := time.Now()
		h3, err := tb.Add(ctx, "extra")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("adding a host took %s", time.Since(added).Round(time.Millisecond))
		if h3.Address.String() != "10.77.0.254" {
			t.Errorf("a host named by hand got %s, want the top address 10.77.0.254", h3.Address)
		}
		if got := sh(t, h1, "getent hosts extra | awk '{print $1}'"); got != h3.Address.String() {
			t.Errorf("h1 resolves extra to %q after Add", got)
		}
		if got, err := sshRun(tb, h3, "hostname"); err != nil || got != "extra" {
			t.Errorf("ssh to the added host: %q, %v", got, err)
		}
	})

	t.Run("down leaves nothing", func(t *testing.T) {
		var inits []int
		hosts := tb.Hosts()
		for _, h := range hosts {
			p, err := h.InitPID()
			if err != nil {
				t.Fatal(err)
			}
			inits = append(inits, p)
		}
		// Every process of every host, by pid: they must all be gone.
		inHosts := processesInPIDNamespacesOf(inits)
		if err := tb.Down(ctx); err != nil {
			t.Fatal(err)
		}
		for _, p := range inHosts {
			if syscall.Kill(p, 0) == nil && !zombie(p) {
				t.Errorf("pid %d of a host still runs", p)
			}
		}
		for _, h := range hosts {
			if _, err := os.Lstat(h.NetNS()); err == nil {
				t.Errorf("%s is still there", h.NetNS())
			}
			if left, _ := filepath.Glob("/sys/fs/cgroup/*/" + h.Name); len(left) > 0 {
				t.Errorf("the cgroups of %s are still there: %s", h.Name, left)
			}
		}
		if _, err := net.InterfaceByName(testbed.Bridge); err == nil {
			t.Errorf("the bridge %s is still there", testbed.Bridge)
		}
		if out, _ := onMachine(ctx, "iptables", "-S", "FORWARD"); strings.Contains(out, "kforge-testbed") {
			t.Errorf("FORWARD rules left:\n%s", out)
		}
		mi, _ := os.ReadFile("/proc/self/mountinfo")
		for _, line := range strings.Split(string(mi), "\n") {
			if strings.Contains(line, dir) || strings.Contains(line, "/run/netns/"+testbed.NetnsPrefix) {
				t.Errorf("mount left: %s", line)
			}
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("the state directory %s is still there", dir)
		}
		if err := tb.Down(ctx); err != nil {
			t.Errorf("a second Down: %v", err)
		}
		if err := testbed.Down(ctx, dir); err != nil {
			t.Errorf("Down of a state dir with no testbed: %v", err)
		}
		tb = nil
	})
}

// processesInPIDNamespacesOf lists every pid whose PID namespace is one of those the
// given processes are PID 1 of.
func processesInPIDNamespacesOf(inits []int) []int {
	nss := map[string]bool{}
	for _, p := range inits {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", p)); err == nil {
			nss[l] = true
		}
	}
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err == nil && nss[l] {
			pids = append(pids, pid)
		}
	}
	return pids
}

// onMachine runs a command in the machine itself.
func onMachine(ctx context.Context, name string, args ...string) (string, error) {
	out, err := osexec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}
