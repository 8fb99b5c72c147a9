package bootstrap

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/kforge/kforge/config"
)

// StoredCluster is the cluster configuration a running cluster holds, as a joining node
// reads it.
type StoredCluster struct {
	// Cluster is the configuration: kforge's own (kforge.toml), or one derived from
	// kubeadm's ClusterConfiguration and KubeletConfiguration in a cluster made by stock
	// kubeadm. It has no hosts in the latter case.
	Cluster *config.Cluster
	// CertificatesDir is where the cluster's nodes keep the certificates (certificatesDir
	// of the ClusterConfiguration); empty when kubeadm-config holds no ClusterConfiguration.
	CertificatesDir string
	// FromKubeadm is set when Cluster was derived from kubeadm's configuration: the cluster
	// was not made by kforge init.
	FromKubeadm bool
	// KubeadmControlPlaneEndpoint is the ClusterConfiguration's controlPlaneEndpoint as
	// written, possibly empty (kubeadm init without --control-plane-endpoint).
	KubeadmControlPlaneEndpoint string
}

// ReadStoredCluster reads the cluster configuration from the kubeadm-config ConfigMap and,
// when kforge's own is not there, from the kubelet-config ConfigMap (nil when it does not
// exist), as a stock kubeadm join does:
//   - with kforge.toml, that is the configuration; it must agree with the
//     ClusterConfiguration beside it on every field both hold;
//   - without it, the configuration is derived from the ClusterConfiguration and the
//     KubeletConfiguration that kubeadm init uploaded.
func ReadStoredCluster(kubeadmCM, kubeletCM *corev1.ConfigMap) (*StoredCluster, error) {
	var cc *ClusterConfiguration
	if _, ok := kubeadmCM.Data[ClusterConfigurationKey]; ok {
		var err error
		if cc, err = ParseClusterConfiguration(kubeadmCM); err != nil {
			return nil, err
		}
	}
	if _, ok := kubeadmCM.Data[KforgeConfigKey]; ok {
		c, err := ClusterFromKubeadmConfig(kubeadmCM)
		if err != nil {
			return nil, err
		}
		s := &StoredCluster{Cluster: c}
		if cc != nil {
			if err := checkAgreement(c, cc, where(kubeadmCM)); err != nil {
				return nil, err
			}
			s.CertificatesDir = cc.CertificatesDir
			s.KubeadmControlPlaneEndpoint = cc.ControlPlaneEndpoint
		}
		return s, nil
	}
	if cc == nil {
		return nil, fmt.Errorf("ConfigMap %s holds neither %s nor %s: the cluster was set up by neither kforge nor kubeadm",
			where(kubeadmCM), KforgeConfigKey, ClusterConfigurationKey)
	}
	if kubeletCM == nil {
		return nil, fmt.Errorf("the cluster has no ConfigMap %s/%s: kubeadm init publishes the nodes' KubeletConfiguration there (phase upload-config/kubelet)",
			NamespaceSystem, KubeletConfigName)
	}
	kc, err := ParseKubeletConfiguration(kubeletCM)
	if err != nil {
		return nil, err
	}
	c, err := ClusterFromKubeadm(cc, kc)
	if err != nil {
		return nil, fmt.Errorf("deriving the cluster configuration from %s and %s: %w", where(kubeadmCM), where(kubeletCM), err)
	}
	return &StoredCluster{Cluster: c, CertificatesDir: cc.CertificatesDir, FromKubeadm: true, KubeadmControlPlaneEndpoint: cc.ControlPlaneEndpoint}, nil
}

func where(cm *corev1.ConfigMap) string { return cm.Namespace + "/" + cm.Name }

// ParseClusterConfiguration reads the ClusterConfiguration of the kubeadm-config ConfigMap,
// ignoring the fields kforge does not use.
func ParseClusterConfiguration(cm *corev1.ConfigMap) (*ClusterConfiguration, error) {
	var cc ClusterConfiguration
	if err := yaml.Unmarshal([]byte(cm.Data[ClusterConfigurationKey]), &cc); err != nil {
		return nil, fmt.Errorf("reading %s[%s]: %w", where(cm), ClusterConfigurationKey, err)
	}
	if cc.APIVersion != KubeadmAPIVersion || cc.Kind != "ClusterConfiguration" {
		return nil, fmt.Errorf("reading %s[%s]: it is apiVersion %q kind %q, want %s ClusterConfiguration (kubeadm v1.31 and later write it)",
			where(cm), ClusterConfigurationKey, cc.APIVersion, cc.Kind, KubeadmAPIVersion)
	}
	return &cc, nil
}

// ParseKubeletConfiguration reads the KubeletConfiguration of the kubelet-config ConfigMap.
func ParseKubeletConfiguration(cm *corev1.ConfigMap) (*kubeletv1beta1.KubeletConfiguration, error) {
	var kc kubeletv1beta1.KubeletConfiguration
	if err := yaml.Unmarshal([]byte(cm.Data[KubeletConfigKey]), &kc); err != nil {
		return nil, fmt.Errorf("reading %s[%s]: %w", where(cm), KubeletConfigKey, err)
	}
	if kc.APIVersion != KubeletAPIVersion || kc.Kind != KubeletKind {
		return nil, fmt.Errorf("reading %s[%s]: it is apiVersion %q kind %q, want %s %s",
			where(cm), KubeletConfigKey, kc.APIVersion, kc.Kind, KubeletAPIVersion, KubeletKind)
	}
	return &kc, nil
}

// keyAlgorithm maps kubeadm's encryptionAlgorithm names to kforge's key_algorithm.
func keyAlgorithm(kubeadm string) (string, bool) {
	for k, v := range encryptionAlgorithms {
		if v == kubeadm {
			return k, true
		}
	}
	return "", false
}

// ClusterFromKubeadm derives kforge's cluster configuration from kubeadm's: the
// ClusterConfiguration and the cluster-wide KubeletConfiguration. The result is defaulted
// and has no hosts. Settings kforge cannot carry out as kubeadm would are errors, all at
// once, rather than a node configured differently from the others.
func ClusterFromKubeadm(cc *ClusterConfiguration, kc *kubeletv1beta1.KubeletConfiguration) (*config.Cluster, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	c := &config.Cluster{
		Name:                 cc.ClusterName,
		KubernetesVersion:    cc.KubernetesVersion,
		ControlPlaneEndpoint: cc.ControlPlaneEndpoint,
		ImageRepository:      cc.ImageRepository,
		Networking: config.Networking{
			PodCIDR:     cc.Networking.PodSubnet,
			ServiceCIDR: cc.Networking.ServiceSubnet,
			DNSDomain:   cc.Networking.DNSDomain,
		},
		APIServer: config.APIServer{CertSANs: slices.Clone(cc.APIServer.CertSANs)},
		Addons: config.Addons{
			DNS:       config.DNS{Disabled: cc.DNS.Disabled},
			KubeProxy: config.KubeProxy{Disabled: cc.Proxy.Disabled},
		},
	}
	for _, comp := range []struct {
		name string
		from ControlPlaneComponent
		args *map[string]string
		vols *[]config.HostPathMount
	}{
		{"apiServer", cc.APIServer.ControlPlaneComponent, &c.APIServer.ExtraArgs, &c.APIServer.ExtraVolumes},
		{"controllerManager", cc.ControllerManager, &c.ControllerManager.ExtraArgs, &c.ControllerManager.ExtraVolumes},
		{"scheduler", cc.Scheduler, &c.Scheduler.ExtraArgs, &c.Scheduler.ExtraVolumes},
	} {
		m, err := argMap(comp.from.ExtraArgs)
		if err != nil {
			bad("%s.extraArgs: %w", comp.name, err)
		}
		*comp.args = m
		for _, v := range comp.from.ExtraVolumes {
			*comp.vols = append(*comp.vols, config.HostPathMount{
				Name: v.Name, HostPath: v.HostPath, MountPath: v.MountPath, ReadOnly: v.ReadOnly, PathType: string(v.PathType),
			})
		}
		if len(comp.from.ExtraEnvs) > 0 {
			bad("%s.extraEnvs is set: kforge cannot set environment variables of the control-plane components", comp.name)
		}
	}
	switch e := cc.Etcd; {
	case e.Local != nil && e.External != nil:
		bad("etcd has both local and external")
	case e.External != nil:
		c.Etcd.External = &config.ExternalEtcd{
			Endpoints: slices.Clone(e.External.Endpoints),
			CAFile:    e.External.CAFile, CertFile: e.External.CertFile, KeyFile: e.External.KeyFile,
		}
	case e.Local != nil:
		m, err := argMap(e.Local.ExtraArgs)
		if err != nil {
			bad("etcd.local.extraArgs: %w", err)
		}
		if len(e.Local.ExtraEnvs) > 0 {
			bad("etcd.local.extraEnvs is set: kforge cannot set environment variables of etcd")
		}
		c.Etcd.Local = &config.LocalEtcd{
			DataDir:        e.Local.DataDir,
			ExtraArgs:      m,
			ServerCertSANs: slices.Clone(e.Local.ServerCertSANs),
			PeerCertSANs:   slices.Clone(e.Local.PeerCertSANs),
		}
	}
	if a := cc.EncryptionAlgorithm; a != "" {
		if k, ok := keyAlgorithm(a); ok {
			c.Certificates.KeyAlgorithm = k
		} else {
			bad("encryptionAlgorithm %q: kforge makes %s keys only", a, strings.Join(slices.Sorted(maps.Values(encryptionAlgorithms)), ", "))
		}
	} else {
		// kubeadm's default, which an older kubeadm left unwritten.
		c.Certificates.KeyAlgorithm = config.KeyRSA2048
	}
	if d := cc.CACertificateValidityPeriod; d != nil {
		c.Certificates.CAValidity.Duration = d.Duration
	}
	if d := cc.CertificateValidityPeriod; d != nil {
		c.Certificates.CertValidity.Duration = d.Duration
	}

	k := &c.Kubelet
	k.CgroupDriver = kc.CgroupDriver
	k.MaxPods = kc.MaxPods
	k.ContainerRuntimeEndpoint = kc.ContainerRuntimeEndpoint
	if kc.FailSwapOn != nil {
		k.FailSwapOn = new(bool)
		*k.FailSwapOn = *kc.FailSwapOn
	}
	k.ServerTLSBootstrap = kc.ServerTLSBootstrap
	k.SystemReserved = maps.Clone(kc.SystemReserved)
	k.KubeReserved = maps.Clone(kc.KubeReserved)
	k.EvictionHard = maps.Clone(kc.EvictionHard)

	c.Security = config.KubeadmSecurity()
	config.SetDefaults(c)
	if kc.ClusterDomain != "" && kc.ClusterDomain != c.Networking.DNSDomain {
		bad("the KubeletConfiguration's clusterDomain %q differs from the ClusterConfiguration's networking.dnsDomain %q: kforge configures both from one setting",
			kc.ClusterDomain, c.Networking.DNSDomain)
	}
	if len(kc.ClusterDNS) > 0 {
		dns, err := c.ServiceIP(10)
		if err != nil {
			bad("%w", err)
		} else if len(kc.ClusterDNS) != 1 || kc.ClusterDNS[0] != dns.String() {
			bad("the KubeletConfiguration's clusterDNS %v is not [%s], the 10th address of the service subnet: kforge puts the cluster DNS there and cannot configure the kubelet otherwise",
				kc.ClusterDNS, dns)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// argMap turns kubeadm's list of flags into kforge's map. kubeadm allows a flag twice (it is
// passed twice); kforge does not.
func argMap(args []Arg) (map[string]string, error) {
	if len(args) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, a := range args {
		if _, dup := m[a.Name]; dup {
			return nil, fmt.Errorf("flag %q is given more than once; kforge passes each flag once", a.Name)
		}
		m[a.Name] = a.Value
	}
	return m, nil
}

// checkAgreement compares kforge's configuration c with the ClusterConfiguration stored
// beside it, on every field both hold, and lists every difference. Only a change made
// behind kforge's back (kubeadm upgrade, a hand edit) makes them differ.
func checkAgreement(c *config.Cluster, stored *ClusterConfiguration, at string) error {
	want, err := NewClusterConfiguration(c, stored.CertificatesDir)
	if err != nil {
		return err
	}
	fields := []struct {
		name string
		get  func(*ClusterConfiguration) any
	}{
		{"clusterName", func(x *ClusterConfiguration) any { return x.ClusterName }},
		{"kubernetesVersion", func(x *ClusterConfiguration) any { return x.KubernetesVersion }},
		{"controlPlaneEndpoint", func(x *ClusterConfiguration) any { return x.ControlPlaneEndpoint }},
		{"imageRepository", func(x *ClusterConfiguration) any { return x.ImageRepository }},
		{"networking", func(x *ClusterConfiguration) any { return x.Networking }},
		{"etcd", func(x *ClusterConfiguration) any { return x.Etcd }},
		{"apiServer", func(x *ClusterConfiguration) any { return x.APIServer }},
		{"controllerManager", func(x *ClusterConfiguration) any { return x.ControllerManager }},
		{"scheduler", func(x *ClusterConfiguration) any { return x.Scheduler }},
		{"dns", func(x *ClusterConfiguration) any { return x.DNS }},
		{"proxy", func(x *ClusterConfiguration) any { return x.Proxy }},
		{"encryptionAlgorithm", func(x *ClusterConfiguration) any { return x.EncryptionAlgorithm }},
		{"caCertificateValidityPeriod", func(x *ClusterConfiguration) any { return x.CACertificateValidityPeriod }},
		{"certificateValidityPeriod", func(x *ClusterConfiguration) any { return x.CertificateValidityPeriod }},
	}
	var diffs []string
	for _, f := range fields {
		w, err1 := json.Marshal(f.get(want))
		g, err2 := json.Marshal(f.get(stored))
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("comparing %s: %w", f.name, err)
		}
		if string(w) != string(g) {
			diffs = append(diffs, fmt.Sprintf("%s: %s in %s, %s in %s", f.name, g, ClusterConfigurationKey, w, KforgeConfigKey))
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("ConfigMap %s: %s and %s disagree (was the cluster changed with kubeadm, or the ConfigMap edited?); make them agree before joining:\n  %s",
			at, KforgeConfigKey, ClusterConfigurationKey, strings.Join(diffs, "\n  "))
	}
	return nil
}
