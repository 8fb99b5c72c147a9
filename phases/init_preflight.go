package phases

import (
	"context"

	"github.com/kforge/kforge/preflight"
)

// preflightPhase runs the pre-flight checks of a workflow, init's or join's, which checks
// returns for the host. It runs before the bundle phase installs anything, so it is told
// which binaries the bundle will bring.
//
// Reads Data.Cluster, Data.Node, Data.AdvertiseAddress, the directories of Data,
// Data.PreflightSystem and Data.IgnorePreflight.
func preflightPhase(checks func(d *Data, p preflight.InitParams) []preflight.Checker) Phase {
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
			return preflight.Run(ctx, checks(d, p), d.IgnorePreflight, d.Out.Writer())
		},
	}
}

// initChecks are the checks of the first control-plane host.
func initChecks(_ *Data, p preflight.InitParams) []preflight.Checker {
	return preflight.InitChecks(p)
}

// joinChecks are the checks of a join, as a worker or a control-plane member.
func joinChecks(d *Data, p preflight.InitParams) []preflight.Checker {
	return preflight.JoinChecks(p, d.Join.ControlPlane)
}
