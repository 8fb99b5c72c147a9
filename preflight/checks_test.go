package preflight

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kforge/kforge/config"
)

func testCluster() *config.Cluster {
	c := &config.Cluster{
		Hosts: []config.Host{{Name: "node1", Address: "10.0.0.1", Roles: []string{config.RoleControlPlane}}},
	}
	config.SetDefaults(c)
	return c
}

func testParams(sys System) InitParams {
	return InitParams{
		Cluster:           testCluster(),
		NodeName:          "node1",
		AdvertiseAddress:  "10.0.0.1",
		ManifestsDir:      "/etc/kubernetes/manifests",
		KubeconfigDir:     "/etc/kubernetes",
		KubeletConfigPath: "/var/lib/kubelet/config.yaml",
		System:            sys,
	}
}

// runCheck runs the named check of InitChecks(p) and returns its messages.
func runCheck(t *testing.T, p InitParams, name string) (warnings, errs []string) {
	t.Helper()
	for _, c := range InitChecks(p) {
		if c.Name() != name {
			continue
		}
		w, e := c.Check(t.Context())
		for _, err := range w {
			warnings = append(warnings, err.Error())
		}
		for _, err := range e {
			errs = append(errs, err.Error())
		}
		return warnings, errs
	}
	t.Fatalf("InitChecks has no check %q; it has %v", name, Names(InitChecks(p)))
	return nil, nil
}

// wantMessages fails unless got has one message per want, each containing its want.
func wantMessages(t *testing.T, kind string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d %s, want %d: %q", len(got), kind, len(want), got)
		return
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("%s %d = %q, want it to contain %q", kind, i, got[i], want[i])
		}
	}
}

func TestInitChecksNames(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*InitParams)
		want  []string
	}{
		{
			name: "defaults",
			want: []string{
				"IsPrivilegedUser", "NumCPU", "Mem", "SystemVerification", "Swap",
				"FileContent--proc-sys-net-ipv4-ip_forward",
				"FileExisting-kubelet", "FileExisting-conntrack", "FileExisting-iptables",
				"FileExisting-ip", "FileExisting-mount", "FileExisting-nsenter",
				"KubeletVersion", "ContainerRuntime",
				"Port-6443", "Port-10259", "Port-10257", "Port-10250", "Port-2379", "Port-2380",
				"FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml",
				"FileAvailable--etc-kubernetes-manifests-kube-controller-manager.yaml",
				"FileAvailable--etc-kubernetes-manifests-kube-scheduler.yaml",
				"FileAvailable--etc-kubernetes-manifests-etcd.yaml",
				"DirAvailable--var-lib-etcd",
				"Hostname", "HTTPProxy",
			},
		},
		{
			name: "external etcd, custom secure port and manifests dir",
			setup: func(p *InitParams) {
				p.Cluster.Etcd = config.Etcd{External: &config.ExternalEtcd{Endpoints: []string{"https://10.0.0.9:2379"}}}
				p.Cluster.APIServer.ExtraArgs = map[string]string{"secure-port": "7443"}
				p.ManifestsDir = "/srv/manifests"
			},
			want: []string{
				"IsPrivilegedUser", "NumCPU", "Mem", "SystemVerification", "Swap",
				"FileContent--proc-sys-net-ipv4-ip_forward",
				"FileExisting-kubelet", "FileExisting-conntrack", "FileExisting-iptables",
				"FileExisting-ip", "FileExisting-mount", "FileExisting-nsenter",
				"KubeletVersion", "ContainerRuntime",
				"Port-7443", "Port-10259", "Port-10257", "Port-10250",
				"FileAvailable--srv-manifests-kube-apiserver.yaml",
				"FileAvailable--srv-manifests-kube-controller-manager.yaml",
				"FileAvailable--srv-manifests-kube-scheduler.yaml",
				"Hostname", "HTTPProxy",
			},
		},
		{
			name:  "etcd data dir names its check",
			setup: func(p *InitParams) { p.Cluster.Etcd.Local.DataDir = "/data/etcd" },
			want: []string{
				"IsPrivilegedUser", "NumCPU", "Mem", "SystemVerification", "Swap",
				"FileContent--proc-sys-net-ipv4-ip_forward",
				"FileExisting-kubelet", "FileExisting-conntrack", "FileExisting-iptables",
				"FileExisting-ip", "FileExisting-mount", "FileExisting-nsenter",
				"KubeletVersion", "ContainerRuntime",
				"Port-6443", "Port-10259", "Port-10257", "Port-10250", "Port-2379", "Port-2380",
				"FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml",
				"FileAvailable--etc-kubernetes-manifests-kube-controller-manager.yaml",
				"FileAvailable--etc-kubernetes-manifests-kube-scheduler.yaml",
				"FileAvailable--etc-kubernetes-manifests-etcd.yaml",
				"DirAvailable--data-etcd",
				"Hostname", "HTTPProxy",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := testParams(healthyHost())
			if tc.setup != nil {
				tc.setup(&p)
			}
			if diff := cmp.Diff(tc.want, Names(InitChecks(p))); diff != "" {
				t.Errorf("InitChecks names (-want +got):\n%s", diff)
			}
		})
	}
}

func TestInitChecksDefaults(t *testing.T) {
	// Zero params must neither panic nor leave paths empty.
	checks := InitChecks(InitParams{System: healthyHost()})
	names := Names(checks)
	for _, want := range []string{"FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml", "DirAvailable--var-lib-etcd"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("InitChecks(InitParams{}) lacks %s: %v", want, names)
		}
	}
}

func TestHealthyHostPassesEveryCheck(t *testing.T) {
	sys := healthyHost()
	for _, c := range InitChecks(testParams(sys)) {
		w, e := c.Check(t.Context())
		if len(w) > 0 || len(e) > 0 {
			t.Errorf("%s on a healthy host: warnings %v, errors %v", c.Name(), w, e)
		}
	}
	// Ports are checked on every address, not just one interface.
	want := []string{":6443", ":10259", ":10257", ":10250", ":2379", ":2380"}
	if diff := cmp.Diff(want, sys.listened); diff != "" {
		t.Errorf("Listen addresses (-want +got):\n%s", diff)
	}
}

const (
	apiserverManifest = "/etc/kubernetes/manifests/kube-apiserver.yaml"
	etcdManifest      = "/etc/kubernetes/manifests/etcd.yaml"
	listenLine6443    = "   0: 00000000:192B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 100 0 0 10 0\n"
)

type checkCase struct {
	name  string
	check string
	setup func(*fakeSystem, *InitParams)
	warn  []string // a substring of each expected warning, in order
	err   []string // a substring of each expected error, in order
}

var checkCases = []checkCase{
	// IsPrivilegedUser
	{name: "root", check: "IsPrivilegedUser"},
	{name: "not root", check: "IsPrivilegedUser",
		setup: func(s *fakeSystem, _ *InitParams) { s.euid = 1000 },
		err:   []string{"must run as root, not as user id 1000: run it with sudo"}},

	// NumCPU
	{name: "two CPUs", check: "NumCPU", setup: func(s *fakeSystem, _ *InitParams) { s.ncpu = 2 }},
	{name: "one CPU", check: "NumCPU",
		setup: func(s *fakeSystem, _ *InitParams) { s.ncpu = 1 },
		err:   []string{"the host has 1 CPU, a control-plane host needs at least 2"}},

	// Mem
	{name: "exactly 1700 MiB", check: "Mem",
		setup: func(s *fakeSystem, _ *InitParams) { s.files["/proc/meminfo"] = "MemTotal:  1740800 kB\n" }},
	{name: "1 GiB", check: "Mem",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.files["/proc/meminfo"] = "MemFree: 5 kB\nMemTotal:  1048576 kB\n"
		},
		err: []string{"the host has 1024 MiB of memory, a control-plane host needs at least 1700 MiB"}},
	{name: "no meminfo", check: "Mem",
		setup: func(s *fakeSystem, _ *InitParams) { delete(s.files, "/proc/meminfo") },
		err:   []string{"reading /proc/meminfo: open /proc/meminfo: file does not exist"}},
	{name: "meminfo without MemTotal", check: "Mem",
		setup: func(s *fakeSystem, _ *InitParams) { s.files["/proc/meminfo"] = "MemFree: 5 kB\n" },
		err:   []string{"reading /proc/meminfo: no MemTotal line"}},

	// Swap
	{name: "kernel without swap", check: "Swap",
		setup: func(s *fakeSystem, _ *InitParams) { delete(s.files, "/proc/swaps") }},
	{name: "swap on, fail_swap_on default", check: "Swap",
		setup: func(s *fakeSystem, _ *InitParams) { s.files["/proc/swaps"] = swapsOn },
		err:   []string{"swap is on (/dev/sda3) and the kubelet refuses to start with swap: run 'swapoff -a'"}},
	{name: "swap on, fail_swap_on false", check: "Swap",
		setup: func(s *fakeSystem, p *InitParams) {
			s.files["/proc/swaps"] = swapsOn
			f := false
			p.Cluster.Kubelet.FailSwapOn = &f
		},
		warn: []string{"swap is on (/dev/sda3); kubelet.fail_swap_on is false"}},

	// FileContent--proc-sys-net-ipv4-ip_forward
	{name: "forwarding off", check: "FileContent--proc-sys-net-ipv4-ip_forward",
		setup: func(s *fakeSystem, _ *InitParams) { s.files["/proc/sys/net/ipv4/ip_forward"] = "0\n" },
		warn:  []string{`/proc/sys/net/ipv4/ip_forward is "0", not "1": kforge will run 'sysctl -w net.ipv4.ip_forward=1'`}},
	{name: "forwarding unreadable", check: "FileContent--proc-sys-net-ipv4-ip_forward",
		setup: func(s *fakeSystem, _ *InitParams) { delete(s.files, "/proc/sys/net/ipv4/ip_forward") },
		err:   []string{"reading /proc/sys/net/ipv4/ip_forward"}},

	// FileExisting-*
	{name: "no kubelet", check: "FileExisting-kubelet",
		setup: func(s *fakeSystem, _ *InitParams) { delete(s.bins, "kubelet") },
		err:   []string{"kubelet is not in PATH: install the kubelet v1.34.4 binary"}},
	{name: "kubelet not executable", check: "FileExisting-kubelet",
		setup: func(s *fakeSystem, _ *InitParams) {
			delete(s.bins, "kubelet")
			s.lookErr = map[string]error{"kubelet": &exec.Error{Name: "kubelet", Err: fs.ErrPermission}}
		},
		err: []string{`looking for kubelet in PATH: exec: "kubelet": permission denied`}},
	{name: "no conntrack", check: "FileExisting-conntrack",
		setup: func(s *fakeSystem, _ *InitParams) { delete(s.bins, "conntrack") },
		warn:  []string{`conntrack is not in PATH: install it (Debian package "conntrack")`}},
	{name: "no iptables", check: "FileExisting-iptables",
		setup: func(s *fakeSystem, _ *InitParams) { delete(s.bins, "iptables") },
		warn:  []string{`(Debian package "iptables")`}},
	{name: "no ip", check: "FileExisting-ip",
		setup: func(s *fakeSystem, _ *InitParams) { delete(s.bins, "ip") },
		warn:  []string{`(Debian package "iproute2")`}},
	{name: "no mount", check: "FileExisting-mount",
		setup: func(s *fakeSystem, _ *InitParams) { delete(s.bins, "mount") },
		warn:  []string{`(Debian package "mount")`}},
	{name: "no nsenter", check: "FileExisting-nsenter",
		setup: func(s *fakeSystem, _ *InitParams) { delete(s.bins, "nsenter") },
		warn:  []string{`(Debian package "util-linux")`}},

	// KubeletVersion
	{name: "kubelet three minors older", check: "KubeletVersion",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.outputs["kubelet --version"] = fakeOutput{out: "Kubernetes v1.31.2\n"}
		}},
	{name: "kubelet missing is FileExisting's job", check: "KubeletVersion",
		setup: func(s *fakeSystem, _ *InitParams) { delete(s.bins, "kubelet") }},
	{name: "kubelet newer", check: "KubeletVersion",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.outputs["kubelet --version"] = fakeOutput{out: "Kubernetes v1.35.0\n"}
		},
		err: []string{"the kubelet is 1.35.0, newer than the control plane's v1.34.4, and a kubelet may not be newer than its apiserver: install kubelet v1.34.x"}},
	{name: "kubelet four minors older", check: "KubeletVersion",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.outputs["kubelet --version"] = fakeOutput{out: "Kubernetes v1.30.14\n"}
		},
		err: []string{"the kubelet is 1.30.14, more than 3 minor releases older than the control plane's v1.34.4"}},
	{name: "kubelet built without version information", check: "KubeletVersion",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.outputs["kubelet --version"] = fakeOutput{out: "Kubernetes v0.0.0-master+$Format:%H$\n"}
		},
		err: []string{"the kubelet reports version 0.0.0, not a v1 release (a kubelet built without version information reports v0.0.0): install kubelet v1.34.x"}},
	{name: "kubelet prints garbage", check: "KubeletVersion",
		setup: func(s *fakeSystem, _ *InitParams) { s.outputs["kubelet --version"] = fakeOutput{out: "hello\n"} },
		err:   []string{`cannot read the version in the output of kubelet --version, "hello"`}},
	{name: "kubelet fails", check: "KubeletVersion",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.outputs["kubelet --version"] = fakeOutput{err: errors.New("exit status 2: segfault")}
		},
		err: []string{"running kubelet --version: exit status 2: segfault"}},

	// ContainerRuntime
	{name: "custom socket answers", check: "ContainerRuntime",
		setup: func(s *fakeSystem, p *InitParams) {
			p.Cluster.Kubelet.ContainerRuntimeEndpoint = "unix:///run/k3s/containerd.sock"
			s.sockets["/run/k3s/containerd.sock"] = true
		}},
	{name: "bare socket path", check: "ContainerRuntime",
		setup: func(s *fakeSystem, p *InitParams) {
			p.Cluster.Kubelet.ContainerRuntimeEndpoint = "/run/containerd/containerd.sock"
		}},
	{name: "containerd down", check: "ContainerRuntime",
		setup: func(s *fakeSystem, _ *InitParams) { delete(s.sockets, "/run/containerd/containerd.sock") },
		err:   []string{"no container runtime answers on /run/containerd/containerd.sock (kubelet.container_runtime_endpoint): start containerd"}},
	{name: "tcp endpoint", check: "ContainerRuntime",
		setup: func(s *fakeSystem, p *InitParams) { p.Cluster.Kubelet.ContainerRuntimeEndpoint = "tcp://10.0.0.1:1234" },
		err:   []string{`kubelet.container_runtime_endpoint "tcp://10.0.0.1:1234" is not a unix socket`}},

	// Port-*: busy ports pass only when the component holding them is kforge's.
	{name: "apiserver port busy, no manifest, owner known", check: "Port-6443",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.busy = map[string]bool{":6443": true}
			s.files["/proc/net/tcp"] = "  sl  local_address rem_address   st\n" + listenLine6443
			s.files["/proc/42/comm"] = "nginx\n"
			s.links = map[string]string{"/proc/42/fd/0": "/dev/null", "/proc/42/fd/7": "socket:[999]"}
		},
		err: []string{"port 6443, which kube-apiserver needs, is in use by nginx (pid 42): stop what holds it, or run 'kforge reset'"}},
	{name: "apiserver port busy, owner unknown", check: "Port-6443",
		setup: func(s *fakeSystem, _ *InitParams) { s.busy = map[string]bool{":6443": true} },
		err:   []string{"port 6443, which kube-apiserver needs, is in use: stop what holds it"}},
	{name: "apiserver port busy, our manifest (re-run)", check: "Port-6443",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.busy = map[string]bool{":6443": true}
			s.files[apiserverManifest] = ourManifest
		}},
	{name: "apiserver port busy, kubeadm's manifest", check: "Port-6443",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.busy = map[string]bool{":6443": true}
			s.files[apiserverManifest] = kubeadmManifest
		},
		err: []string{"port 6443, which kube-apiserver needs, is in use"}},
	{name: "apiserver port busy, broken manifest", check: "Port-6443",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.busy = map[string]bool{":6443": true}
			s.files[apiserverManifest] = "kind: [\n"
		},
		err: []string{"port 6443, which kube-apiserver needs, is in use"}},
	{name: "apiserver secure-port override", check: "Port-7443",
		setup: func(s *fakeSystem, p *InitParams) {
			p.Cluster.APIServer.ExtraArgs = map[string]string{"secure-port": "7443"}
			s.busy = map[string]bool{":7443": true}
		},
		err: []string{"port 7443, which kube-apiserver needs, is in use"}},
	{name: "cannot bind", check: "Port-6443",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.listErr = map[string]error{":6443": &os.SyscallError{Syscall: "bind", Err: syscall.EACCES}}
		},
		err: []string{"checking that port 6443 (kube-apiserver) is free: bind: permission denied"}},
	{name: "scheduler port busy", check: "Port-10259",
		setup: func(s *fakeSystem, _ *InitParams) { s.busy = map[string]bool{":10259": true} },
		err:   []string{"port 10259, which kube-scheduler needs"}},
	{name: "scheduler port busy, ours", check: "Port-10259",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.busy = map[string]bool{":10259": true}
			s.files["/etc/kubernetes/manifests/kube-scheduler.yaml"] = ourManifest
		}},
	{name: "controller-manager port busy", check: "Port-10257",
		setup: func(s *fakeSystem, _ *InitParams) { s.busy = map[string]bool{":10257": true} },
		err:   []string{"port 10257, which kube-controller-manager needs"}},
	{name: "controller-manager port busy, ours", check: "Port-10257",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.busy = map[string]bool{":10257": true}
			s.files["/etc/kubernetes/manifests/kube-controller-manager.yaml"] = ourManifest
		}},
	{name: "kubelet port busy, our kubelet", check: "Port-10250",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.busy = map[string]bool{":10250": true}
			s.files["/var/lib/kubelet/config.yaml"] = "kind: KubeletConfiguration\n"
			s.files["/etc/kubernetes/kubelet.conf"] = "kind: Config\n"
		}},
	{name: "kubelet port busy, kubelet config but no kubelet.conf", check: "Port-10250",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.busy = map[string]bool{":10250": true}
			s.files["/var/lib/kubelet/config.yaml"] = "kind: KubeletConfiguration\n"
		},
		err: []string{"port 10250, which kubelet needs, is in use"}},
	{name: "etcd client port busy, ours", check: "Port-2379",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.busy = map[string]bool{":2379": true}
			s.files[etcdManifest] = ourManifest
		}},
	{name: "etcd client port busy", check: "Port-2379",
		setup: func(s *fakeSystem, _ *InitParams) { s.busy = map[string]bool{":2379": true} },
		err:   []string{"port 2379, which etcd needs"}},
	{name: "etcd peer port busy, ours", check: "Port-2380",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.busy = map[string]bool{":2380": true}
			s.files[etcdManifest] = ourManifest
		}},
	{name: "etcd peer port busy", check: "Port-2380",
		setup: func(s *fakeSystem, _ *InitParams) { s.busy = map[string]bool{":2380": true} },
		err:   []string{"port 2380, which etcd needs"}},

	// FileAvailable-*
	{name: "our apiserver manifest (re-run)", check: "FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml",
		setup: func(s *fakeSystem, _ *InitParams) { s.files[apiserverManifest] = ourManifest }},
	{name: "kubeadm's apiserver manifest", check: "FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml",
		setup: func(s *fakeSystem, _ *InitParams) { s.files[apiserverManifest] = kubeadmManifest },
		err:   []string{"/etc/kubernetes/manifests/kube-apiserver.yaml already exists and kforge did not write it (it lacks the annotation kforge.io/managed-by: kforge): another installer set up this host; run 'kforge reset'"}},
	{name: "apiserver manifest that does not parse", check: "FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml",
		setup: func(s *fakeSystem, _ *InitParams) { s.files[apiserverManifest] = "kind: [\n" },
		err:   []string{"already exists and kforge did not write it (it does not parse: "}},
	{name: "apiserver manifest that is no pod", check: "FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.files[apiserverManifest] = strings.Replace(ourManifest, "kind: Pod", "kind: Deployment", 1)
		},
		err: []string{"(it is not a Pod)"}},
	{name: "apiserver manifest unreadable", check: "FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.readErr = map[string]error{apiserverManifest: &os.PathError{Op: "open", Path: apiserverManifest, Err: syscall.EACCES}}
		},
		err: []string{"(cannot read it: open /etc/kubernetes/manifests/kube-apiserver.yaml: permission denied)"}},
	{name: "kubeadm's controller-manager manifest", check: "FileAvailable--etc-kubernetes-manifests-kube-controller-manager.yaml",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.files["/etc/kubernetes/manifests/kube-controller-manager.yaml"] = kubeadmManifest
		},
		err: []string{"kube-controller-manager.yaml already exists and kforge did not write it"}},
	{name: "kubeadm's scheduler manifest", check: "FileAvailable--etc-kubernetes-manifests-kube-scheduler.yaml",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.files["/etc/kubernetes/manifests/kube-scheduler.yaml"] = kubeadmManifest
		},
		err: []string{"kube-scheduler.yaml already exists and kforge did not write it"}},
	{name: "our etcd manifest", check: "FileAvailable--etc-kubernetes-manifests-etcd.yaml",
		setup: func(s *fakeSystem, _ *InitParams) { s.files[etcdManifest] = ourManifest }},
	{name: "kubeadm's etcd manifest", check: "FileAvailable--etc-kubernetes-manifests-etcd.yaml",
		setup: func(s *fakeSystem, _ *InitParams) { s.files[etcdManifest] = kubeadmManifest },
		err:   []string{"etcd.yaml already exists and kforge did not write it"}},

	// DirAvailable--var-lib-etcd
	{name: "empty etcd dir", check: "DirAvailable--var-lib-etcd",
		setup: func(s *fakeSystem, _ *InitParams) { s.files["/var/lib/etcd/"] = "" }},
	{name: "etcd dir with data, our manifest (re-run)", check: "DirAvailable--var-lib-etcd",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.files["/var/lib/etcd/member/snap/db"] = "data"
			s.files[etcdManifest] = ourManifest
		}},
	{name: "etcd dir with data, no manifest", check: "DirAvailable--var-lib-etcd",
		setup: func(s *fakeSystem, _ *InitParams) { s.files["/var/lib/etcd/member/snap/db"] = "data" },
		err:   []string{"/var/lib/etcd is not empty and there is no kforge etcd manifest at /etc/kubernetes/manifests/etcd.yaml, so it holds another etcd's data: run 'kforge reset'"}},
	{name: "etcd dir with data, kubeadm's manifest", check: "DirAvailable--var-lib-etcd",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.files["/var/lib/etcd/member/snap/db"] = "data"
			s.files[etcdManifest] = kubeadmManifest
		},
		err: []string{"/var/lib/etcd is not empty"}},
	{name: "etcd dir unreadable", check: "DirAvailable--var-lib-etcd",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.readErr = map[string]error{"/var/lib/etcd": &os.PathError{Op: "open", Path: "/var/lib/etcd", Err: syscall.ENOTDIR}}
		},
		err: []string{"reading /var/lib/etcd: open /var/lib/etcd: not a directory"}},
	{name: "custom etcd dir with data", check: "DirAvailable--data-etcd",
		setup: func(s *fakeSystem, p *InitParams) {
			p.Cluster.Etcd.Local.DataDir = "/data/etcd"
			s.files["/data/etcd/member/wal/0.wal"] = "data"
		},
		err: []string{"/data/etcd is not empty"}},

	// SystemVerification
	{name: "cgroup v2 without systemd", check: "SystemVerification",
		setup: func(s *fakeSystem, _ *InitParams) { s.files["/proc/1/comm"] = "tini\n" }},
	{name: "testbed: hybrid cgroups, no CAP_SYS_RESOURCE, no systemd", check: "SystemVerification",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.files["/proc/self/mountinfo"] = mountinfoHybrid
			s.files["/proc/self/status"] = statusNoSysRes
			s.files["/proc/1/comm"] = "process_api\n"
		},
		warn: []string{
			"the host uses cgroup v1 (hybrid, with a cgroup2 mount beside the v1 controllers): kforge will use the cgroupfs cgroup driver and set failCgroupV1: false",
			"root lacks CAP_SYS_RESOURCE here (an unprivileged container or nested VM?): kforge will set restrict_oom_score_adj = true for containerd and oomScoreAdj: 0 for the kubelet",
		}},
	{name: "cgroup v1 with a configured driver", check: "SystemVerification",
		setup: func(s *fakeSystem, p *InitParams) {
			s.files["/proc/self/mountinfo"] = mountinfoV1
			p.Cluster.Kubelet.CgroupDriver = "systemd"
		},
		warn: []string{"the host uses cgroup v1: kforge will use the configured systemd cgroup driver and set failCgroupV1: false"}},
	{name: "systemd driver without systemd", check: "SystemVerification",
		setup: func(s *fakeSystem, p *InitParams) {
			s.files["/proc/1/comm"] = "tini\n"
			p.Cluster.Kubelet.CgroupDriver = "systemd"
		},
		err: []string{`kubelet.cgroup_driver is "systemd" but PID 1 is "tini", not systemd: set cgroup_driver = "cgroupfs"`}},
	{name: "no cgroups found", check: "SystemVerification",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.files["/proc/self/mountinfo"] = "30 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
		},
		warn: []string{"cannot tell the cgroup version from /proc/self/mountinfo or /sys/fs/cgroup"}},
	{name: "missing capability of a non-root user is IsPrivilegedUser's job", check: "SystemVerification",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.euid = 1000
			s.files["/proc/self/status"] = "CapEff:\t0000000000000000\n"
		}},

	// Hostname
	{name: "node name does not resolve", check: "Hostname",
		setup: func(s *fakeSystem, _ *InitParams) { delete(s.hosts, "node1") },
		warn:  []string{`node name "node1" does not resolve: add it to /etc/hosts or DNS`}},
	{name: "node name invalid", check: "Hostname",
		setup: func(s *fakeSystem, p *InitParams) { p.NodeName = "Node_1"; s.hosts["Node_1"] = true },
		err:   []string{`node name "Node_1" is not a valid Kubernetes node name`}},

	// HTTPProxy
	{name: "proxy for plain http only", check: "HTTPProxy",
		setup: func(s *fakeSystem, _ *InitParams) { s.env["HTTP_PROXY"] = "http://proxy:3128" }},
	{name: "proxy with the endpoint in NO_PROXY", check: "HTTPProxy",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.env["HTTPS_PROXY"] = "http://proxy:3128"
			s.env["NO_PROXY"] = "localhost,10.0.0.1"
		}},
	{name: "proxy with the endpoint's network in no_proxy", check: "HTTPProxy",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.env["https_proxy"] = "http://proxy:3128"
			s.env["no_proxy"] = "10.0.0.0/8"
		}},
	{name: "proxy, endpoint not excluded", check: "HTTPProxy",
		setup: func(s *fakeSystem, _ *InitParams) {
			s.env["HTTPS_PROXY"] = "http://proxy:3128"
			s.env["NO_PROXY"] = "localhost"
		},
		warn: []string{"HTTPS_PROXY is set (proxy proxy:3128) and 10.0.0.1 is not in NO_PROXY, so connections to the apiserver at 10.0.0.1:6443 go through the proxy: add 10.0.0.1 to NO_PROXY"}},
	{name: "lower-case proxy, load balancer and advertise address not excluded", check: "HTTPProxy",
		setup: func(s *fakeSystem, p *InitParams) {
			s.env["https_proxy"] = "http://user:hunter2@proxy:3128"
			p.Cluster.ControlPlaneEndpoint = "lb.example.com:443"
		},
		warn: []string{
			"https_proxy is set (proxy proxy:3128) and lb.example.com is not in NO_PROXY, so connections to the apiserver at lb.example.com:443",
			"10.0.0.1 is not in NO_PROXY, so connections to the apiserver at 10.0.0.1:6443",
		}},
	{name: "proxy without scheme", check: "HTTPProxy",
		setup: func(s *fakeSystem, _ *InitParams) { s.env["HTTPS_PROXY"] = "proxy.corp:3128" },
		warn:  []string{"HTTPS_PROXY is set (proxy proxy.corp:3128) and 10.0.0.1 is not in NO_PROXY"}},
	{name: "invalid proxy URL", check: "HTTPProxy",
		setup: func(s *fakeSystem, _ *InitParams) { s.env["HTTPS_PROXY"] = "http://user:hunter2@[bad" },
		warn:  []string{"HTTPS_PROXY is not a valid proxy URL"}},
	{name: "proxy with an unknown scheme", check: "HTTPProxy",
		setup: func(s *fakeSystem, _ *InitParams) { s.env["HTTPS_PROXY"] = "ftp://user:hunter2@proxy" },
		warn:  []string{"HTTPS_PROXY is not a valid proxy URL"}},
}

func TestChecks(t *testing.T) {
	for _, tc := range checkCases {
		t.Run(tc.check+"/"+tc.name, func(t *testing.T) {
			sys := healthyHost()
			p := testParams(sys)
			if tc.setup != nil {
				tc.setup(sys, &p)
			}
			warnings, errs := runCheck(t, p, tc.check)
			wantMessages(t, "warnings", warnings, tc.warn)
			wantMessages(t, "errors", errs, tc.err)
			for _, m := range append(warnings, errs...) {
				if strings.Contains(m, "hunter2") {
					t.Errorf("a message shows a proxy password: %q", m)
				}
			}
		})
	}
}

// TestEveryCheckCanFail makes sure no check is left without a test that makes it complain:
// a check that cannot fail is not a check.
func TestEveryCheckCanFail(t *testing.T) {
	complains := map[string]bool{}
	for _, tc := range checkCases {
		if len(tc.warn)+len(tc.err) > 0 {
			complains[tc.check] = true
		}
	}
	for _, name := range Names(InitChecks(testParams(healthyHost()))) {
		if !complains[name] {
			t.Errorf("no case in checkCases makes %s warn or fail", name)
		}
	}
}

func TestKubeletVersionTimesOut(t *testing.T) {
	// The kubelet runs under a deadline, so a hung binary cannot stall preflight.
	sys := healthyHost()
	var deadline bool
	p := testParams(outputFunc{sys, func(ctx context.Context) {
		_, deadline = ctx.Deadline()
	}})
	runCheck(t, p, "KubeletVersion")
	if !deadline {
		t.Error("kubelet --version ran without a deadline")
	}
}

// outputFunc is a System whose Output first calls fn with its context.
type outputFunc struct {
	*fakeSystem
	fn func(ctx context.Context)
}

func (o outputFunc) Output(ctx context.Context, name string, args ...string) ([]byte, error) {
	o.fn(ctx)
	return o.fakeSystem.Output(ctx, name, args...)
}

// TestReconfigureChecks: reconfigure runs only on a host that is a member as the file
// says, and never over another installer's static pods.
func TestReconfigureChecks(t *testing.T) {
	managed := "apiVersion: v1\nkind: Pod\nmetadata:\n  annotations:\n    kforge.io/managed-by: kforge\n"
	member := func() *fakeSystem {
		s := healthyHost()
		s.files["/etc/kubernetes/kubelet.conf"] = "kubeconfig"
		s.files["/var/lib/kubelet/config.yaml"] = "config"
		for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"} {
			s.files["/etc/kubernetes/manifests/"+c+".yaml"] = managed
		}
		return s
	}
	errsOf := func(s *fakeSystem, controlPlane bool) []string {
		var out []string
		for _, c := range ReconfigureChecks(testParams(s), controlPlane) {
			_, errs := c.Check(t.Context())
			for _, e := range errs {
				out = append(out, c.Name()+": "+e.Error())
			}
		}
		return out
	}
	if errs := errsOf(member(), true); len(errs) > 0 {
		t.Errorf("a control-plane member fails: %v", errs)
	}
	notJoined := healthyHost()
	if errs := errsOf(notJoined, false); len(errs) != 1 || !strings.Contains(errs[0], "Member: this host has not joined the cluster") {
		t.Errorf("a host that never joined: %v", errs)
	}
	worker := member()
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"} {
		delete(worker.files, "/etc/kubernetes/manifests/"+c+".yaml")
	}
	if errs := errsOf(worker, false); len(errs) > 0 {
		t.Errorf("a worker reconfigured as a worker fails: %v", errs)
	}
	if errs := errsOf(worker, true); len(errs) != 4 || !strings.Contains(errs[0], "it is not a control-plane member") {
		t.Errorf("a worker the file makes a control-plane host: %v", errs)
	}
	foreign := member()
	foreign.files["/etc/kubernetes/manifests/kube-apiserver.yaml"] = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\n"
	if errs := errsOf(foreign, true); len(errs) != 1 || !strings.Contains(errs[0], "was not written by kforge") {
		t.Errorf("another installer's apiserver manifest: %v", errs)
	}
}
