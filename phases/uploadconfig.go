package phases

import (
	"context"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kforge/kforge/bootstrap"
)

// UploadConfigPhase stores the cluster's kubeadm ClusterConfiguration and KubeletConfiguration
// in kube-system, where joining nodes (kforge's or a stock kubeadm's) and kubelets read them.
func UploadConfigPhase() Phase {
	return Phase{
		Name:  "upload-config",
		Short: "Upload the cluster and kubelet configurations for joining nodes",
		Phases: []Phase{
			{
				Name:  "kubeadm",
				Short: "Upload the ClusterConfiguration to ConfigMap kube-system/kubeadm-config",
				Run:   runUploadKubeadmConfig,
			},
			{
				Name:  "kubelet",
				Short: "Upload the KubeletConfiguration to ConfigMap kube-system/kubelet-config",
				Run:   runUploadKubeletConfig,
			},
		},
	}
}

func runUploadKubeadmConfig(ctx context.Context, d *Data) error {
	const phase = "upload-config/kubeadm"
	cm, err := bootstrap.KubeadmConfig(d.Cluster, d.CertDir)
	if err != nil {
		return err
	}
	cs, err := clusterClient(ctx, d, phase)
	if err != nil {
		return err
	}
	return ensureObjects(ctx, d, phase, cs, append([]runtime.Object{cm}, bootstrap.KubeadmConfigRBAC()...)...)
}

func runUploadKubeletConfig(ctx context.Context, d *Data) error {
	const phase = "upload-config/kubelet"
	data, err := uploadedKubeletConfig(d)
	if err != nil {
		return err
	}
	cm, err := bootstrap.KubeletConfig(data)
	if err != nil {
		return err
	}
	cs, err := clusterClient(ctx, d, phase)
	if err != nil {
		return err
	}
	return ensureObjects(ctx, d, phase, cs, append([]runtime.Object{cm}, bootstrap.KubeletConfigRBAC()...)...)
}

// uploadedKubeletConfig is the KubeletConfiguration kubelet-start built in this run, else
// the one it wrote on an earlier run.
func uploadedKubeletConfig(d *Data) ([]byte, error) {
	if d.BootstrapData.KubeletConfigYAML != nil {
		return d.BootstrapData.KubeletConfigYAML, nil
	}
	path := d.KubeletConfigPath
	if path == "" {
		path = DefaultKubeletConfig
	}
	data, err := os.ReadFile(d.Path(path))
	if err != nil {
		return nil, fmt.Errorf("reading the kubelet configuration %s (run the kubelet-start phase first): %w", path, err)
	}
	return data, nil
}
