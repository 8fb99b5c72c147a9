// Package config holds the cluster.toml schema: its types, defaults, strict decoding and
// validation. It knows nothing of cobra, SSH or the terminal.
package config

import "time"

// APIVersion is the only schema version this build reads and writes.
const APIVersion = "kforge/v1alpha1"

// Role names a host may carry.
const (
	RoleControlPlane = "control-plane"
	RoleWorker       = "worker"
)

// Cluster is the whole of cluster.toml. After Load it is defaulted and validated, and it is
// read-only from then on.
type Cluster struct {
	// Version is the schema version, APIVersion.
	Version string `toml:"version"`
	// Name is the cluster name used in kubeconfigs and the ClusterConfiguration.
	Name string `toml:"name"`
	// KubernetesVersion is a full release, "v1.34.4".
	KubernetesVersion string `toml:"kubernetes_version"`
	// ControlPlaneEndpoint is "host" or "host:port", a load balancer or DNS name in front of
	// every apiserver. Empty means the first control-plane host's address.
	ControlPlaneEndpoint string `toml:"control_plane_endpoint"`
	// ImageRepository prefixes every image: a registry host plus optional path.
	ImageRepository string `toml:"image_repository"`
	// Bundle is the path of an air-gap bundle directory, or empty.
	Bundle string `toml:"bundle"`

	Networking        Networking       `toml:"networking"`
	Etcd              Etcd             `toml:"etcd"`
	Certificates      Certificates     `toml:"certificates"`
	APIServer         APIServer        `toml:"apiserver"`
	ControllerManager ControlPlaneComp `toml:"controller_manager"`
	Scheduler         ControlPlaneComp `toml:"scheduler"`
	Kubelet           Kubelet          `toml:"kubelet"`
	Addons            Addons           `toml:"addons"`
	Security          Security         `toml:"security"`
	Hosts             []Host           `toml:"hosts"`
}

// Networking is the cluster's address plan.
type Networking struct {
	PodCIDR     string `toml:"pod_cidr"`
	ServiceCIDR string `toml:"service_cidr"`
	DNSDomain   string `toml:"dns_domain"`
}

// Etcd is either a local stacked etcd on every control-plane host or an external cluster.
// Exactly one of Local and External is set after defaulting.
type Etcd struct {
	Local    *LocalEtcd    `toml:"local,omitempty"`
	External *ExternalEtcd `toml:"external,omitempty"`
}

// LocalEtcd is a stacked etcd member run as a static pod.
type LocalEtcd struct {
	DataDir        string            `toml:"data_dir"`
	ExtraArgs      map[string]string `toml:"extra_args,omitempty"`
	ServerCertSANs []string          `toml:"server_cert_sans,omitempty"`
	PeerCertSANs   []string          `toml:"peer_cert_sans,omitempty"`
}

// ExternalEtcd is an etcd cluster kforge does not manage.
type ExternalEtcd struct {
	Endpoints []string `toml:"endpoints"`
	CAFile    string   `toml:"ca_file"`
	CertFile  string   `toml:"cert_file"`
	KeyFile   string   `toml:"key_file"`
}

// Certificates sets the PKI's lifetimes and key type.
type Certificates struct {
	// CAValidity is the lifetime of the three CAs; default ten years.
	CAValidity Duration `toml:"ca_validity"`
	// CertValidity is the lifetime of every leaf; default one year.
	CertValidity Duration `toml:"cert_validity"`
	// KeyAlgorithm is one of KeyAlgorithms; default ecdsa-p256.
	KeyAlgorithm string `toml:"key_algorithm"`
	// RenewBefore is how long before a leaf or kubeconfig client certificate expires each
	// control plane renews it on its own (its kforge-certs-renew timer or renew-loop);
	// when not written, 30 days, or a third of CertValidity where that is shorter; "0s"
	// turns automatic renewal off. Read it with AutoRenewBefore.
	RenewBefore *Duration `toml:"renew_before,omitempty"`
}

// AutoRenewBefore is RenewBefore, or its default when it is not set; zero means automatic
// renewal is off.
func (c Certificates) AutoRenewBefore() time.Duration {
	if c.RenewBefore == nil {
		return c.defaultRenewBefore()
	}
	return c.RenewBefore.Duration
}

// defaultRenewBefore is DefaultRenewBefore, or a third of CertValidity where that is
// shorter: a short lifetime (a lab's "7d") still renews on its own, well before it ends.
func (c Certificates) defaultRenewBefore() time.Duration {
	if v := c.CertValidity.Duration; v > 0 && v/3 < DefaultRenewBefore {
		return v / 3
	}
	return DefaultRenewBefore
}

// Key algorithm names.
const (
	KeyECDSAP256 = "ecdsa-p256"
	KeyRSA2048   = "rsa-2048"
	KeyRSA3072   = "rsa-3072"
	KeyRSA4096   = "rsa-4096"
)

// KeyAlgorithms lists the accepted key_algorithm values.
var KeyAlgorithms = []string{KeyECDSAP256, KeyRSA2048, KeyRSA3072, KeyRSA4096}

// ControlPlaneComp holds the overrides shared by the control-plane static pods.
type ControlPlaneComp struct {
	// ExtraArgs are flag name (without dashes) to value; they win over kforge's own flags.
	ExtraArgs    map[string]string `toml:"extra_args,omitempty"`
	ExtraVolumes []HostPathMount   `toml:"extra_volumes,omitempty"`
}

// APIServer is the apiserver's overrides.
type APIServer struct {
	ExtraArgs    map[string]string `toml:"extra_args,omitempty"`
	ExtraVolumes []HostPathMount   `toml:"extra_volumes,omitempty"`
	// CertSANs are extra DNS names or IPs for the apiserver serving certificate.
	CertSANs []string `toml:"cert_sans,omitempty"`
}

// HostPathMount is an extra hostPath volume mounted into a static pod.
type HostPathMount struct {
	Name      string `toml:"name"`
	HostPath  string `toml:"host_path"`
	MountPath string `toml:"mount_path"`
	ReadOnly  bool   `toml:"read_only"`
	// PathType is a corev1.HostPathType ("", "Directory", "DirectoryOrCreate", "File", ...).
	PathType string `toml:"path_type,omitempty"`
}

// Kubelet holds the kubelet overrides kforge applies on every host.
type Kubelet struct {
	// CgroupDriver is "cgroupfs" or "systemd"; empty means detect on the host.
	CgroupDriver string `toml:"cgroup_driver,omitempty"`
	// MaxPods is the pod limit per node; 0 means the kubelet's default (110).
	MaxPods int32 `toml:"max_pods,omitempty"`
	// ContainerRuntimeEndpoint is the CRI socket; default unix:///run/containerd/containerd.sock.
	ContainerRuntimeEndpoint string `toml:"container_runtime_endpoint"`
	// FailSwapOn makes the kubelet refuse to start with swap on; default true.
	FailSwapOn *bool `toml:"fail_swap_on,omitempty"`
	// ServerTLSBootstrap makes each kubelet request its serving certificate from the
	// cluster with a CSR (serverTLSBootstrap) instead of signing its own; default false.
	ServerTLSBootstrap bool `toml:"server_tls_bootstrap,omitempty"`
	// SystemReserved, KubeReserved and EvictionHard go to the KubeletConfiguration as is.
	SystemReserved map[string]string `toml:"system_reserved,omitempty"`
	KubeReserved   map[string]string `toml:"kube_reserved,omitempty"`
	EvictionHard   map[string]string `toml:"eviction_hard,omitempty"`
	// ExtraArgs are kubelet flags written to kubeadm-flags.env.
	ExtraArgs map[string]string `toml:"extra_args,omitempty"`
}

// Addons configures the cluster add-ons init installs.
type Addons struct {
	CNI       CNI       `toml:"cni"`
	DNS       DNS       `toml:"dns"`
	KubeProxy KubeProxy `toml:"kube_proxy"`
}

// CNI plugin names.
const (
	CNIFlannel = "flannel"
	CNINone    = "none"
)

// CNI selects the pod network.
type CNI struct {
	// Plugin is "flannel" or "none".
	Plugin string `toml:"plugin"`
	// FlannelBackend is "vxlan" or "host-gw".
	FlannelBackend string `toml:"flannel_backend"`
}

// DNS configures CoreDNS.
type DNS struct {
	// Disabled skips the CoreDNS add-on.
	Disabled bool `toml:"disabled"`
	// Upstreams are the resolvers CoreDNS forwards to ("IP" or "IP:port"); empty means the
	// host's /etc/resolv.conf.
	Upstreams []string `toml:"upstreams,omitempty"`
	// Replicas of the CoreDNS Deployment; default 2.
	Replicas int32 `toml:"replicas"`
}

// KubeProxy configures kube-proxy.
type KubeProxy struct {
	// Disabled skips the kube-proxy add-on (for CNIs that replace it).
	Disabled bool `toml:"disabled"`
	// Mode is "iptables", "ipvs" or "nftables".
	Mode string `toml:"mode"`
}

// Pod Security Standard levels, for security.pod_security.
const (
	PodSecurityPrivileged = "privileged"
	PodSecurityBaseline   = "baseline"
	PodSecurityRestricted = "restricted"
)

// PodSecurityLevels lists the accepted security.pod_security values.
var PodSecurityLevels = []string{PodSecurityPrivileged, PodSecurityBaseline, PodSecurityRestricted}

// Security is kforge's posture beyond kubeadm's defaults. Every switch is on by default;
// the pointer fields are nil only before SetDefaults, and their methods read nil as on.
type Security struct {
	// EncryptSecrets encrypts Secrets in etcd with a key init generates; default true.
	EncryptSecrets *bool `toml:"encrypt_secrets,omitempty"`
	// PodSecurity is the Pod Security Standard level enforced in every namespace but
	// kube-system; violations of "restricted" are warned about and audited. Default
	// "baseline"; "privileged" enforces nothing.
	PodSecurity string `toml:"pod_security"`
	// Profiling serves /debug/pprof on the apiserver, controller-manager and scheduler;
	// default false.
	Profiling bool `toml:"profiling"`
	// RestrictAnonymous lets anonymous requests reach only the health endpoints and
	// kube-public/cluster-info; default true.
	RestrictAnonymous *bool `toml:"restrict_anonymous,omitempty"`
	// KubeProxyLocalEndpoints binds kube-proxy's health and metrics servers to the node's
	// loopback address instead of every address; default true.
	KubeProxyLocalEndpoints *bool `toml:"kube_proxy_local_endpoints,omitempty"`
	Audit                   Audit `toml:"audit"`
}

// Audit is the apiserver's audit log.
type Audit struct {
	// Enabled writes the audit log; default true.
	Enabled *bool `toml:"enabled,omitempty"`
	// Path is the log file on every control-plane host; default DefaultAuditLogPath.
	Path string `toml:"path"`
	// MaxAge is how many days rotated files are kept; default 30.
	MaxAge int `toml:"max_age"`
	// MaxBackups is how many rotated files are kept; default 10.
	MaxBackups int `toml:"max_backups"`
	// MaxSize is the size in megabytes at which the log is rotated; default 100.
	MaxSize int `toml:"max_size"`
}

// EncryptsSecrets reports whether Secrets are encrypted at rest.
func (s Security) EncryptsSecrets() bool { return on(s.EncryptSecrets) }

// RestrictsAnonymous reports whether anonymous requests are limited to the health
// endpoints and cluster-info.
func (s Security) RestrictsAnonymous() bool { return on(s.RestrictAnonymous) }

// KubeProxyBindsLoopback reports whether kube-proxy's health and metrics servers listen
// on loopback only.
func (s Security) KubeProxyBindsLoopback() bool { return on(s.KubeProxyLocalEndpoints) }

// Audits reports whether the apiserver writes an audit log.
func (s Security) Audits() bool { return on(s.Audit.Enabled) }

func on(b *bool) bool { return b == nil || *b }

// Host is one machine of the cluster.
type Host struct {
	Name string `toml:"name"`
	// Address is where the operator's machine reaches the host (SSH).
	Address string `toml:"address"`
	// InternalAddress is the host's address on the cluster network; default Address.
	InternalAddress string            `toml:"internal_address,omitempty"`
	Roles           []string          `toml:"roles"`
	Labels          map[string]string `toml:"labels,omitempty"`
	// Taints are "key[=value]:Effect".
	Taints []string `toml:"taints,omitempty"`
	// KubeletExtraArgs are kubelet flags for this host only; they win over
	// kubelet.extra_args.
	KubeletExtraArgs map[string]string `toml:"kubelet_extra_args,omitempty"`
	SSH              SSH               `toml:"ssh,omitempty"`
}

// SSH says how `kforge up` reaches a host.
type SSH struct {
	User       string `toml:"user"`
	Port       int    `toml:"port"`
	Key        string `toml:"key,omitempty"`
	KnownHosts string `toml:"known_hosts,omitempty"`
	// Bastion is "[user@]host[:port]" of a jump host, or empty.
	Bastion string `toml:"bastion,omitempty"`
}
