package phases

import "context"

// upUploadConfigPhase stores the file's cluster configuration in kube-system/kubeadm-config
// after a run in which no host failed (fleet.StoreConfig), as init's upload-config does:
// joining nodes read it, and the next run's plan compares the file with it.
//
// Reads Data.Up's plan.
func upUploadConfigPhase(notDry func(*Data) (string, bool)) Phase {
	return Phase{
		Name:  "upload-config",
		Short: "Store the file's cluster configuration in kube-system/kubeadm-config, for joining nodes and the next plan",
		Skip:  notDry,
		Run: func(ctx context.Context, d *Data) error {
			if _, err := d.upPlan(ctx); err != nil {
				return err
			}
			return d.Up.fleet.StoreConfig(ctx)
		},
	}
}
