package phases

import (
	"context"

	"github.com/kforge/kforge/fleet"
)

// upJoinWorkersPhase joins the workers in parallel, each with a join token of its own
// that is deleted once it has joined.
//
// Reads Data.Up's plan.
func upJoinWorkersPhase(skip func(*Data) (string, bool)) Phase {
	return Phase{
		Name:  "join-workers",
		Short: "Join the workers in parallel, each with its own join token",
		Skip:  skip,
		Run: func(ctx context.Context, d *Data) error {
			p, err := d.upPlan(ctx)
			if err != nil {
				return err
			}
			if err := d.Up.fleet.JoinWorkers(ctx, p.Hosts(fleet.ActionJoinWorker)); err != nil {
				return err
			}
			return ctx.Err()
		},
	}
}
