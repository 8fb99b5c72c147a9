package phases

import (
	"context"

	"github.com/kforge/kforge/preflight"
)

func preflightPhase() Phase {
	return Phase{
		Name:  "preflight",
		Short: "Run the pre-flight checks",
		Run: func(ctx context.Context, d *Data) error {
			d.Out.Say("running pre-flight checks")
			checks := preflight.InitChecks(preflight.InitParams{
				Cluster:           d.Cluster,
				NodeName:          d.Node.Name,
				AdvertiseAddress:  d.AdvertiseAddress.String(),
				ManifestsDir:      d.ManifestsDir,
				KubeconfigDir:     d.KubeconfigDir,
				KubeletConfigPath: d.KubeletConfigPath,
				System:            d.PreflightSystem,
			})
			return preflight.Run(ctx, checks, d.IgnorePreflight, d.Out.Writer())
		},
	}
}
