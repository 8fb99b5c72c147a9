package phases

import (
	"context"

	"github.com/kforge/kforge/kubeconfig"
)

// joinKubeconfigPhase writes the kubeconfig files of a joining control-plane host.
//
// Reads Data.Cluster, Data.Node, Data.KubeconfigDir and the CA on disk.
func joinKubeconfigPhase() Phase {
	return Phase{
		Name:  "kubeconfig",
		Short: "Generate the admin, controller-manager and scheduler kubeconfig files",
		Run:   runJoinKubeconfigs,
	}
}

// joinKubeconfigs are the kubeconfig files a joining control-plane host writes: not
// super-admin.conf (init host only) and not kubelet.conf (the TLS bootstrap makes it).
var joinKubeconfigs = []string{"admin", "controller-manager", "scheduler"}

func runJoinKubeconfigs(_ context.Context, d *Data) error {
	for _, s := range kubeconfig.Specs(d.Node.Name) {
		for _, name := range joinKubeconfigs {
			if s.Name == name {
				if err := ensureKubeconfig(d, s); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
