package bootstrap

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/internal/testutil"
)

func testCluster(edit func(c *config.Cluster)) *config.Cluster {
	c := &config.Cluster{Hosts: []config.Host{
		{Name: "cp1", Address: "192.0.2.10", Roles: []string{config.RoleControlPlane}},
		{Name: "w1", Address: "192.0.2.20", Roles: []string{config.RoleWorker}},
	}}
	if edit != nil {
		edit(c)
	}
	config.SetDefaults(c)
	return c
}

func TestKubeadmConfigGolden(t *testing.T) {
	tests := []struct {
		name   string
		golden string
		edit   func(c *config.Cluster)
	}{
		{name: "defaults, local etcd", golden: "kubeadm-config-local.yaml"},
		{
			name:   "external etcd, overrides, RSA",
			golden: "kubeadm-config-external.yaml",
			edit: func(c *config.Cluster) {
				c.Name = "prod"
				c.ControlPlaneEndpoint = "lb.example.com:8443"
				c.ImageRepository = "registry.example.com/k8s"
				c.Etcd.External = &config.ExternalEtcd{
					Endpoints: []string{"https://10.0.0.1:2379", "https://10.0.0.2:2379"},
					CAFile:    "/etc/etcd/ca.crt", CertFile: "/etc/etcd/client.crt", KeyFile: "/etc/etcd/client.key",
				}
				c.Certificates.KeyAlgorithm = config.KeyRSA2048
				c.Certificates.CertValidity = config.Duration{Duration: 90 * 24 * time.Hour}
				c.APIServer.CertSANs = []string{"api.example.com", "10.0.0.100"}
				c.APIServer.ExtraArgs = map[string]string{"v": "2", "audit-log-path": "/var/log/audit.log"}
				c.APIServer.ExtraVolumes = []config.HostPathMount{{Name: "audit", HostPath: "/var/log", MountPath: "/var/log", PathType: "DirectoryOrCreate"}}
				c.ControllerManager.ExtraArgs = map[string]string{"node-monitor-grace-period": "20s"}
				c.Addons.KubeProxy.Disabled = true
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cm, err := KubeadmConfig(testCluster(tc.edit), "/etc/kubernetes/pki")
			if err != nil {
				t.Fatal(err)
			}
			if cm.Namespace != "kube-system" || cm.Name != "kubeadm-config" {
				t.Errorf("ConfigMap is %s/%s, want kube-system/kubeadm-config", cm.Namespace, cm.Name)
			}
			got, ok := cm.Data["ClusterConfiguration"]
			if !ok {
				t.Fatalf("no ClusterConfiguration key; keys: %v", cm.Data)
			}
			testutil.Golden(t, tc.golden, []byte(got))
		})
	}
}

// TestClusterConfigurationFields reads the YAML back as kubeadm would, by field name, so a
// renamed JSON tag fails here even if the golden file is rewritten.
func TestClusterConfigurationFields(t *testing.T) {
	cm, err := KubeadmConfig(testCluster(func(c *config.Cluster) {
		c.Scheduler.ExtraArgs = map[string]string{"b": "2", "a": "1"}
	}), "/etc/kubernetes/pki")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["ClusterConfiguration"]), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"apiVersion":           "kubeadm.k8s.io/v1beta4",
		"kind":                 "ClusterConfiguration",
		"clusterName":          "kubernetes",
		"kubernetesVersion":    config.DefaultKubernetesVersion,
		"controlPlaneEndpoint": "192.0.2.10:6443",
		"imageRepository":      "registry.k8s.io",
		"certificatesDir":      "/etc/kubernetes/pki",
		"networking": map[string]any{
			"podSubnet": "10.244.0.0/16", "serviceSubnet": "10.96.0.0/12", "dnsDomain": "cluster.local",
		},
		"etcd":              map[string]any{"local": map[string]any{"dataDir": "/var/lib/etcd"}},
		"apiServer":         map[string]any{},
		"controllerManager": map[string]any{},
		"scheduler": map[string]any{"extraArgs": []any{
			map[string]any{"name": "a", "value": "1"},
			map[string]any{"name": "b", "value": "2"},
		}},
		"dns":                         map[string]any{},
		"proxy":                       map[string]any{},
		"caCertificateValidityPeriod": "87600h0m0s",
		"certificateValidityPeriod":   "8760h0m0s",
		"encryptionAlgorithm":         "ECDSA-P256",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ClusterConfiguration (-want +got):\n%s", diff)
	}
}

func TestKubeadmConfigRejectsUnknownKeyAlgorithm(t *testing.T) {
	_, err := KubeadmConfig(testCluster(func(c *config.Cluster) { c.Certificates.KeyAlgorithm = "dsa" }), "/pki")
	if err == nil || !strings.Contains(err.Error(), `key algorithm "dsa"`) {
		t.Fatalf("error = %v, want one naming the key algorithm", err)
	}
}

func TestKubeletConfig(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr string
	}{
		{name: "kubelet configuration", yaml: "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\n"},
		{name: "other kind", yaml: "apiVersion: v1\nkind: ConfigMap\n", wantErr: `it is apiVersion "v1" kind "ConfigMap"`},
		{name: "not yaml", yaml: "\t{", wantErr: "reading the kubelet configuration"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cm, err := KubeletConfig([]byte(tc.yaml))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"kubelet": tc.yaml}
			if diff := cmp.Diff(want, cm.Data); diff != "" {
				t.Errorf("data (-want +got):\n%s", diff)
			}
			if cm.Namespace != "kube-system" || cm.Name != "kubelet-config" {
				t.Errorf("ConfigMap is %s/%s, want kube-system/kubelet-config", cm.Namespace, cm.Name)
			}
		})
	}
}

func TestKforgeConfigRoundTrip(t *testing.T) {
	c := testCluster(func(c *config.Cluster) { c.Addons.DNS.Upstreams = []string{"10.0.0.1"} })
	cm, err := KubeadmConfig(c, "/etc/kubernetes/pki")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ClusterFromKubeadmConfig(cm)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, got); diff != "" {
		t.Errorf("stored cluster configuration (-want +got):\n%s", diff)
	}
	delete(cm.Data, KforgeConfigKey)
	if _, err := ClusterFromKubeadmConfig(cm); !errors.Is(err, ErrNoKforgeConfig) {
		t.Errorf("without the key: err = %v, want ErrNoKforgeConfig", err)
	}
}

// TestKforgeConfigHoldsNothingHostLocal checks that the configuration stored in
// kubeadm-config, which every node and bootstrap token can read, holds none of the
// operator's SSH settings, the bundle path or one host's own settings, and that it still
// holds everything a joining node reads from it.
func TestKforgeConfigHoldsNothingHostLocal(t *testing.T) {
	c := testCluster(func(c *config.Cluster) {
		c.Bundle = "/home/operator/kforge-bundle"
		c.Kubelet.ExtraArgs = map[string]string{"v": "3"}
		c.Hosts = []config.Host{
			{Name: "cp1", Address: "cp1.ops.example.com", InternalAddress: "10.0.0.10", Roles: []string{config.RoleControlPlane},
				KubeletExtraArgs: map[string]string{"node-labels-file": "/srv/cp1-only"},
				SSH:              config.SSH{User: "deployer", Port: 2222, Key: "/home/operator/.ssh/id_cluster", KnownHosts: "/home/operator/kh", Bastion: "jumper@bastion.example.com:2200"}},
			{Name: "w1", Address: "203.0.113.20", InternalAddress: "10.0.0.20", Roles: []string{config.RoleWorker},
				Labels: map[string]string{"site": "w1-only-label"}, Taints: []string{"dedicated=w1-only-taint:NoSchedule"},
				SSH: config.SSH{User: "deployer", Bastion: "jumper@bastion.example.com"}},
		}
	})
	cm, err := KubeadmConfig(c, "/etc/kubernetes/pki")
	if err != nil {
		t.Fatal(err)
	}
	stored := cm.Data[KforgeConfigKey]
	for _, secret := range []string{"deployer", "2222", "id_cluster", "/home/operator", "bastion", "jumper", "known_hosts", "kforge-bundle",
		"ops.example.com", "203.0.113.20", "w1-only-label", "w1-only-taint", "cp1-only", "[hosts.ssh]", "user ="} {
		if strings.Contains(stored, secret) {
			t.Errorf("the stored configuration holds %q:\n%s", secret, stored)
		}
	}
	got, err := ClusterFromKubeadmConfig(cm)
	if err != nil {
		t.Fatalf("reading the stored configuration back: %v\n%s", err, stored)
	}
	// What join reads: the endpoint, the cluster-wide settings, and the other hosts' names,
	// node addresses and roles.
	h, p := got.Endpoint()
	wh, wp := c.Endpoint()
	if h != wh || p != wp {
		t.Errorf("stored endpoint %s:%d, want %s:%d", h, p, wh, wp)
	}
	if diff := cmp.Diff(c.Networking, got.Networking); diff != "" {
		t.Errorf("networking (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(c.Kubelet, got.Kubelet); diff != "" {
		t.Errorf("kubelet (-want +got):\n%s", diff)
	}
	var hosts []string
	for _, h := range got.Hosts {
		hosts = append(hosts, h.Name+"="+h.NodeIP()+" "+strings.Join(h.Roles, ","))
	}
	if diff := cmp.Diff([]string{"cp1=10.0.0.10 control-plane", "w1=10.0.0.20 worker"}, hosts); diff != "" {
		t.Errorf("stored hosts (-want +got):\n%s", diff)
	}
}
