package phases

import (
	"context"
	"fmt"

	"github.com/kforge/kforge/bootstrap"
	"k8s.io/apimachinery/pkg/runtime"
)

// UploadConfigPhase stores the cluster's kubeadm ClusterConfiguration and KubeletConfiguration
// in kube-system, where joining nodes (kforge's or a stock kubeadm's) and kubelets read them.
//
// Reads Data.Cluster, Data.Node, Data.Facts and Data.Client.
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
	objs, err := bootstrap.KubeadmConfigObjects(d.Cluster, d.CertDir)
	if err != nil {
		return err
	}
	cs, err := clusterClient(ctx, d)
	if err != nil {
		return err
	}
	return ensureObjects(ctx, d, cs, objs...)
}

func runUploadKubeletConfig(ctx context.Context, d *Data) error {
	data, err := uploadedKubeletConfig(d)
	if err != nil {
		return err
	}
	cm, err := bootstrap.KubeletConfig(data)
	if err != nil {
		return err
	}
	cs, err := clusterClient(ctx, d)
	if err != nil {
		return err
	}
	return ensureObjects(ctx, d, cs, append([]runtime.Object{cm}, bootstrap.KubeletConfigRBAC()...)...)
}

// uploadedKubeletConfig is the KubeletConfiguration kubelet-start gives this node, which
// joining nodes start from.
func uploadedKubeletConfig(d *Data) ([]byte, error) {
	data, err := KubeletConfigYAML(d)
	if err != nil {
		return nil, fmt.Errorf("building the kubelet configuration to upload: %w", err)
	}
	return data, nil
}
