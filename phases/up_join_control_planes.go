package phases

import (
	"context"

	"github.com/kforge/kforge/fleet"
)

// upJoinControlPlanesPhase joins the other control-plane hosts one at a time, with a
// join token and a certificate key of this run; the certificates are shared again when
// init did not just do it.
//
// Reads Data.Up's plan.
func upJoinControlPlanesPhase(skip func(*Data) (string, bool)) Phase {
	return Phase{
		Name:  "join-control-planes",
		Short: "Join the other control-plane hosts, one at a time",
		Skip:  skip,
		Run: func(ctx context.Context, d *Data) error {
			p, err := d.upPlan(ctx)
			if err != nil {
				return err
			}
			return d.Up.fleet.JoinControlPlanes(ctx, p.Hosts(fleet.ActionJoinControlPlane))
		},
	}
}
