package phases

import (
	"context"

	"github.com/kforge/kforge/preflight"
)

func joinPreflightPhase() Phase {
	return Phase{
		Name:  "preflight",
		Short: "Run the pre-flight checks",
		Run: func(ctx context.Context, d *Data) error {
			d.Out.Say("running pre-flight checks")
			p := preflight.InitParams{
				Cluster:           d.Cluster,
				NodeName:          d.Node.Name,
				AdvertiseAddress:  d.AdvertiseAddress.String(),
				ManifestsDir:      d.ManifestsDir,
				KubeconfigDir:     d.KubeconfigDir,
				KubeletConfigPath: d.KubeletConfigPath,
				System:            d.PreflightSystem,
				BundleBinaries:    bundleBinaries(d),
			}
			return preflight.Run(ctx, preflight.JoinChecks(p, d.Join.ControlPlane), d.IgnorePreflight, d.Out.Writer())
		},
	}
}
