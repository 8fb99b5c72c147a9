package phases

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/kforge/kforge/internal/fileutil"
	"github.com/kforge/kforge/kubeconfig"
	"github.com/kforge/kforge/kubelet"
	"github.com/kforge/kforge/service"
)

// joinKubeletStartPhase writes the cluster CA and bootstrap-kubelet.conf, then the kubelet's
// configuration, and starts the kubelet, which requests its client certificate with the
// token (TLS bootstrap).
//
// Reads Data.Join (Server, ClusterCA, AlreadyJoined), Data.Token and Data.Services.
func joinKubeletStartPhase() Phase {
	return Phase{
		Name:  "kubelet-start",
		Short: "Write bootstrap-kubelet.conf and the kubelet configuration, then start the kubelet for its TLS bootstrap",
		Run: func(ctx context.Context, d *Data) error {
			var extra []service.File
			caShown := filepath.Join(d.CertDir, "ca.crt")
			res, err := fileutil.WriteAtomic(d.Path(caShown), d.Join.ClusterCA, 0o644, 0o700)
			if err != nil {
				return err
			}
			if res != fileutil.Unchanged {
				d.Out.Say("wrote the cluster CA to %s", caShown)
			}
			bootShown := filepath.Join(d.KubeconfigDir, kubelet.BootstrapConfigName)
			if d.Join.AlreadyJoined {
				d.Out.Say("the kubelet already has its client certificate; no TLS bootstrap needed")
			} else {
				if d.Token.IsZero() {
					return errors.New("no bootstrap token for the TLS bootstrap: pass --token")
				}
				data, err := kubeconfig.BuildWithToken(d.Cluster.Name, d.Join.Server, d.Join.ClusterCA, kubeconfig.BootstrapUser, d.Token.String())
				if err != nil {
					return err
				}
				extra = append(extra, service.File{Path: bootShown, Data: data, Mode: 0o600, DirMode: 0o755})
			}
			return startKubelet(ctx, d, extra)
		},
	}
}
