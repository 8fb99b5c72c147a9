package bootstrap

import (
	"net"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/kforge/kforge/config"
)

// The types below are kubeadm's v1beta4 ClusterConfiguration, field for field as kubeadm
// v1.34 declares it (cmd/kubeadm/app/apis/kubeadm/v1beta4/types.go), written out here
// because kubeadm's API types are not a module of their own. Decoding what kforge writes
// into them strictly proves that every key kforge writes is one kubeadm knows, with the
// type kubeadm expects.
type kubeadmClusterConfiguration struct {
	metav1.TypeMeta      `json:",inline"`
	Etcd                 kubeadmEtcd                  `json:"etcd,omitempty"`
	Networking           kubeadmNetworking            `json:"networking,omitempty"`
	KubernetesVersion    string                       `json:"kubernetesVersion,omitempty"`
	ControlPlaneEndpoint string                       `json:"controlPlaneEndpoint,omitempty"`
	APIServer            kubeadmAPIServer             `json:"apiServer,omitempty"`
	ControllerManager    kubeadmControlPlaneComponent `json:"controllerManager,omitempty"`
	Scheduler            kubeadmControlPlaneComponent `json:"scheduler,omitempty"`
	DNS                  struct {
		kubeadmImageMeta `json:",inline"`
		Disabled         bool `json:"disabled,omitempty"`
	} `json:"dns,omitempty"`
	Proxy struct {
		Disabled bool `json:"disabled,omitempty"`
	} `json:"proxy,omitempty"`
	CertificatesDir             string           `json:"certificatesDir,omitempty"`
	ImageRepository             string           `json:"imageRepository,omitempty"`
	FeatureGates                map[string]bool  `json:"featureGates,omitempty"`
	ClusterName                 string           `json:"clusterName,omitempty"`
	EncryptionAlgorithm         string           `json:"encryptionAlgorithm,omitempty"`
	CertificateValidityPeriod   *metav1.Duration `json:"certificateValidityPeriod,omitempty"`
	CACertificateValidityPeriod *metav1.Duration `json:"caCertificateValidityPeriod,omitempty"`
}

type kubeadmImageMeta struct {
	ImageRepository string `json:"imageRepository,omitempty"`
	ImageTag        string `json:"imageTag,omitempty"`
}

type kubeadmArg struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type kubeadmEnvVar struct {
	corev1.EnvVar `json:",inline"`
}

type kubeadmControlPlaneComponent struct {
	ExtraArgs    []kubeadmArg    `json:"extraArgs,omitempty"`
	ExtraVolumes []kubeadmVolume `json:"extraVolumes,omitempty"`
	ExtraEnvs    []kubeadmEnvVar `json:"extraEnvs,omitempty"`
}

type kubeadmVolume struct {
	Name      string              `json:"name"`
	HostPath  string              `json:"hostPath"`
	MountPath string              `json:"mountPath"`
	ReadOnly  bool                `json:"readOnly,omitempty"`
	PathType  corev1.HostPathType `json:"pathType,omitempty"`
}

type kubeadmAPIServer struct {
	kubeadmControlPlaneComponent `json:",inline"`
	CertSANs                     []string `json:"certSANs,omitempty"`
}

type kubeadmNetworking struct {
	ServiceSubnet string `json:"serviceSubnet,omitempty"`
	PodSubnet     string `json:"podSubnet,omitempty"`
	DNSDomain     string `json:"dnsDomain,omitempty"`
}

type kubeadmEtcd struct {
	Local *struct {
		kubeadmImageMeta `json:",inline"`
		DataDir          string          `json:"dataDir"`
		ExtraArgs        []kubeadmArg    `json:"extraArgs,omitempty"`
		ExtraEnvs        []kubeadmEnvVar `json:"extraEnvs,omitempty"`
		ServerCertSANs   []string        `json:"serverCertSANs,omitempty"`
		PeerCertSANs     []string        `json:"peerCertSANs,omitempty"`
	} `json:"local,omitempty"`
	External *struct {
		Endpoints []string `json:"endpoints"`
		CAFile    string   `json:"caFile"`
		CertFile  string   `json:"certFile"`
		KeyFile   string   `json:"keyFile"`
	} `json:"external,omitempty"`
}

// kubeadmProblems applies the rules of kubeadm's ValidateClusterConfiguration that concern
// the fields kforge writes.
func kubeadmProblems(c *kubeadmClusterConfiguration) []string {
	var p []string
	if c.APIVersion != "kubeadm.k8s.io/v1beta4" || c.Kind != "ClusterConfiguration" {
		p = append(p, "apiVersion/kind: "+c.APIVersion+" "+c.Kind)
	}
	if !strings.HasPrefix(c.KubernetesVersion, "v1.") {
		p = append(p, "kubernetesVersion: "+c.KubernetesVersion)
	}
	for _, e := range validation.IsDNS1123Subdomain(c.Networking.DNSDomain) {
		p = append(p, "networking.dnsDomain: "+e)
	}
	for name, s := range map[string]string{"serviceSubnet": c.Networking.ServiceSubnet, "podSubnet": c.Networking.PodSubnet} {
		if _, err := netip.ParsePrefix(s); s != "" && err != nil {
			p = append(p, "networking."+name+": "+err.Error())
		}
	}
	if !path.IsAbs(c.CertificatesDir) {
		p = append(p, "certificatesDir is not absolute: "+c.CertificatesDir)
	}
	if ep := c.ControlPlaneEndpoint; ep != "" {
		if _, _, err := net.SplitHostPort(ep); err != nil {
			p = append(p, "controlPlaneEndpoint: "+err.Error())
		}
	}
	if c.ImageRepository == "" || strings.Contains(c.ImageRepository, "://") {
		p = append(p, "imageRepository: "+c.ImageRepository)
	}
	switch e := c.Etcd; {
	case (e.Local == nil) == (e.External == nil):
		p = append(p, "etcd: want exactly one of local and external")
	case e.Local != nil:
		if !path.IsAbs(e.Local.DataDir) {
			p = append(p, "etcd.local.dataDir is not absolute: "+e.Local.DataDir)
		}
	case e.External != nil:
		for _, ep := range e.External.Endpoints {
			if u, err := url.Parse(ep); err != nil || u.Scheme != "https" || u.Host == "" {
				p = append(p, "etcd.external.endpoints: "+ep)
			}
		}
		for _, f := range []string{e.External.CAFile, e.External.CertFile, e.External.KeyFile} {
			if f != "" && !path.IsAbs(f) {
				p = append(p, "etcd.external file is not absolute: "+f)
			}
		}
	}
	for _, comp := range []kubeadmControlPlaneComponent{c.APIServer.kubeadmControlPlaneComponent, c.ControllerManager, c.Scheduler} {
		for _, a := range comp.ExtraArgs {
			if a.Name == "" {
				p = append(p, "extraArgs: an argument has no name")
			}
		}
	}
	if !slices.Contains([]string{"ECDSA-P256", "ECDSA-P384", "RSA-2048", "RSA-3072", "RSA-4096"}, c.EncryptionAlgorithm) {
		p = append(p, "encryptionAlgorithm: "+c.EncryptionAlgorithm)
	}
	return p
}

// TestKubeadmReadsWhatKforgeWrites is the other direction of the compatibility contract: the
// ClusterConfiguration kforge init puts in kubeadm-config is one a stock kubeadm reads
// (kubeadm join, kubeadm upgrade): strictly decoded into kubeadm's schema and valid by
// kubeadm's rules, with the values kforge meant.
func TestKubeadmReadsWhatKforgeWrites(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(c *config.Cluster)
	}{
		{name: "defaults"},
		{name: "external etcd, overrides, RSA", edit: func(c *config.Cluster) {
			c.ControlPlaneEndpoint = "lb.example.com:8443"
			c.ImageRepository = "registry.example.com/k8s"
			c.Etcd.External = &config.ExternalEtcd{Endpoints: []string{"https://10.0.0.1:2379"}, CAFile: "/etc/etcd/ca.crt", CertFile: "/etc/etcd/c.crt", KeyFile: "/etc/etcd/c.key"}
			c.Certificates.KeyAlgorithm = config.KeyRSA4096
			c.APIServer.CertSANs = []string{"api.example.com"}
			c.APIServer.ExtraArgs = map[string]string{"v": "2"}
			c.APIServer.ExtraVolumes = []config.HostPathMount{{Name: "audit", HostPath: "/var/log", MountPath: "/var/log", PathType: "DirectoryOrCreate"}}
			c.Scheduler.ExtraArgs = map[string]string{"v": "3"}
			c.Addons.DNS.Disabled = true
			c.Addons.KubeProxy.Disabled = true
		}},
		{name: "local etcd with extra args and SANs", edit: func(c *config.Cluster) {
			c.Etcd.Local = &config.LocalEtcd{DataDir: "/srv/etcd", ExtraArgs: map[string]string{"quota-backend-bytes": "8589934592"}, ServerCertSANs: []string{"etcd.example.com"}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testCluster(tc.edit)
			cm, err := KubeadmConfig(c, "/etc/kubernetes/pki")
			if err != nil {
				t.Fatal(err)
			}
			var got kubeadmClusterConfiguration
			if err := yaml.UnmarshalStrict([]byte(cm.Data[ClusterConfigurationKey]), &got); err != nil {
				t.Fatalf("kubeadm cannot read the ClusterConfiguration kforge writes: %v\n%s", err, cm.Data[ClusterConfigurationKey])
			}
			for _, p := range kubeadmProblems(&got) {
				t.Errorf("kubeadm would refuse: %s", p)
			}
			h, port := c.Endpoint()
			for _, v := range []struct{ field, got, want string }{
				{"clusterName", got.ClusterName, c.Name},
				{"kubernetesVersion", got.KubernetesVersion, c.KubernetesVersion},
				{"controlPlaneEndpoint", got.ControlPlaneEndpoint, net.JoinHostPort(h, strconv.Itoa(port))},
				{"imageRepository", got.ImageRepository, c.ImageRepository},
				{"networking.podSubnet", got.Networking.PodSubnet, c.Networking.PodCIDR},
				{"networking.serviceSubnet", got.Networking.ServiceSubnet, c.Networking.ServiceCIDR},
				{"networking.dnsDomain", got.Networking.DNSDomain, c.Networking.DNSDomain},
				{"certificatesDir", got.CertificatesDir, "/etc/kubernetes/pki"},
				{"certificateValidityPeriod", got.CertificateValidityPeriod.Duration.String(), c.Certificates.CertValidity.Duration.String()},
				{"caCertificateValidityPeriod", got.CACertificateValidityPeriod.Duration.String(), c.Certificates.CAValidity.Duration.String()},
			} {
				if v.got != v.want {
					t.Errorf("%s = %q, want %q", v.field, v.got, v.want)
				}
			}
			if c.Etcd.Local != nil && (got.Etcd.Local == nil || got.Etcd.Local.DataDir != c.Etcd.Local.DataDir) {
				t.Errorf("etcd.local = %+v, want dataDir %s", got.Etcd.Local, c.Etcd.Local.DataDir)
			}
			if c.Etcd.External != nil && (got.Etcd.External == nil || !slices.Equal(got.Etcd.External.Endpoints, c.Etcd.External.Endpoints)) {
				t.Errorf("etcd.external = %+v, want endpoints %v", got.Etcd.External, c.Etcd.External.Endpoints)
			}
			if got.DNS.Disabled != c.Addons.DNS.Disabled || got.Proxy.Disabled != c.Addons.KubeProxy.Disabled {
				t.Errorf("dns.disabled %v proxy.disabled %v, want %v %v", got.DNS.Disabled, got.Proxy.Disabled, c.Addons.DNS.Disabled, c.Addons.KubeProxy.Disabled)
			}
		})
	}
}

// TestKubeadmSchemaIsStrict checks the check: a key kubeadm does not know, or a value of the
// wrong type, fails the strict decode.
func TestKubeadmSchemaIsStrict(t *testing.T) {
	cm, err := KubeadmConfig(testCluster(nil), "/etc/kubernetes/pki")
	if err != nil {
		t.Fatal(err)
	}
	base := cm.Data[ClusterConfigurationKey]
	for _, bad := range []string{
		base + "apiServerExtraArgs: {}\n",
		strings.Replace(base, "certificateValidityPeriod: 8760h0m0s", "certificateValidityPeriod: 1y", 1),
		strings.Replace(base, "dataDir: /var/lib/etcd", "dataDir: /var/lib/etcd\n    data_dir: /x", 1),
	} {
		var got kubeadmClusterConfiguration
		if err := yaml.UnmarshalStrict([]byte(bad), &got); err == nil {
			t.Errorf("strict decode accepted:\n%s", bad)
		}
	}
}
