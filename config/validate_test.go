package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

// validCluster is a defaulted cluster with three hosts that passes validation.
func validCluster() *Cluster {
	c := Default()
	c.Hosts = []Host{
		{Name: "cp-1", Address: "192.0.2.10", Roles: []string{RoleControlPlane}},
		{Name: "cp-2", Address: "192.0.2.11", Roles: []string{RoleControlPlane, RoleWorker}},
		{Name: "w-1", Address: "w-1.example.com", InternalAddress: "10.0.0.12", Roles: []string{RoleWorker}},
	}
	SetDefaults(c)
	return c
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Cluster)
		// want lists the paths of the expected errors, in order; nil means valid.
		want []string
	}{
		{"valid", func(c *Cluster) {}, nil},
		{"no hosts is valid", func(c *Cluster) { c.Hosts = nil }, nil},
		{"version", func(c *Cluster) { c.Version = "kforge/v1" }, []string{"version"}},

		{"name not a label", func(c *Cluster) { c.Name = "My_Cluster" }, []string{"name"}},
		{"name with dots", func(c *Cluster) { c.Name = "a.b" }, []string{"name"}},
		{"name ok", func(c *Cluster) { c.Name = "prod-1" }, nil},

		{"version without patch", func(c *Cluster) { c.KubernetesVersion = "v1.34" }, []string{"kubernetes_version"}},
		{"version without v", func(c *Cluster) { c.KubernetesVersion = "1.34.4" }, []string{"kubernetes_version"}},
		{"version with leading zero", func(c *Cluster) { c.KubernetesVersion = "v1.34.04" }, []string{"kubernetes_version"}},
		{"version with suffix", func(c *Cluster) { c.KubernetesVersion = "v1.34.4-rc.0" }, []string{"kubernetes_version"}},
		{"unsupported minor", func(c *Cluster) { c.KubernetesVersion = "v1.33.9" }, []string{"kubernetes_version"}},
		{"unsupported major", func(c *Cluster) { c.KubernetesVersion = "v2.34.0" }, []string{"kubernetes_version"}},
		{"other patch release", func(c *Cluster) { c.KubernetesVersion = "v1.34.0" }, nil},

		{"endpoint name", func(c *Cluster) { c.ControlPlaneEndpoint = "lb.example.com" }, nil},
		{"endpoint name and port", func(c *Cluster) { c.ControlPlaneEndpoint = "LB.example.com:443" }, nil},
		{"endpoint IPv4 and port", func(c *Cluster) { c.ControlPlaneEndpoint = "10.0.0.1:6443" }, nil},
		{"endpoint IPv6 and port", func(c *Cluster) { c.ControlPlaneEndpoint = "[fd00::1]:6443" }, nil},
		{"endpoint bare IPv6", func(c *Cluster) { c.ControlPlaneEndpoint = "fd00::1" }, nil},
		{"endpoint bracketed IPv6", func(c *Cluster) { c.ControlPlaneEndpoint = "[fd00::1]" }, nil},
		{"endpoint with scheme", func(c *Cluster) { c.ControlPlaneEndpoint = "https://lb:6443" }, []string{"control_plane_endpoint"}},
		{"endpoint port 0", func(c *Cluster) { c.ControlPlaneEndpoint = "lb:0" }, []string{"control_plane_endpoint"}},
		{"endpoint port too big", func(c *Cluster) { c.ControlPlaneEndpoint = "lb:70000" }, []string{"control_plane_endpoint"}},
		{"endpoint port not a number", func(c *Cluster) { c.ControlPlaneEndpoint = "lb:https" }, []string{"control_plane_endpoint"}},
		{"endpoint empty port", func(c *Cluster) { c.ControlPlaneEndpoint = "lb:" }, []string{"control_plane_endpoint"}},
		{"endpoint no host", func(c *Cluster) { c.ControlPlaneEndpoint = ":6443" }, []string{"control_plane_endpoint"}},
		{"endpoint underscore", func(c *Cluster) { c.ControlPlaneEndpoint = "lb_1.example.com" }, []string{"control_plane_endpoint"}},
		{"endpoint unclosed bracket", func(c *Cluster) { c.ControlPlaneEndpoint = "[fd00::1:6443" }, []string{"control_plane_endpoint"}},
		{"endpoint IPv4 in brackets", func(c *Cluster) { c.ControlPlaneEndpoint = "[10.0.0.1]:6443" }, []string{"control_plane_endpoint"}},

		{"registry with port and path", func(c *Cluster) { c.ImageRepository = "registry.example.com:5000/k8s/mirror" }, nil},
		{"registry localhost", func(c *Cluster) { c.ImageRepository = "localhost:5000/k8s" }, nil},
		{"registry IPv6", func(c *Cluster) { c.ImageRepository = "[fd00::1]:5000/k8s" }, nil},
		{"registry implicit docker hub", func(c *Cluster) { c.ImageRepository = "myorg" }, nil},
		{"registry with scheme", func(c *Cluster) { c.ImageRepository = "https://registry.k8s.io" }, []string{"image_repository"}},
		{"registry with tag", func(c *Cluster) { c.ImageRepository = "registry.k8s.io/pause:3.10" }, []string{"image_repository"}},
		{"registry with digest", func(c *Cluster) { c.ImageRepository = "registry.k8s.io/x@sha256:00" }, []string{"image_repository"}},
		{"registry uppercase path", func(c *Cluster) { c.ImageRepository = "registry.k8s.io/Mirror" }, []string{"image_repository"}},
		{"registry empty path component", func(c *Cluster) { c.ImageRepository = "registry.k8s.io//x" }, []string{"image_repository"}},
		{"registry bad port", func(c *Cluster) { c.ImageRepository = "registry.k8s.io:x/k8s" }, []string{"image_repository"}},
		{"registry empty", func(c *Cluster) { c.ImageRepository = "" }, []string{"image_repository"}},

		{"pod cidr prefix too long", func(c *Cluster) { c.Networking.PodCIDR = "10.244.0.0/33" }, []string{"networking.pod_cidr"}},
		{"pod cidr not a cidr", func(c *Cluster) { c.Networking.PodCIDR = "10.244.0.0" }, []string{"networking.pod_cidr"}},
		{"pod cidr host bits", func(c *Cluster) { c.Networking.PodCIDR = "10.244.1.0/16" }, []string{"networking.pod_cidr"}},
		{"pod cidr ipv4-mapped", func(c *Cluster) { c.Networking.PodCIDR = "::ffff:10.244.0.0/112" }, []string{"networking.pod_cidr"}},
		{"pod cidr smaller than a node range", func(c *Cluster) { c.Networking.PodCIDR = "10.244.0.0/25" }, []string{"networking.pod_cidr"}},
		{"pod cidr a single node range", func(c *Cluster) { c.Hosts = c.Hosts[:1]; c.Networking.PodCIDR = "10.244.0.0/24" }, nil},
		{"pod cidr too few node ranges", func(c *Cluster) { c.Networking.PodCIDR = "10.244.0.0/23" }, []string{"networking.pod_cidr"}},
		{"pod cidr too large", func(c *Cluster) { c.Networking.PodCIDR = "172.0.0.0/7"; c.Networking.ServiceCIDR = "192.168.0.0/16" }, []string{"networking.pod_cidr"}},
		{"pod cidr /8", func(c *Cluster) { c.Networking.PodCIDR = "172.0.0.0/8"; c.Networking.ServiceCIDR = "192.168.0.0/16" }, nil},
		{"pod cidr size left to extra args", func(c *Cluster) {
			c.Networking.PodCIDR = "10.244.0.0/26"
			c.ControllerManager.ExtraArgs = map[string]string{"node-cidr-mask-size": "28"}
		}, nil},
		{"IPv6 pod cidr too small", func(c *Cluster) {
			c.Networking.PodCIDR, c.Networking.ServiceCIDR = "fd00:1::/65", "fd00:2::/112"
		}, []string{"networking.pod_cidr"}},
		{"IPv6 pod cidr too large", func(c *Cluster) {
			c.Networking.PodCIDR, c.Networking.ServiceCIDR = "fd00::/47", "fd01::/112"
		}, []string{"networking.pod_cidr"}},
		{"IPv6 cidrs", func(c *Cluster) {
			c.Networking.PodCIDR, c.Networking.ServiceCIDR = "fd00:1::/48", "fd00:2::/108"
		}, nil},
		{"service cidr /28", func(c *Cluster) { c.Networking.ServiceCIDR = "10.96.0.0/28" }, nil},
		{"service cidr /29", func(c *Cluster) { c.Networking.ServiceCIDR = "10.96.0.0/29" }, []string{"networking.service_cidr"}},
		{"service cidr /12", func(c *Cluster) { c.Networking.ServiceCIDR = "10.96.0.0/12" }, nil},
		{"service cidr /11", func(c *Cluster) { c.Networking.ServiceCIDR = "10.96.0.0/11" }, []string{"networking.service_cidr"}},
		{"IPv6 service cidr /124", func(c *Cluster) { c.Networking.PodCIDR, c.Networking.ServiceCIDR = "fd00:1::/56", "fd00:2::/124" }, nil},
		{"IPv6 service cidr /125", func(c *Cluster) {
			c.Networking.PodCIDR, c.Networking.ServiceCIDR = "fd00:1::/56", "fd00:2::/125"
		}, []string{"networking.service_cidr"}},
		{"IPv6 service cidr /107", func(c *Cluster) {
			c.Networking.PodCIDR, c.Networking.ServiceCIDR = "fd00:1::/56", "fd00:2::/107"
		}, []string{"networking.service_cidr"}},
		{"service cidr bad", func(c *Cluster) { c.Networking.ServiceCIDR = "10.96.0.0/x" }, []string{"networking.service_cidr"}},
		{"mixed families", func(c *Cluster) { c.Networking.ServiceCIDR = "fd00:2::/112" }, []string{"networking.service_cidr"}},
		{"overlap", func(c *Cluster) { c.Networking.ServiceCIDR = "10.244.128.0/20" }, []string{"networking.service_cidr"}},
		{"dns domain", func(c *Cluster) { c.Networking.DNSDomain = "Cluster_Local" }, []string{"networking.dns_domain"}},
		{"dns domain subdomain", func(c *Cluster) { c.Networking.DNSDomain = "k8s.example.com" }, nil},

		{"etcd both", func(c *Cluster) { c.Etcd.External = validExternal() }, []string{"etcd"}},
		{"etcd neither", func(c *Cluster) { c.Etcd.Local = nil }, []string{"etcd"}},
		{"etcd external", func(c *Cluster) { c.Etcd = Etcd{External: validExternal()} }, nil},
		{"etcd external empty", func(c *Cluster) { c.Etcd = Etcd{External: &ExternalEtcd{}} }, []string{
			"etcd.external.endpoints", "etcd.external.ca_file", "etcd.external.cert_file", "etcd.external.key_file",
		}},
		{"etcd external bad endpoints", func(c *Cluster) {
			c.Etcd = Etcd{External: validExternal()}
			c.Etcd.External.Endpoints = []string{
				"http://10.0.0.5:2379", "https://10.0.0.5", "https://10.0.0.5:2379/v3", "10.0.0.5:2379",
				"https://u:p@10.0.0.5:2379", "https://10.0.0.5:99999", "https://[fd00::5]:2379/",
			}
		}, []string{
			"etcd.external.endpoints[0]", "etcd.external.endpoints[1]", "etcd.external.endpoints[2]",
			"etcd.external.endpoints[3]", "etcd.external.endpoints[4]", "etcd.external.endpoints[5]",
		}},
		{"etcd data dir relative", func(c *Cluster) { c.Etcd.Local.DataDir = "etcd" }, []string{"etcd.local.data_dir"}},
		{"etcd sans", func(c *Cluster) {
			c.Etcd.Local.ServerCertSANs = []string{"etcd.example.com", "10.0.0.5", "not a name"}
			c.Etcd.Local.PeerCertSANs = []string{"fe80::1%eth0"}
		}, []string{"etcd.local.server_cert_sans[2]", "etcd.local.peer_cert_sans[0]"}},
		{"etcd extra args", func(c *Cluster) { c.Etcd.Local.ExtraArgs = map[string]string{"--snapshot-count": "1"} }, []string{"etcd.local.extra_args.--snapshot-count"}},

		{"ca validity zero", func(c *Cluster) { c.Certificates.CAValidity = Duration{} }, []string{"certificates.ca_validity"}},
		{"cert validity negative", func(c *Cluster) { c.Certificates.CertValidity = Duration{-time.Hour} }, []string{"certificates.cert_validity"}},
		{"cert outlives ca", func(c *Cluster) { c.Certificates.CertValidity = Duration{11 * 365 * 24 * time.Hour} }, []string{"certificates.cert_validity"}},
		{"cert as long as ca", func(c *Cluster) { c.Certificates.CertValidity = c.Certificates.CAValidity }, nil},
		{"key algorithm", func(c *Cluster) { c.Certificates.KeyAlgorithm = "ed25519" }, []string{"certificates.key_algorithm"}},
		{"key algorithm rsa", func(c *Cluster) { c.Certificates.KeyAlgorithm = KeyRSA2048 }, nil},

		{"extra args", func(c *Cluster) {
			c.APIServer.ExtraArgs = map[string]string{"--v": "2", "a=b": "", "": "x", "x y": "", "--": "", "feature-gates": "A=true"}
		}, []string{"apiserver.extra_args.\"\"", "apiserver.extra_args.--", "apiserver.extra_args.--v", "apiserver.extra_args.\"a=b\"", "apiserver.extra_args.\"x y\""}},
		{"extra args on every component", func(c *Cluster) {
			bad := map[string]string{"-v": "2"}
			c.ControllerManager.ExtraArgs, c.Scheduler.ExtraArgs, c.Kubelet.ExtraArgs = bad, bad, bad
		}, []string{"controller_manager.extra_args.-v", "scheduler.extra_args.-v", "kubelet.extra_args.-v"}},
		{"extra volumes", func(c *Cluster) {
			c.APIServer.ExtraVolumes = []HostPathMount{
				{Name: "audit", HostPath: "/var/log/audit", MountPath: "/var/log/audit", PathType: "DirectoryOrCreate"},
				{Name: "", HostPath: "relative", MountPath: "/x"},
				{Name: "Audit", HostPath: "/a", MountPath: "b", PathType: "Dir"},
				{Name: "audit", HostPath: "/a", MountPath: "/b"},
			}
		}, []string{
			"apiserver.extra_volumes[1].name", "apiserver.extra_volumes[1].host_path",
			"apiserver.extra_volumes[2].name", "apiserver.extra_volumes[2].mount_path", "apiserver.extra_volumes[2].path_type",
			"apiserver.extra_volumes[3].name",
		}},
		{"extra volumes on scheduler and controller-manager", func(c *Cluster) {
			c.Scheduler.ExtraVolumes = []HostPathMount{{Name: "s", HostPath: "/s", MountPath: "s"}}
			c.ControllerManager.ExtraVolumes = []HostPathMount{{Name: "c", HostPath: "c", MountPath: "/c", PathType: "Socket"}}
		}, []string{"controller_manager.extra_volumes[0].host_path", "scheduler.extra_volumes[0].mount_path"}},
		{"apiserver sans", func(c *Cluster) {
			c.APIServer.CertSANs = []string{"api.example.com", "*.example.com", "10.0.0.100", "fd00::100", "API.Example.com", "api..example.com", "https://api"}
		}, []string{"apiserver.cert_sans[5]", "apiserver.cert_sans[6]"}},

		{"cgroup driver", func(c *Cluster) { c.Kubelet.CgroupDriver = "cgroup" }, []string{"kubelet.cgroup_driver"}},
		{"cgroup driver systemd", func(c *Cluster) { c.Kubelet.CgroupDriver = "systemd" }, nil},
		{"max pods negative", func(c *Cluster) { c.Kubelet.MaxPods = -1 }, []string{"kubelet.max_pods"}},
		{"cri endpoint plain path", func(c *Cluster) { c.Kubelet.ContainerRuntimeEndpoint = "/run/containerd/containerd.sock" }, []string{"kubelet.container_runtime_endpoint"}},
		{"cri endpoint two slashes", func(c *Cluster) { c.Kubelet.ContainerRuntimeEndpoint = "unix://run/containerd/containerd.sock" }, []string{"kubelet.container_runtime_endpoint"}},
		{"cri endpoint tcp", func(c *Cluster) { c.Kubelet.ContainerRuntimeEndpoint = "tcp://10.0.0.1:1234" }, []string{"kubelet.container_runtime_endpoint"}},
		{"cri endpoint crio", func(c *Cluster) { c.Kubelet.ContainerRuntimeEndpoint = "unix:///var/run/crio/crio.sock" }, nil},
		{"cri endpoint npipe", func(c *Cluster) { c.Kubelet.ContainerRuntimeEndpoint = "npipe:////./pipe/containerd-containerd" }, nil},
		{"kubelet reservations", func(c *Cluster) {
			c.Kubelet.SystemReserved = map[string]string{"cpu": "500m", "memory": "1Gi", "ephemeral-storage": "1Gi", "pid": "1000"}
			c.Kubelet.KubeReserved = map[string]string{"gpu": "1", "memory": "lots", "cpu": "-1"}
		}, []string{"kubelet.kube_reserved.cpu", "kubelet.kube_reserved.gpu", "kubelet.kube_reserved.memory"}},
		{"kubelet eviction", func(c *Cluster) {
			c.Kubelet.EvictionHard = map[string]string{
				"memory.available": "100Mi", "nodefs.available": "10%", "imagefs.available": "110%",
				"nodefs.inodesFree": "many", "memory.free": "1Gi",
			}
		}, []string{`kubelet.eviction_hard."imagefs.available"`, `kubelet.eviction_hard."memory.free"`, `kubelet.eviction_hard."nodefs.inodesFree"`}},

		{"server tls bootstrap", func(c *Cluster) { c.Kubelet.ServerTLSBootstrap = true }, nil},
		{"serving flag that agrees", func(c *Cluster) {
			c.Kubelet.ServerTLSBootstrap = true
			c.Kubelet.ExtraArgs = map[string]string{"rotate-server-certificates": "true"}
		}, nil},
		{"serving flags that contradict server_tls_bootstrap", func(c *Cluster) {
			c.Kubelet.ExtraArgs = map[string]string{"rotate-server-certificates": "true"}
			c.Hosts[1].KubeletExtraArgs = map[string]string{"rotate-server-certificates": "yes"}
		}, []string{"kubelet.extra_args.rotate-server-certificates", "hosts[1].kubelet_extra_args.rotate-server-certificates"}},

		{"cni plugin", func(c *Cluster) { c.Addons.CNI.Plugin = "calico" }, []string{"addons.cni.plugin"}},
		{"cni none", func(c *Cluster) { c.Addons.CNI.Plugin = CNINone }, nil},
		{"flannel backend", func(c *Cluster) { c.Addons.CNI.FlannelBackend = "udp" }, []string{"addons.cni.flannel_backend"}},
		{"flannel host-gw", func(c *Cluster) { c.Addons.CNI.FlannelBackend = "host-gw" }, nil},
		{"dns upstreams", func(c *Cluster) {
			c.Addons.DNS.Upstreams = []string{"1.1.1.1", "10.0.0.2:53", "2606:4700::1111", "[2606:4700::1111]:53", "1.1.1.1:0", "dns.google", "fe80::1%eth0", "2606:4700::1111:53"}
		}, []string{"addons.dns.upstreams[4]", "addons.dns.upstreams[5]", "addons.dns.upstreams[6]"}},
		{"dns replicas", func(c *Cluster) { c.Addons.DNS.Replicas = 0 }, []string{"addons.dns.replicas"}},
		{"dns disabled", func(c *Cluster) { c.Addons.DNS = DNS{Disabled: true} }, nil},
		{"kube-proxy mode", func(c *Cluster) { c.Addons.KubeProxy.Mode = "userspace" }, []string{"addons.kube_proxy.mode"}},
		{"kube-proxy ipvs", func(c *Cluster) { c.Addons.KubeProxy.Mode = "ipvs" }, nil},

		{"no control plane", func(c *Cluster) { c.Hosts = c.Hosts[2:] }, []string{"hosts"}},
		{"host names", func(c *Cluster) {
			c.Hosts[0].Name = ""
			c.Hosts[1].Name = "CP_2"
			c.Hosts = append(c.Hosts, Host{Name: "w-1", Address: "192.0.2.20", InternalAddress: "192.0.2.20", Roles: []string{RoleWorker}, SSH: SSH{User: "root", Port: 22}})
		}, []string{"hosts[0].name", "hosts[1].name", "hosts[3].name"}},
		{"host addresses", func(c *Cluster) {
			c.Hosts[0].Address, c.Hosts[0].InternalAddress = "", ""
			c.Hosts[1].Address, c.Hosts[1].InternalAddress = "not an address", "not an address"
			c.Hosts[2].Address = "W-1.Example.com"
			c.Hosts = append(c.Hosts, Host{Name: "w-2", Address: "w-1.example.com", InternalAddress: "10.0.0.12", Roles: []string{RoleWorker}, SSH: SSH{User: "root", Port: 22}})
		}, []string{"hosts[0].address", "hosts[1].address", "hosts[3].address"}},
		{"address with trailing dot", func(c *Cluster) { c.Hosts[2].Address = "w-1.example.com." }, []string{"hosts[2].address"}},
		{"internal addresses", func(c *Cluster) {
			c.Hosts[0].InternalAddress = "10.0.0.12"
			c.Hosts[1].InternalAddress = "10.96.0.1"
		}, []string{"hosts[1].internal_address", "hosts[2].internal_address"}},
		{"internal address invalid", func(c *Cluster) { c.Hosts[2].InternalAddress = "bad address" }, []string{"hosts[2].internal_address"}},
		{"internal address in pod cidr", func(c *Cluster) { c.Hosts[0].InternalAddress = "10.244.3.4" }, []string{"hosts[0].internal_address"}},
		// init and join advertise the node IP: internal_address, else address.
		{"internal address as DNS name", func(c *Cluster) { c.Hosts[0].InternalAddress = "cp-1.internal" }, []string{"hosts[0].internal_address"}},
		{"internal address out of range", func(c *Cluster) { c.Hosts[0].InternalAddress = "10.0.0.300" }, []string{"hosts[0].internal_address"}},
		{"internal address with zone", func(c *Cluster) { c.Hosts[0].InternalAddress = "fe80::1%eth0" }, []string{"hosts[0].internal_address"}},
		{"internal address unspecified", func(c *Cluster) { c.Hosts[0].InternalAddress = "0.0.0.0" }, []string{"hosts[0].internal_address"}},
		{"internal address IPv6", func(c *Cluster) { c.Hosts[0].InternalAddress = "fd00::10" }, nil},
		{"DNS address without internal address", func(c *Cluster) { c.Hosts[2].InternalAddress = "" }, []string{"hosts[2].internal_address"}},
		{"address looks like IPv4 but is not", func(c *Cluster) {
			c.Hosts[0].Address = "999.1.2.3"
			c.Hosts[1].Address = "1.2.3.4.5"
		}, []string{"hosts[0].address", "hosts[1].address"}},
		{"address with a numeric label that is a name", func(c *Cluster) { c.Hosts[2].Address = "10.example.com" }, nil},
		{"roles", func(c *Cluster) {
			c.Hosts[0].Roles = []string{RoleControlPlane, "etcd", RoleControlPlane}
			c.Hosts[2].Roles = nil
		}, []string{"hosts[0].roles[1]", "hosts[0].roles[2]", "hosts[2].roles"}},
		{"labels", func(c *Cluster) {
			c.Hosts[0].Labels = map[string]string{
				"example.com/zone": "a", "tier": "", "bad key": "x", "example.com/ok": "bad value!",
				"Example.com/x": "y", strings.Repeat("k", 64): "y",
			}
		}, []string{`hosts[0].labels."Example.com/x"`, `hosts[0].labels."bad key"`, `hosts[0].labels."example.com/ok"`, "hosts[0].labels." + strings.Repeat("k", 64)}},
		{"taints", func(c *Cluster) {
			c.Hosts[0].Taints = []string{
				"dedicated=infra:NoSchedule", "gpu:NoExecute", "gpu=:PreferNoSchedule",
				"nokey", "a=b:Never", "bad key:NoSchedule", "a=bad value:NoSchedule", "dedicated=other:NoSchedule",
			}
		}, []string{"hosts[0].taints[3]", "hosts[0].taints[4]", "hosts[0].taints[5]", "hosts[0].taints[6]", "hosts[0].taints[7]"}},
		{"ssh", func(c *Cluster) {
			c.Hosts[0].SSH = SSH{User: "", Port: 0}
			c.Hosts[1].SSH.Port = 65536
		}, []string{"hosts[0].ssh.port", "hosts[0].ssh.user", "hosts[1].ssh.port"}},
		{"bastions", func(c *Cluster) {
			c.Hosts[0].SSH.Bastion = "jump.example.com"
			c.Hosts[1].SSH.Bastion = "admin@[fd00::1]:2222"
			c.Hosts[2].SSH.Bastion = "admin@10.0.0.1:22"
		}, nil},
		{"bad bastions", func(c *Cluster) {
			c.Hosts[0].SSH.Bastion = "@jump.example.com"
			c.Hosts[1].SSH.Bastion = "admin@jump:99999"
			c.Hosts[2].SSH.Bastion = "ssh://jump"
		}, []string{"hosts[0].ssh.bastion", "hosts[1].ssh.bastion", "hosts[2].ssh.bastion"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validCluster()
			tc.mutate(c)
			err := c.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate() = %v (%T), want a *ValidationError", err, err)
			}
			var paths []string
			for _, fe := range ve.Errors {
				paths = append(paths, fe.Path)
				if fe.Line != 0 {
					t.Errorf("%s: Line = %d, want 0 without a file", fe.Path, fe.Line)
				}
				// Every message says what would be valid.
				if !strings.Contains(fe.Message, "want") {
					t.Errorf("%s: message %q does not say what is wanted", fe.Path, fe.Message)
				}
			}
			if diff := cmp.Diff(tc.want, paths); diff != "" {
				t.Errorf("error paths mismatch (-want +got):\n%s\nerrors:\n%v", diff, err)
			}
		})
	}
}

func validExternal() *ExternalEtcd {
	return &ExternalEtcd{
		Endpoints: []string{"https://10.0.0.5:2379", "https://etcd.example.com:2379", "https://[fd00::5]:2379"},
		CAFile:    "/etc/etcd/ca.crt",
		CertFile:  "/etc/etcd/client.crt",
		KeyFile:   "/etc/etcd/client.key",
	}
}

// TestValidateMessages pins the wording of a few messages users will see most.
func TestValidateMessages(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Cluster)
		want   string
	}{
		{
			name:   "pod cidr",
			mutate: func(c *Cluster) { c.Networking.PodCIDR = "10.244.0.0/33" },
			want:   `networking.pod_cidr: "10.244.0.0/33" is not a CIDR; want an address and prefix such as "10.244.0.0/16"`,
		},
		{
			name:   "host bits",
			mutate: func(c *Cluster) { c.Networking.PodCIDR = "10.244.1.0/16" },
			want:   `networking.pod_cidr: "10.244.1.0/16" has host bits set; want the network address, "10.244.0.0/16"`,
		},
		{
			name:   "unsupported release",
			mutate: func(c *Cluster) { c.KubernetesVersion = "v1.30.2" },
			want:   `kubernetes_version: "v1.30.2" is not supported by this build; want a patch release of v1.34`,
		},
		{
			name:   "service cidr too small",
			mutate: func(c *Cluster) { c.Networking.ServiceCIDR = "10.96.0.0/29" },
			want:   `networking.service_cidr: "10.96.0.0/29" is too small: the DNS service takes its 10th address; want a prefix of /28 or shorter`,
		},
		{
			name:   "service cidr too large",
			mutate: func(c *Cluster) { c.Networking.PodCIDR, c.Networking.ServiceCIDR = "fd00:1::/56", "fd00:2::/100" },
			want:   `networking.service_cidr: "fd00:2::/100" is too large: kube-apiserver accepts at most 2^20 service addresses; want a prefix of /108 or longer`,
		},
		{
			name:   "cert outlives CA",
			mutate: func(c *Cluster) { c.Certificates.CertValidity = Duration{11 * 365 * 24 * time.Hour} },
			want:   `certificates.cert_validity: "11y" is longer than certificates.ca_validity "10y"; want at most the CAs' lifetime`,
		},
		{
			name:   "extra arg with value",
			mutate: func(c *Cluster) { c.APIServer.ExtraArgs = map[string]string{"v=2": ""} },
			want:   `apiserver.extra_args."v=2": flag name "v=2" contains '='; want the name as the key and the value as its value: v = "2"`,
		},
		{
			name:   "taint",
			mutate: func(c *Cluster) { c.Hosts[0].Taints = []string{"gpu"} },
			want:   `hosts[0].taints[0]: "gpu" has no effect; want "key[=value]:Effect" with Effect NoSchedule, PreferNoSchedule or NoExecute, such as "dedicated=gpu:NoSchedule"`,
		},
		{
			name:   "duplicate address",
			mutate: func(c *Cluster) { c.Hosts[1].Address = "192.0.2.10" },
			want:   `hosts[1].address: "192.0.2.10" is already used by hosts[0]; want unique addresses`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validCluster()
			tc.mutate(c)
			err := c.Validate()
			if err == nil || err.Error() != tc.want {
				t.Errorf("Validate() = %v\nwant %s", err, tc.want)
			}
		})
	}
}

// TestHostPathTypes keeps the accepted path_type values in step with the Kubernetes API.
func TestHostPathTypes(t *testing.T) {
	want := []string{
		string(corev1.HostPathUnset), string(corev1.HostPathDirectoryOrCreate), string(corev1.HostPathDirectory),
		string(corev1.HostPathFileOrCreate), string(corev1.HostPathFile), string(corev1.HostPathSocket),
		string(corev1.HostPathCharDev), string(corev1.HostPathBlockDev),
	}
	if diff := cmp.Diff(want, HostPathTypes); diff != "" {
		t.Errorf("HostPathTypes mismatch (-corev1 +config):\n%s", diff)
	}
}
