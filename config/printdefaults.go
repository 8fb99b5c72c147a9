package config

import (
	"bytes"
	"fmt"
	"strconv"
	"text/template"
)

// PrintDefaults returns a complete, commented cluster.toml: every key with its default value,
// optional keys as commented-out examples, and one example control-plane host. It decodes
// and validates as is.
func PrintDefaults() []byte {
	var buf bytes.Buffer
	data := struct {
		*Cluster
		APIServerPort, SSHPort int
		SSHUser                string
	}{Default(), DefaultAPIServerPort, DefaultSSHPort, DefaultSSHUser}
	if err := defaultsTemplate.Execute(&buf, data); err != nil {
		// The template and its data are fixed; the tests execute it.
		panic(fmt.Sprintf("rendering the default cluster.toml: %v", err))
	}
	return buf.Bytes()
}

var defaultsTemplate = template.Must(template.New("cluster.toml").Funcs(template.FuncMap{
	"q": strconv.Quote,
	"dur": func(d Duration) string {
		b, _ := d.MarshalText()
		return strconv.Quote(string(b))
	},
	"durp": func(d *Duration) string {
		b, _ := d.MarshalText()
		return strconv.Quote(string(b))
	},
	"minors": func() string {
		var names []string
		for _, m := range SupportedMinors() {
			names = append(names, fmt.Sprintf("v1.%d", m))
		}
		return orList(names)
	},
	"hostPathTypes":     func() string { return orList(HostPathTypes[1:]) },
	"keyAlgorithms":     func() string { return orList(KeyAlgorithms) },
	"podSecurityLevels": func() string { return orList(quoteAll(PodSecurityLevels)) },
}).Parse(defaultsText))

// Commented-out lines that start with a key and " = ", or with "[", are examples: the tests
// uncomment them all and check that the result covers the whole schema. Prose comments must
// not start that way.
const defaultsText = `# cluster.toml: the configuration of a kforge cluster.
#
# Every key is shown with its default value. Commented-out keys are optional examples
# with no default of their own: uncomment and edit them to use them. Durations are Go
# durations ("8760h", "90m") or whole days and years ("365d", "10y").

# Schema version of this file.
version = {{q .Version}}
# Cluster name used in kubeconfigs and the ClusterConfiguration: a DNS label.
name = {{q .Name}}
# Kubernetes release to install, vMAJOR.MINOR.PATCH. This build supports {{minors}}.
kubernetes_version = {{q .KubernetesVersion}}
# A load balancer or DNS name in front of every apiserver, "host" or "host:port"
# (port {{.APIServerPort}} when left out). Default: the first control-plane host's address.
# control_plane_endpoint = "lb.example.com:6443"
# Registry host and optional path that every image is pulled from (no scheme, no tag).
image_repository = {{q .ImageRepository}}
# Directory of an air-gap bundle to install from instead of pulling images.
# bundle = "/opt/kforge/bundle"

[networking]
# Pod address range. Each node gets a /24 of it (a /64 for IPv6).
pod_cidr = {{q .Networking.PodCIDR}}
# Service address range: its 1st address is the apiserver's, its 10th the DNS service's.
service_cidr = {{q .Networking.ServiceCIDR}}
dns_domain = {{q .Networking.DNSDomain}}

# etcd runs either stacked on every control-plane host (etcd.local, the default) or
# outside the cluster (etcd.external). Set exactly one of the two tables.
[etcd.local]
# etcd's data directory. kforge owns it (reset empties it), so it is an absolute path of
# its own: never a system directory such as /var/lib, nor a parent of one.
data_dir = {{q .Etcd.Local.DataDir}}
# Extra names and IPs for the etcd serving and peer certificates.
# server_cert_sans = ["etcd.example.com"]
# peer_cert_sans = ["10.0.0.20"]
# Flags for etcd, by name without dashes; they win over kforge's own.
# [etcd.local.extra_args]
# snapshot-count = "10000"

# An etcd cluster kforge does not manage, and the client certificate to reach it with.
# [etcd.external]
# endpoints = ["https://10.0.0.5:2379", "https://10.0.0.6:2379"]
# ca_file = "/etc/kubernetes/pki/etcd/ca.crt"
# cert_file = "/etc/kubernetes/pki/apiserver-etcd-client.crt"
# key_file = "/etc/kubernetes/pki/apiserver-etcd-client.key"

[certificates]
# Lifetime of the cluster, front-proxy and etcd CAs.
ca_validity = {{dur .Certificates.CAValidity}}
# Lifetime of every other certificate; at most ca_validity.
cert_validity = {{dur .Certificates.CertValidity}}
# How long before a certificate expires each control plane renews it on its own (a daily
# check: the kforge-certs-renew timer, or a supervised renew-loop without systemd); shorter
# than cert_validity. "0s" turns automatic renewal off.
renew_before = {{durp .Certificates.RenewBefore}}
# Private key type: {{keyAlgorithms}}.
key_algorithm = {{q .Certificates.KeyAlgorithm}}

# Overrides for the control-plane static pods. extra_args are flags by name without
# dashes; they win over kforge's own. extra_volumes are hostPath mounts, and their
# path_type is empty or one of these Kubernetes hostPath types:
# {{hostPathTypes}}.
[apiserver]
# Extra DNS names and IPs for the apiserver serving certificate.
# cert_sans = ["api.example.com", "10.0.0.100"]
# extra_args = { event-ttl = "2h", default-watch-cache-size = "200" }
# [[apiserver.extra_volumes]]
# name = "oidc-ca"
# host_path = "/etc/kubernetes/oidc"
# mount_path = "/etc/kubernetes/oidc"
# read_only = true
# path_type = "DirectoryOrCreate"

[controller_manager]
# extra_args = { node-monitor-grace-period = "40s" }
# extra_volumes = [{ name = "flexvolume", host_path = "/usr/libexec/kubernetes/kubelet-plugins/volume/exec", mount_path = "/usr/libexec/kubernetes/kubelet-plugins/volume/exec", read_only = false, path_type = "DirectoryOrCreate" }]

[scheduler]
# extra_args = { v = "2" }
# extra_volumes = [{ name = "scheduler-config", host_path = "/etc/kubernetes/scheduler-config.yaml", mount_path = "/etc/kubernetes/scheduler-config.yaml", read_only = true, path_type = "File" }]

[kubelet]
# "systemd" or "cgroupfs". Default: detected on each host.
# cgroup_driver = "systemd"
# Pod limit per node. Default: the kubelet's own, 110.
# max_pods = 110
container_runtime_endpoint = {{q .Kubelet.ContainerRuntimeEndpoint}}
# Refuse to start the kubelet while swap is on.
fail_swap_on = {{.Kubelet.FailSwapOn}}
# Have each kubelet request its serving certificate from the cluster CA with a CSR
# (serverTLSBootstrap) instead of signing its own. Until its CSR is approved, that kubelet
# serves no HTTPS: kubectl logs and exec fail on it. kforge up (or kforge certs
# approve-serving on a control plane) approves a CSR only for the node's own names and
# addresses, then has the apiserver verify kubelets (--kubelet-certificate-authority).
server_tls_bootstrap = {{.Kubelet.ServerTLSBootstrap}}
# Resources set aside for the OS and for Kubernetes daemons, and the hard eviction
# thresholds; they go to the KubeletConfiguration as they are.
# system_reserved = { cpu = "500m", memory = "1Gi" }
# kube_reserved = { cpu = "500m", memory = "1Gi" }
# eviction_hard = { "memory.available" = "100Mi", "nodefs.available" = "10%" }
# Kubelet flags, by name without dashes.
# extra_args = { v = "2" }

[addons.cni]
# "flannel", or "none" to install a pod network yourself.
plugin = {{q .Addons.CNI.Plugin}}
# "vxlan" or "host-gw".
flannel_backend = {{q .Addons.CNI.FlannelBackend}}

[addons.dns]
disabled = {{.Addons.DNS.Disabled}}
# Resolvers CoreDNS forwards to, "IP" or "IP:port". Default: the hosts' /etc/resolv.conf.
# upstreams = ["1.1.1.1", "[2606:4700:4700::1111]:53"]
replicas = {{.Addons.DNS.Replicas}}

[addons.kube_proxy]
# Disable kube-proxy for a pod network that replaces it.
disabled = {{.Addons.KubeProxy.Disabled}}
# "iptables", "ipvs" or "nftables".
mode = {{q .Addons.KubeProxy.Mode}}

# A security posture beyond kubeadm's defaults. Every switch is on by default.
[security]
# Encrypt Secrets in etcd (secretbox) with a key init generates in
# /etc/kubernetes/pki/encryption-config.yaml (0600); joining control planes receive it with
# the shared certificates. A re-run keeps the key.
encrypt_secrets = {{.Security.EncryptsSecrets}}
# Pod Security Standard enforced in every namespace but kube-system: {{podSecurityLevels}}
# ("privileged" enforces nothing). Pods that break "restricted" are warned about and audited.
pod_security = {{q .Security.PodSecurity}}
# Serve /debug/pprof on the apiserver, controller-manager and scheduler.
profiling = {{.Security.Profiling}}
# Let anonymous requests reach only /livez, /readyz, /healthz and kube-public/cluster-info
# (which joining nodes read), through the apiserver's authentication configuration.
restrict_anonymous = {{.Security.RestrictsAnonymous}}
# Bind kube-proxy's health (10256) and metrics (10249) servers to the node's loopback address
# instead of every address. Set false for load balancers that probe nodes on 10256.
kube_proxy_local_endpoints = {{.Security.KubeProxyBindsLoopback}}

# The apiserver's audit log: metadata of every request (who read which Secret, never its
# content), rotated by size and age.
[security.audit]
enabled = {{.Security.Audits}}
path = {{q .Security.Audit.Path}}
# Days to keep rotated files.
max_age = {{.Security.Audit.MaxAge}}
# Rotated files to keep.
max_backups = {{.Security.Audit.MaxBackups}}
# Size in megabytes at which the log is rotated.
max_size = {{.Security.Audit.MaxSize}}

# The machines of the cluster, one [[hosts]] table each; the first control-plane host
# initialises the cluster. Leave hosts out for a single-host kforge init on this machine.
[[hosts]]
name = "cp-1"
# Where kforge reaches the host over SSH: an IP address or DNS name.
address = "192.0.2.10"
# The host's IP address on the cluster network, which its node advertises. Default:
# address, which must then be an IP address.
# internal_address = "10.0.0.10"
# "control-plane", "worker" or both.
roles = ["control-plane"]
# labels = { "topology.kubernetes.io/zone" = "zone-a" }
# Taints are "key[=value]:Effect" with Effect NoSchedule, PreferNoSchedule or NoExecute.
# taints = ["dedicated=infra:NoSchedule"]
# Kubelet flags for this host only; they win over [kubelet] extra_args.
# kubelet_extra_args = { "cgroup-root" = "/h1" }

[hosts.ssh]
user = {{q .SSHUser}}
port = {{.SSHPort}}
# Private key file and known_hosts file to use for this host.
# key = "~/.ssh/id_ed25519"
# known_hosts = "~/.ssh/known_hosts"
# A jump host, "[user@]host[:port]".
# bastion = "admin@jump.example.com:22"
`
