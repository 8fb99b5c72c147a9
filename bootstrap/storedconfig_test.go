package bootstrap

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/kforge/kforge/config"
)

// kubeadmConfigMaps reads the ConfigMaps a stock kubeadm v1.34 init leaves in kube-system,
// and lets a test edit the text of their data before they are decoded.
func kubeadmConfigMaps(t *testing.T, editCluster, editKubelet func(string) string) (kubeadmCM, kubeletCM *corev1.ConfigMap) {
	t.Helper()
	read := func(name, key string, edit func(string) string) *corev1.ConfigMap {
		b, err := os.ReadFile(filepath.Join("testdata", "kubeadm-v1.34", name))
		if err != nil {
			t.Fatal(err)
		}
		var cm corev1.ConfigMap
		if err := yaml.UnmarshalStrict(b, &cm); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if edit != nil {
			cm.Data[key] = edit(cm.Data[key])
		}
		return &cm
	}
	return read("kubeadm-config.yaml", ClusterConfigurationKey, editCluster),
		read("kubelet-config.yaml", KubeletConfigKey, editKubelet)
}

// replace returns an edit that replaces old (which must be present) with new.
func replace(t *testing.T, old, new string) func(string) string {
	return func(s string) string {
		t.Helper()
		if !strings.Contains(s, old) {
			t.Fatalf("the testdata has no %q", old)
		}
		return strings.Replace(s, old, new, 1)
	}
}

// kubeadmDefaults is the configuration a kubeadm v1.34 init with
// --control-plane-endpoint cp.example.com:6443 --pod-network-cidr 10.244.0.0/16 means.
func kubeadmDefaults(edit func(c *config.Cluster)) *config.Cluster {
	c := &config.Cluster{
		ControlPlaneEndpoint: "cp.example.com:6443",
		Certificates:         config.Certificates{KeyAlgorithm: config.KeyRSA2048},
		Kubelet:              config.Kubelet{CgroupDriver: "systemd"},
		// kubeadm's posture: none of kforge's [security] switches.
		Security: config.Security{
			EncryptSecrets: new(bool), RestrictAnonymous: new(bool), KubeProxyLocalEndpoints: new(bool),
			PodSecurity: "privileged", Profiling: true, Audit: config.Audit{Enabled: new(bool)},
		},
	}
	if edit != nil {
		edit(c)
	}
	config.SetDefaults(c)
	return c
}

func TestReadStoredClusterFromKubeadm(t *testing.T) {
	tests := []struct {
		name                      string
		editCluster, editKubelet  func(string) string
		want                      *config.Cluster
		wantCertDir, wantEndpoint string
	}{
		{
			name:         "kubeadm init defaults",
			want:         kubeadmDefaults(nil),
			wantCertDir:  "/etc/kubernetes/pki",
			wantEndpoint: "cp.example.com:6443",
		},
		{
			name: "no control-plane endpoint, other subnets, cert dir and cgroup driver",
			editCluster: func(s string) string {
				s = replace(t, "controlPlaneEndpoint: cp.example.com:6443\n", "")(s)
				s = replace(t, "serviceSubnet: 10.96.0.0/12", "serviceSubnet: 10.112.0.0/16")(s)
				s = replace(t, "dnsDomain: cluster.local", "dnsDomain: corp.internal")(s)
				return replace(t, "certificatesDir: /etc/kubernetes/pki", "certificatesDir: /srv/pki")(s)
			},
			editKubelet: func(s string) string {
				s = replace(t, "- 10.96.0.10", "- 10.112.0.10")(s)
				s = replace(t, "clusterDomain: cluster.local", "clusterDomain: corp.internal")(s)
				return replace(t, "cgroupDriver: systemd", "cgroupDriver: cgroupfs\nmaxPods: 50\nfailSwapOn: false\nserverTLSBootstrap: true\nsystemReserved:\n  cpu: 500m")(s)
			},
			want: kubeadmDefaults(func(c *config.Cluster) {
				c.ControlPlaneEndpoint = ""
				c.Networking.ServiceCIDR = "10.112.0.0/16"
				c.Networking.DNSDomain = "corp.internal"
				f := false
				c.Kubelet = config.Kubelet{CgroupDriver: "cgroupfs", MaxPods: 50, FailSwapOn: &f, ServerTLSBootstrap: true, SystemReserved: map[string]string{"cpu": "500m"}}
			}),
			wantCertDir: "/srv/pki",
		},
		{
			name: "external etcd, extra args and volumes, ECDSA, fields kforge does not know",
			editCluster: func(s string) string {
				s = replace(t, "etcd:\n  local:\n    dataDir: /var/lib/etcd\n",
					"etcd:\n  external:\n    caFile: /etc/etcd/ca.crt\n    certFile: /etc/etcd/c.crt\n    endpoints:\n    - https://10.0.0.1:2379\n    keyFile: /etc/etcd/c.key\n")(s)
				s = replace(t, "apiServer: {}", "apiServer:\n  certSANs:\n  - api.example.com\n  extraArgs:\n  - name: audit-log-path\n    value: /var/log/audit.log\n"+
					"  extraVolumes:\n  - hostPath: /var/log\n    mountPath: /var/log\n    name: audit\n    pathType: DirectoryOrCreate\n")(s)
				s = replace(t, "encryptionAlgorithm: RSA-2048", "encryptionAlgorithm: ECDSA-P256")(s)
				s = replace(t, "dns: {}", "dns:\n  imageTag: v1.12.1")(s)
				s = replace(t, "proxy: {}", "proxy:\n  disabled: true")(s)
				return s + "featureGates:\n  NodeLocalCRISocket: true\nsomeFieldOfAFutureKubeadm: 1\n"
			},
			want: kubeadmDefaults(func(c *config.Cluster) {
				c.Etcd.External = &config.ExternalEtcd{Endpoints: []string{"https://10.0.0.1:2379"}, CAFile: "/etc/etcd/ca.crt", CertFile: "/etc/etcd/c.crt", KeyFile: "/etc/etcd/c.key"}
				c.APIServer = config.APIServer{
					CertSANs:     []string{"api.example.com"},
					ExtraArgs:    map[string]string{"audit-log-path": "/var/log/audit.log"},
					ExtraVolumes: []config.HostPathMount{{Name: "audit", HostPath: "/var/log", MountPath: "/var/log", PathType: "DirectoryOrCreate"}},
				}
				c.Certificates.KeyAlgorithm = config.KeyECDSAP256
				c.Addons.KubeProxy.Disabled = true
			}),
			wantCertDir:  "/etc/kubernetes/pki",
			wantEndpoint: "cp.example.com:6443",
		},
		{
			name: "certificate lifetimes",
			editCluster: func(s string) string {
				s = replace(t, "caCertificateValidityPeriod: 87600h0m0s", "caCertificateValidityPeriod: 43800h0m0s")(s)
				return replace(t, "certificateValidityPeriod: 8760h0m0s", "certificateValidityPeriod: 2160h0m0s")(s)
			},
			want: kubeadmDefaults(func(c *config.Cluster) {
				c.Certificates.CAValidity.Duration = 43800 * time.Hour
				c.Certificates.CertValidity.Duration = 2160 * time.Hour
			}),
			wantCertDir:  "/etc/kubernetes/pki",
			wantEndpoint: "cp.example.com:6443",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kubeadmCM, kubeletCM := kubeadmConfigMaps(t, tc.editCluster, tc.editKubelet)
			got, err := ReadStoredCluster(kubeadmCM, kubeletCM)
			if err != nil {
				t.Fatal(err)
			}
			if !got.FromKubeadm {
				t.Error("FromKubeadm is false for a cluster without kforge.toml")
			}
			if got.CertificatesDir != tc.wantCertDir || got.KubeadmControlPlaneEndpoint != tc.wantEndpoint {
				t.Errorf("certificatesDir %q, controlPlaneEndpoint %q; want %q, %q", got.CertificatesDir, got.KubeadmControlPlaneEndpoint, tc.wantCertDir, tc.wantEndpoint)
			}
			if diff := cmp.Diff(tc.want, got.Cluster); diff != "" {
				t.Errorf("derived cluster configuration (-want +got):\n%s", diff)
			}
			// kubeadm shares no encryption configuration: a control plane joining its
			// cluster must not wait for one.
			for _, f := range SharedCertFiles(got.Cluster, tc.wantCertDir) {
				if f.Key == "encryption-config.yaml" {
					t.Errorf("a kubeadm cluster's shared files include %s", f.Key)
				}
			}
		})
	}
}

func TestReadStoredClusterFromKubeadmRefuses(t *testing.T) {
	tests := []struct {
		name                     string
		editCluster, editKubelet func(string) string
		noKubeletConfig          bool
		wantErr                  []string
	}{
		{
			name:        "clusterDNS elsewhere than kforge puts it",
			editKubelet: func(s string) string { return replace(t, "- 10.96.0.10", "- 169.254.20.10")(s) },
			wantErr:     []string{"clusterDNS [169.254.20.10] is not [10.96.0.10]"},
		},
		{
			name: "clusterDomain differs from dnsDomain",
			editKubelet: func(s string) string {
				return replace(t, "clusterDomain: cluster.local", "clusterDomain: other.local")(s)
			},
			wantErr: []string{`clusterDomain "other.local" differs from the ClusterConfiguration's networking.dnsDomain "cluster.local"`},
		},
		{
			name: "a key type kforge cannot make, extraEnvs and a repeated flag: all reported",
			editCluster: func(s string) string {
				s = replace(t, "encryptionAlgorithm: RSA-2048", "encryptionAlgorithm: ECDSA-P384")(s)
				s = replace(t, "scheduler: {}", "scheduler:\n  extraEnvs:\n  - name: HTTP_PROXY\n    value: http://proxy:3128\n")(s)
				return replace(t, "controllerManager: {}", "controllerManager:\n  extraArgs:\n  - name: v\n    value: \"2\"\n  - name: v\n    value: \"4\"\n")(s)
			},
			wantErr: []string{
				`encryptionAlgorithm "ECDSA-P384"`,
				"scheduler.extraEnvs is set",
				`controllerManager.extraArgs: flag "v" is given more than once`,
			},
		},
		{
			name:        "an older configuration API",
			editCluster: func(s string) string { return replace(t, "kubeadm.k8s.io/v1beta4", "kubeadm.k8s.io/v1beta3")(s) },
			wantErr:     []string{`apiVersion "kubeadm.k8s.io/v1beta3" kind "ClusterConfiguration"`},
		},
		{
			name: "a Kubernetes version this build does not support",
			editCluster: func(s string) string {
				return replace(t, "kubernetesVersion: v1.34.4", "kubernetesVersion: v1.20.0")(s)
			},
			wantErr: []string{`"v1.20.0" is not supported`},
		},
		{
			name:            "no kubelet-config",
			noKubeletConfig: true,
			wantErr:         []string{"no ConfigMap kube-system/kubelet-config"},
		},
		{
			name:        "kubelet-config holds something else",
			editKubelet: func(string) string { return "apiVersion: v1\nkind: Pod\n" },
			wantErr:     []string{`kube-system/kubelet-config[kubelet]: it is apiVersion "v1" kind "Pod"`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kubeadmCM, kubeletCM := kubeadmConfigMaps(t, tc.editCluster, tc.editKubelet)
			if tc.noKubeletConfig {
				kubeletCM = nil
			}
			_, err := ReadStoredCluster(kubeadmCM, kubeletCM)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not say %q", err, w)
				}
			}
		})
	}
}

func TestReadStoredClusterNeitherKforgeNorKubeadm(t *testing.T) {
	kubeadmCM, kubeletCM := kubeadmConfigMaps(t, nil, nil)
	delete(kubeadmCM.Data, ClusterConfigurationKey)
	_, err := ReadStoredCluster(kubeadmCM, kubeletCM)
	if err == nil || !strings.Contains(err.Error(), "holds neither kforge.toml nor ClusterConfiguration") {
		t.Fatalf("error = %v, want one saying kubeadm-config holds neither configuration", err)
	}
}

// TestReadStoredClusterKforge covers a cluster made by kforge init: kforge.toml is the
// configuration, and it must agree with the ClusterConfiguration kforge wrote beside it.
func TestReadStoredClusterKforge(t *testing.T) {
	c := testCluster(func(c *config.Cluster) { c.Addons.DNS.Upstreams = []string{"10.0.0.1"} })
	tests := []struct {
		name    string
		edit    func(cm *corev1.ConfigMap)
		wantErr []string
	}{
		{name: "as kforge init wrote it"},
		{name: "no ClusterConfiguration beside it", edit: func(cm *corev1.ConfigMap) { delete(cm.Data, ClusterConfigurationKey) }},
		{
			name: "ClusterConfiguration with fields kforge does not write",
			edit: func(cm *corev1.ConfigMap) {
				cm.Data[ClusterConfigurationKey] += "featureGates:\n  NodeLocalCRISocket: true\n"
			},
		},
		{
			name: "upgraded and re-addressed behind kforge's back",
			edit: func(cm *corev1.ConfigMap) {
				s := cm.Data[ClusterConfigurationKey]
				s = strings.Replace(s, "kubernetesVersion: "+config.DefaultKubernetesVersion, "kubernetesVersion: v1.34.9", 1)
				s = strings.Replace(s, "podSubnet: 10.244.0.0/16", "podSubnet: 10.32.0.0/12", 1)
				cm.Data[ClusterConfigurationKey] = s
			},
			wantErr: []string{
				"kforge.toml and ClusterConfiguration disagree",
				`kubernetesVersion: "v1.34.9" in ClusterConfiguration, "` + config.DefaultKubernetesVersion + `" in kforge.toml`,
				`networking: {"serviceSubnet":"10.96.0.0/12","podSubnet":"10.32.0.0/12"`,
			},
		},
		{
			name: "another control-plane endpoint",
			edit: func(cm *corev1.ConfigMap) {
				cm.Data[ClusterConfigurationKey] = strings.Replace(cm.Data[ClusterConfigurationKey],
					"controlPlaneEndpoint: 192.0.2.10:6443", "controlPlaneEndpoint: lb.example.com:6443", 1)
			},
			wantErr: []string{`controlPlaneEndpoint: "lb.example.com:6443" in ClusterConfiguration, "192.0.2.10:6443" in kforge.toml`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cm, err := KubeadmConfig(c, "/etc/kubernetes/pki")
			if err != nil {
				t.Fatal(err)
			}
			if tc.edit != nil {
				tc.edit(cm)
			}
			got, err := ReadStoredCluster(cm, nil)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatal("no error")
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q\ndoes not say %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.FromKubeadm {
				t.Error("FromKubeadm is set for a cluster with kforge.toml")
			}
			if diff := cmp.Diff(c, got.Cluster); diff != "" {
				t.Errorf("stored cluster configuration (-want +got):\n%s", diff)
			}
		})
	}
}
