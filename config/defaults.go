package config

import (
	"fmt"
	"strings"
	"time"
)

// Defaults applied by SetDefaults.
const (
	DefaultKubernetesVersion = "v1.34.4"
	DefaultImageRepository   = "registry.k8s.io"
	DefaultClusterName       = "kubernetes"
	DefaultPodCIDR           = "10.244.0.0/16"
	DefaultServiceCIDR       = "10.96.0.0/12"
	DefaultDNSDomain         = "cluster.local"
	DefaultEtcdDataDir       = "/var/lib/etcd"
	DefaultCRISocket         = "unix:///run/containerd/containerd.sock"
	DefaultAPIServerPort     = 6443
	DefaultSSHPort           = 22
	DefaultSSHUser           = "root"
	DefaultCAValidity        = 10 * 365 * 24 * time.Hour
	DefaultCertValidity      = 365 * 24 * time.Hour
	DefaultRenewBefore       = 30 * 24 * time.Hour
	DefaultAuditLogPath      = "/var/log/kubernetes/audit/audit.log"
	DefaultAuditLogMaxAge    = 30
	DefaultAuditLogMaxBackup = 10
	DefaultAuditLogMaxSize   = 100
)

// Default returns a defaulted cluster with no hosts.
func Default() *Cluster {
	c := &Cluster{}
	SetDefaults(c)
	return c
}

// SetDefaults fills every unset field with its default. It never overwrites a set value.
func SetDefaults(c *Cluster) {
	setStr(&c.Version, APIVersion)
	setStr(&c.Name, DefaultClusterName)
	setStr(&c.KubernetesVersion, DefaultKubernetesVersion)
	if c.KubernetesVersion != "" && !strings.HasPrefix(c.KubernetesVersion, "v") {
		c.KubernetesVersion = "v" + c.KubernetesVersion
	}
	setStr(&c.ImageRepository, DefaultImageRepository)
	c.ImageRepository = strings.TrimSuffix(c.ImageRepository, "/")
	setStr(&c.Networking.PodCIDR, DefaultPodCIDR)
	setStr(&c.Networking.ServiceCIDR, DefaultServiceCIDR)
	setStr(&c.Networking.DNSDomain, DefaultDNSDomain)
	if c.Etcd.Local == nil && c.Etcd.External == nil {
		c.Etcd.Local = &LocalEtcd{}
	}
	if c.Etcd.Local != nil {
		setStr(&c.Etcd.Local.DataDir, DefaultEtcdDataDir)
	}
	if c.Certificates.CAValidity.Duration == 0 {
		c.Certificates.CAValidity.Duration = DefaultCAValidity
	}
	if c.Certificates.CertValidity.Duration == 0 {
		c.Certificates.CertValidity.Duration = DefaultCertValidity
	}
	if c.Certificates.RenewBefore == nil {
		c.Certificates.RenewBefore = &Duration{c.Certificates.defaultRenewBefore()}
	}
	setStr(&c.Certificates.KeyAlgorithm, KeyECDSAP256)
	setStr(&c.Kubelet.ContainerRuntimeEndpoint, DefaultCRISocket)
	if c.Kubelet.FailSwapOn == nil {
		t := true
		c.Kubelet.FailSwapOn = &t
	}
	setStr(&c.Addons.CNI.Plugin, CNIFlannel)
	setStr(&c.Addons.CNI.FlannelBackend, "vxlan")
	if c.Addons.DNS.Replicas == 0 {
		c.Addons.DNS.Replicas = 2
	}
	setStr(&c.Addons.KubeProxy.Mode, "iptables")
	setDefaultsSecurity(&c.Security)
	for i := range c.Hosts {
		h := &c.Hosts[i]
		setStr(&h.InternalAddress, h.Address)
		setStr(&h.SSH.User, DefaultSSHUser)
		if h.SSH.Port == 0 {
			h.SSH.Port = DefaultSSHPort
		}
	}
}

func setDefaultsSecurity(s *Security) {
	for _, b := range []**bool{&s.EncryptSecrets, &s.RestrictAnonymous, &s.KubeProxyLocalEndpoints, &s.Audit.Enabled} {
		if *b == nil {
			t := true
			*b = &t
		}
	}
	setStr(&s.PodSecurity, PodSecurityBaseline)
	setStr(&s.Audit.Path, DefaultAuditLogPath)
	for _, n := range []struct {
		p *int
		v int
	}{{&s.Audit.MaxAge, DefaultAuditLogMaxAge}, {&s.Audit.MaxBackups, DefaultAuditLogMaxBackup}, {&s.Audit.MaxSize, DefaultAuditLogMaxSize}} {
		if *n.p == 0 {
			*n.p = n.v
		}
	}
}

func setStr(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

// Duration is a time.Duration written in cluster.toml as a string: Go syntax ("8760h",
// "90m") or whole days and years ("365d", "10y").
type Duration struct {
	time.Duration
}

// MarshalText writes the shortest exact form: years, days, or Go syntax.
func (d Duration) MarshalText() ([]byte, error) {
	const day = 24 * time.Hour
	switch {
	case d.Duration > 0 && d.Duration%(365*day) == 0:
		return fmt.Appendf(nil, "%dy", d.Duration/(365*day)), nil
	case d.Duration > 0 && d.Duration%day == 0:
		return fmt.Appendf(nil, "%dd", d.Duration/day), nil
	}
	return []byte(d.Duration.String()), nil
}

// UnmarshalText reads the forms MarshalText writes, and any Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// ParseDuration parses Go durations plus the "Nd" and "Ny" forms (a year is 365 days).
func ParseDuration(s string) (time.Duration, error) {
	const day = 24 * time.Hour
	for suffix, unit := range map[string]time.Duration{"d": day, "y": 365 * day} {
		if n, ok := strings.CutSuffix(s, suffix); ok && n != "" {
			var v int64
			if _, err := fmt.Sscanf(n, "%d", &v); err == nil && fmt.Sprint(v) == n {
				if v < 0 || v > int64(1<<62)/int64(unit) {
					return 0, fmt.Errorf("duration %q is out of range", s)
				}
				return time.Duration(v) * unit, nil
			}
			return 0, fmt.Errorf("invalid duration %q: want a whole number before %q, e.g. \"365d\"", s, suffix)
		}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: use Go syntax (\"8760h\") or days and years (\"365d\", \"10y\")", s)
	}
	return v, nil
}
