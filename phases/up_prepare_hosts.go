package phases

import (
	"context"

	"github.com/kforge/kforge/fleet"
)

// upPreparePhase installs kforge, cluster.toml and the bundle's parts on every host the
// plan gives work, and runs the pre-flight checks there.
//
// Reads Data.Up's plan.
func upPrepareHostsPhase(skip func(*Data) (string, bool)) Phase {
	return Phase{
		Name:  "prepare-hosts",
		Short: "Install kforge, cluster.toml and the bundle, and run the pre-flight checks, on every host that needs work",
		Skip:  skip,
		Run: func(ctx context.Context, d *Data) error {
			p, err := d.upPlan(ctx)
			if err != nil {
				return err
			}
			d.Up.fleet.Prepare(ctx, p.Hosts(fleet.ActionInit, fleet.ActionJoinControlPlane, fleet.ActionJoinWorker))
			return ctx.Err()
		},
	}
}
