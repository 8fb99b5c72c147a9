package phases

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"
)

// kubeadmClusterConfigMaps are kubeadm-config and kubelet-config as a stock kubeadm v1.34
// init leaves them (the bootstrap package's testdata).
func kubeadmClusterConfigMaps(t *testing.T) []*corev1.ConfigMap {
	t.Helper()
	var out []*corev1.ConfigMap
	for _, name := range []string{"kubeadm-config.yaml", "kubelet-config.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "bootstrap", "testdata", "kubeadm-v1.34", name))
		if err != nil {
			t.Fatal(err)
		}
		var cm corev1.ConfigMap
		if err := yaml.UnmarshalStrict(b, &cm); err != nil {
			t.Fatal(err)
		}
		out = append(out, &cm)
	}
	return out
}

// TestClusterConfigFromKubeadmCluster is a join against a cluster made by stock kubeadm
// init: kubeadm-config holds only kubeadm's ClusterConfiguration, and the configuration
// comes from it and kubelet-config, as kubeadm join takes it.
func TestClusterConfigFromKubeadmCluster(t *testing.T) {
	tests := []struct {
		name         string
		edit         func(kubeadmCM, kubeletCM *corev1.ConfigMap) []runtime.Object
		wantEndpoint string
		wantErr      string
	}{
		{
			name:         "kubeadm init with a control-plane endpoint",
			wantEndpoint: "cp.example.com:6443",
		},
		{
			name: "kubeadm init without one: the discovered API server",
			edit: func(kubeadmCM, kubeletCM *corev1.ConfigMap) []runtime.Object {
				kubeadmCM.Data["ClusterConfiguration"] = strings.Replace(kubeadmCM.Data["ClusterConfiguration"], "controlPlaneEndpoint: cp.example.com:6443\n", "", 1)
				return []runtime.Object{kubeadmCM, kubeletCM}
			},
			wantEndpoint: "192.0.2.10:6443",
		},
		{
			name:    "no kubeadm-config",
			edit:    func(_, kubeletCM *corev1.ConfigMap) []runtime.Object { return []runtime.Object{kubeletCM} },
			wantErr: "no ConfigMap kube-system/kubeadm-config: it was set up by neither kforge init nor kubeadm init",
		},
		{
			name:    "no kubelet-config",
			edit:    func(kubeadmCM, _ *corev1.ConfigMap) []runtime.Object { return []runtime.Object{kubeadmCM} },
			wantErr: "no ConfigMap kube-system/kubelet-config",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cms := kubeadmClusterConfigMaps(t)
			objs := []runtime.Object{cms[0], cms[1]}
			if tc.edit != nil {
				objs = tc.edit(cms[0], cms[1])
			}
			disc := &Discovered{Server: "https://192.0.2.10:6443", Client: fake.NewClientset(objs...)}
			s, err := ClusterConfigFromCluster(t.Context(), disc)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := s.Cluster
			if !s.FromKubeadm || c.ControlPlaneEndpoint != tc.wantEndpoint || c.Kubelet.CgroupDriver != "systemd" || c.Networking.PodCIDR != "10.244.0.0/16" {
				t.Errorf("derived configuration: from kubeadm %v, endpoint %q, cgroup driver %q, pod CIDR %q; want true, %q, systemd, 10.244.0.0/16",
					s.FromKubeadm, c.ControlPlaneEndpoint, c.Kubelet.CgroupDriver, c.Networking.PodCIDR, tc.wantEndpoint)
			}
		})
	}
}
