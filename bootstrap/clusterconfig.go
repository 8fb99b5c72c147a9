package bootstrap

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/kforge/kforge/config"
)

// KubeadmAPIVersion is the kubeadm configuration API the ClusterConfiguration is written
// in.
const KubeadmAPIVersion = "kubeadm.k8s.io/v1beta4"

// ClusterConfiguration is the part of kubeadm's v1beta4 ClusterConfiguration that kforge
// writes to the kubeadm-config ConfigMap: the fields a stock `kubeadm join` (and later
// `kubeadm upgrade`) reads from a running cluster.
type ClusterConfiguration struct {
	APIVersion           string                `json:"apiVersion"`
	Kind                 string                `json:"kind"`
	ClusterName          string                `json:"clusterName"`
	KubernetesVersion    string                `json:"kubernetesVersion"`
	ControlPlaneEndpoint string                `json:"controlPlaneEndpoint,omitempty"`
	ImageRepository      string                `json:"imageRepository"`
	CertificatesDir      string                `json:"certificatesDir"`
	Networking           Networking            `json:"networking"`
	Etcd                 Etcd                  `json:"etcd"`
	APIServer            APIServer             `json:"apiServer"`
	ControllerManager    ControlPlaneComponent `json:"controllerManager"`
	Scheduler            ControlPlaneComponent `json:"scheduler"`
	DNS                  Disableable           `json:"dns"`
	Proxy                Disableable           `json:"proxy"`
	// CACertificateValidityPeriod and CertificateValidityPeriod are the lifetimes of the CAs
	// and of the leaves, as "87600h0m0s".
	CACertificateValidityPeriod *metav1.Duration `json:"caCertificateValidityPeriod,omitempty"`
	CertificateValidityPeriod   *metav1.Duration `json:"certificateValidityPeriod,omitempty"`
	// EncryptionAlgorithm is the key type: "ECDSA-P256", "RSA-2048", "RSA-3072", "RSA-4096".
	EncryptionAlgorithm string `json:"encryptionAlgorithm,omitempty"`
}

// Networking is the cluster's address plan.
type Networking struct {
	ServiceSubnet string `json:"serviceSubnet,omitempty"`
	PodSubnet     string `json:"podSubnet,omitempty"`
	DNSDomain     string `json:"dnsDomain,omitempty"`
}

// Etcd is either Local or External.
type Etcd struct {
	Local    *LocalEtcd    `json:"local,omitempty"`
	External *ExternalEtcd `json:"external,omitempty"`
}

// LocalEtcd is a stacked etcd member on every control-plane node.
type LocalEtcd struct {
	DataDir        string   `json:"dataDir"`
	ExtraArgs      []Arg    `json:"extraArgs,omitempty"`
	ServerCertSANs []string `json:"serverCertSANs,omitempty"`
	PeerCertSANs   []string `json:"peerCertSANs,omitempty"`
	// ExtraEnvs is read only to refuse it: kforge has no such setting.
	ExtraEnvs []corev1.EnvVar `json:"extraEnvs,omitempty"`
}

// ExternalEtcd is an etcd cluster the installer does not manage.
type ExternalEtcd struct {
	Endpoints []string `json:"endpoints"`
	CAFile    string   `json:"caFile"`
	CertFile  string   `json:"certFile"`
	KeyFile   string   `json:"keyFile"`
}

// ControlPlaneComponent holds a static pod's overrides.
type ControlPlaneComponent struct {
	ExtraArgs    []Arg           `json:"extraArgs,omitempty"`
	ExtraVolumes []HostPathMount `json:"extraVolumes,omitempty"`
	// ExtraEnvs is read only to refuse it: kforge has no such setting.
	ExtraEnvs []corev1.EnvVar `json:"extraEnvs,omitempty"`
}

// APIServer is the apiserver's overrides and extra serving certificate names.
type APIServer struct {
	ControlPlaneComponent `json:",inline"`
	CertSANs              []string `json:"certSANs,omitempty"`
}

// Arg is one command-line flag, without its dashes.
type Arg struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// HostPathMount is an extra hostPath volume of a static pod.
type HostPathMount struct {
	Name      string              `json:"name"`
	HostPath  string              `json:"hostPath"`
	MountPath string              `json:"mountPath"`
	ReadOnly  bool                `json:"readOnly,omitempty"`
	PathType  corev1.HostPathType `json:"pathType,omitempty"`
}

// Disableable is the dns and proxy add-on sections.
type Disableable struct {
	Disabled bool `json:"disabled,omitempty"`
}

// encryptionAlgorithms maps kforge's key_algorithm names to kubeadm's.
var encryptionAlgorithms = map[string]string{
	config.KeyECDSAP256: "ECDSA-P256",
	config.KeyRSA2048:   "RSA-2048",
	config.KeyRSA3072:   "RSA-3072",
	config.KeyRSA4096:   "RSA-4096",
}

// NewClusterConfiguration describes the validated cluster c as kubeadm's
// ClusterConfiguration; certDir is the certificate directory as the hosts see it.
func NewClusterConfiguration(c *config.Cluster, certDir string) (*ClusterConfiguration, error) {
	alg, ok := encryptionAlgorithms[c.Certificates.KeyAlgorithm]
	if !ok {
		return nil, fmt.Errorf("describing the cluster for kubeadm: key algorithm %q has no kubeadm name", c.Certificates.KeyAlgorithm)
	}
	cc := &ClusterConfiguration{
		APIVersion:        KubeadmAPIVersion,
		Kind:              "ClusterConfiguration",
		ClusterName:       c.Name,
		KubernetesVersion: c.KubernetesVersion,
		ImageRepository:   c.ImageRepository,
		CertificatesDir:   certDir,
		Networking: Networking{
			ServiceSubnet: c.Networking.ServiceCIDR,
			PodSubnet:     c.Networking.PodCIDR,
			DNSDomain:     c.Networking.DNSDomain,
		},
		APIServer: APIServer{
			ControlPlaneComponent: component(c.APIServer.ExtraArgs, c.APIServer.ExtraVolumes),
			CertSANs:              slices.Clone(c.APIServer.CertSANs),
		},
		ControllerManager:   component(c.ControllerManager.ExtraArgs, c.ControllerManager.ExtraVolumes),
		Scheduler:           component(c.Scheduler.ExtraArgs, c.Scheduler.ExtraVolumes),
		DNS:                 Disableable{Disabled: c.Addons.DNS.Disabled},
		Proxy:               Disableable{Disabled: c.Addons.KubeProxy.Disabled},
		EncryptionAlgorithm: alg,
	}
	// The endpoint every kubeconfig and cluster-info point at. kubeadm refuses to join a
	// control-plane node to a cluster without one, so write the effective endpoint even
	// when cluster.toml leaves it to the first control-plane host.
	if h, p := c.Endpoint(); h != "" {
		cc.ControlPlaneEndpoint = net.JoinHostPort(h, strconv.Itoa(p))
	}
	if d := c.Certificates.CAValidity.Duration; d > 0 {
		cc.CACertificateValidityPeriod = &metav1.Duration{Duration: d}
	}
	if d := c.Certificates.CertValidity.Duration; d > 0 {
		cc.CertificateValidityPeriod = &metav1.Duration{Duration: d}
	}
	switch {
	case c.Etcd.Local != nil:
		cc.Etcd.Local = &LocalEtcd{
			DataDir:        c.Etcd.Local.DataDir,
			ExtraArgs:      args(c.Etcd.Local.ExtraArgs),
			ServerCertSANs: slices.Clone(c.Etcd.Local.ServerCertSANs),
			PeerCertSANs:   slices.Clone(c.Etcd.Local.PeerCertSANs),
		}
	case c.Etcd.External != nil:
		cc.Etcd.External = &ExternalEtcd{
			Endpoints: slices.Clone(c.Etcd.External.Endpoints),
			CAFile:    c.Etcd.External.CAFile,
			CertFile:  c.Etcd.External.CertFile,
			KeyFile:   c.Etcd.External.KeyFile,
		}
	default:
		return nil, fmt.Errorf("describing the cluster for kubeadm: etcd is neither local nor external")
	}
	return cc, nil
}

// Marshal renders the ClusterConfiguration as YAML, keys sorted.
func (cc *ClusterConfiguration) Marshal() ([]byte, error) {
	out, err := yaml.Marshal(cc)
	if err != nil {
		return nil, fmt.Errorf("encoding the ClusterConfiguration: %w", err)
	}
	return out, nil
}

// KubeadmConfig returns the ConfigMap kube-system/kubeadm-config for cluster c.
func KubeadmConfig(c *config.Cluster, certDir string) (*corev1.ConfigMap, error) {
	cc, err := NewClusterConfiguration(c, certDir)
	if err != nil {
		return nil, err
	}
	data, err := cc.Marshal()
	if err != nil {
		return nil, err
	}
	kf, err := config.EncodeShared(c)
	if err != nil {
		return nil, err
	}
	cm := configMap(NamespaceSystem, KubeadmConfigName, ClusterConfigurationKey, data)
	cm.Data[KforgeConfigKey] = string(kf)
	return cm, nil
}

// KubeadmConfigObjects are what init's upload-config/kubeadm phase stores, and kforge up
// stores again after a run: the kubeadm-config ConfigMap for c (KubeadmConfig) and the RBAC
// that lets joining nodes read it.
func KubeadmConfigObjects(c *config.Cluster, certDir string) ([]runtime.Object, error) {
	cm, err := KubeadmConfig(c, certDir)
	if err != nil {
		return nil, err
	}
	return append([]runtime.Object{cm}, KubeadmConfigRBAC()...), nil
}

// KforgeConfigKey is the key of kubeadm-config under which kforge keeps the cluster
// configuration joining nodes need (config.EncodeShared: no SSH settings, bundle path or
// one host's own settings), beside the ClusterConfiguration a stock kubeadm reads. The
// joining nodes' RBAC already lets them read it, and kubeadm ignores it.
const KforgeConfigKey = "kforge.toml"

// ErrNoKforgeConfig means kubeadm-config holds no kforge configuration: the cluster was not
// made by kforge (or by a kforge before it stored one).
var ErrNoKforgeConfig = errors.New("kubeadm-config holds no kforge configuration")

// ClusterFromKubeadmConfig reads the cluster configuration kforge stored in the
// kubeadm-config ConfigMap.
func ClusterFromKubeadmConfig(cm *corev1.ConfigMap) (*config.Cluster, error) {
	text, ok := cm.Data[KforgeConfigKey]
	if !ok {
		return nil, fmt.Errorf("ConfigMap %s/%s: %w (key %s)", cm.Namespace, cm.Name, ErrNoKforgeConfig, KforgeConfigKey)
	}
	c, err := config.Decode([]byte(text), cm.Namespace+"/"+cm.Name+"["+KforgeConfigKey+"]")
	if err != nil {
		return nil, fmt.Errorf("reading the cluster configuration stored in the cluster: %w", err)
	}
	return c, nil
}

// Kubelet configuration API, which the kubelet-config ConfigMap must hold.
const (
	KubeletAPIVersion = "kubelet.config.k8s.io/v1beta1"
	KubeletKind       = "KubeletConfiguration"
)

// KubeletConfig returns the ConfigMap kube-system/kubelet-config holding kubeletYAML, the
// cluster-wide KubeletConfiguration. It checks that the YAML is one.
func KubeletConfig(kubeletYAML []byte) (*corev1.ConfigMap, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(kubeletYAML, &tm); err != nil {
		return nil, fmt.Errorf("reading the kubelet configuration: %w", err)
	}
	if tm.APIVersion != KubeletAPIVersion || tm.Kind != KubeletKind {
		return nil, fmt.Errorf("reading the kubelet configuration: it is apiVersion %q kind %q, want %s %s",
			tm.APIVersion, tm.Kind, KubeletAPIVersion, KubeletKind)
	}
	return configMap(NamespaceSystem, KubeletConfigName, KubeletConfigKey, kubeletYAML), nil
}

func configMap(ns, name, key string, data []byte) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Data:       map[string]string{key: string(data)},
	}
}

func component(extra map[string]string, vols []config.HostPathMount) ControlPlaneComponent {
	cc := ControlPlaneComponent{ExtraArgs: args(extra)}
	for _, v := range vols {
		cc.ExtraVolumes = append(cc.ExtraVolumes, HostPathMount{
			Name:      v.Name,
			HostPath:  v.HostPath,
			MountPath: v.MountPath,
			ReadOnly:  v.ReadOnly,
			PathType:  corev1.HostPathType(v.PathType),
		})
	}
	return cc
}

// args turns a flag map into kubeadm's list form, sorted by name so the YAML is stable.
func args(m map[string]string) []Arg {
	var out []Arg
	for k, v := range m {
		out = append(out, Arg{Name: k, Value: v})
	}
	slices.SortFunc(out, func(a, b Arg) int { return strings.Compare(a.Name, b.Name) })
	return out
}
