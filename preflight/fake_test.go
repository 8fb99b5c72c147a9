package preflight

import (
	"context"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
)

// fakeSystem is a host made of maps. The zero value is an empty host; healthyHost is one
// where every init check passes.
type fakeSystem struct {
	files   map[string]string // path to content; a path ending in "/" is an empty directory
	links   map[string]string // symlink path to target
	readErr map[string]error  // ReadFile or ReadDir of this path fails so
	bins    map[string]bool   // executables on PATH
	lookErr map[string]error  // LookPath of this name fails so
	outputs map[string]fakeOutput
	busy    map[string]bool  // Listen addresses in use
	listErr map[string]error // Listen of this address fails so
	sockets map[string]bool  // unix sockets that answer
	hosts   map[string]bool  // names that resolve
	env     map[string]string
	euid    int
	ncpu    int

	listened []string // every Listen address, in order
}

type fakeOutput struct {
	out string
	err error
}

func notExist(op, path string) error {
	return &fs.PathError{Op: op, Path: path, Err: fs.ErrNotExist}
}

func (f *fakeSystem) ReadFile(path string) ([]byte, error) {
	if err := f.readErr[path]; err != nil {
		return nil, err
	}
	if c, ok := f.files[path]; ok {
		return []byte(c), nil
	}
	return nil, notExist("open", path)
}

func (f *fakeSystem) ReadDir(path string) ([]string, error) {
	if err := f.readErr[path]; err != nil {
		return nil, err
	}
	prefix := strings.TrimSuffix(path, "/") + "/"
	_, exists := f.files[prefix]
	var names []string
	add := func(p string) {
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok {
			return
		}
		exists = true
		name, _, _ := strings.Cut(rest, "/")
		if name != "" && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	for p := range f.files {
		add(p)
	}
	for p := range f.links {
		add(p)
	}
	if !exists {
		return nil, notExist("open", path)
	}
	slices.Sort(names)
	return names, nil
}

func (f *fakeSystem) Readlink(path string) (string, error) {
	if t, ok := f.links[path]; ok {
		return t, nil
	}
	return "", notExist("readlink", path)
}

func (f *fakeSystem) LookPath(file string) (string, error) {
	if f.bins[file] {
		return "/usr/bin/" + file, nil
	}
	if err := f.lookErr[file]; err != nil {
		return "", err
	}
	return "", &exec.Error{Name: file, Err: exec.ErrNotFound}
}

func (f *fakeSystem) Output(_ context.Context, name string, args ...string) ([]byte, error) {
	if !f.bins[name] {
		return nil, &exec.Error{Name: name, Err: exec.ErrNotFound}
	}
	o := f.outputs[strings.Join(append([]string{name}, args...), " ")]
	return []byte(o.out), o.err
}

func (f *fakeSystem) Listen(_ context.Context, addr string) error {
	f.listened = append(f.listened, addr)
	if err := f.listErr[addr]; err != nil {
		return err
	}
	if f.busy[addr] {
		return &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}
	}
	return nil
}

func (f *fakeSystem) DialUnix(_ context.Context, path string) error {
	if f.sockets[path] {
		return nil
	}
	return &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.ENOENT)}
}

func (f *fakeSystem) Euid() int   { return f.euid }
func (f *fakeSystem) NumCPU() int { return f.ncpu }

func (f *fakeSystem) LookupHost(_ context.Context, host string) ([]string, error) {
	if f.hosts[host] {
		return []string{"10.0.0.1"}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (f *fakeSystem) Getenv(key string) string { return f.env[key] }

const (
	mountinfoV2 = `25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
33 25 0:28 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
`
	// mountinfoHybrid is what our testbed VMs show.
	mountinfoHybrid = `30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	mountinfoV1 = `30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:12 - cgroup cgroup rw,cpu,cpuacct
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime shared:13 - cgroup cgroup rw,memory
`
	statusAllCaps   = "Name:\tkforge\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n"
	statusNoSysRes  = "Name:\tkforge\nCapInh:\t0000000000000000\nCapPrm:\t000001fffeffffff\nCapEff:\t000001fffeffffff\n"
	swapsHeaderOnly = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
	swapsOn         = swapsHeaderOnly + "/dev/sda3                               partition\t1048572\t\t0\t\t-2\n"

	ourManifest = `apiVersion: v1
kind: Pod
metadata:
  name: kube-apiserver
  namespace: kube-system
  annotations:
    kforge.io/managed-by: kforge
spec:
  hostNetwork: true
`
	kubeadmManifest = `apiVersion: v1
kind: Pod
metadata:
  name: kube-apiserver
  namespace: kube-system
  annotations:
    kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint: 10.0.0.1:6443
spec:
  hostNetwork: true
`
)

// healthyHost is a host on which every init check passes without a warning: root, enough
// CPU and memory, cgroup v2 with systemd, every binary, a matching kubelet, containerd up,
// nothing listening, no kforge or kubeadm files.
func healthyHost() *fakeSystem {
	return &fakeSystem{
		files: map[string]string{
			"/proc/meminfo":                 "MemTotal:        8131876 kB\nMemFree:         1234 kB\n",
			"/proc/swaps":                   swapsHeaderOnly,
			"/proc/sys/net/ipv4/ip_forward": "1\n",
			"/proc/self/mountinfo":          mountinfoV2,
			"/proc/self/status":             statusAllCaps,
			"/proc/1/comm":                  "systemd\n",
		},
		bins: map[string]bool{"kubelet": true, "conntrack": true, "iptables": true, "ip": true, "mount": true, "nsenter": true},
		outputs: map[string]fakeOutput{
			"kubelet --version": {out: "Kubernetes v1.34.4\n"},
		},
		sockets: map[string]bool{"/run/containerd/containerd.sock": true},
		hosts:   map[string]bool{"node1": true},
		env:     map[string]string{},
		ncpu:    4,
	}
}
