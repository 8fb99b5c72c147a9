package phases

import "context"

// upPlanPhase decides each host's action (fleet.MakePlan) and prints it.
//
// Reads Data.Up's observed, Data.Up.Plan and Data.Up.Prune; sets Data.Up's plan. It
// fails when up cannot tell that it is safe to init (see fleet.MakePlan).
func upPlanPhase() Phase {
	return Phase{
		Name:  "plan",
		Short: "Decide each host's action: init, join, or leave it alone; print the plan",
		Run: func(ctx context.Context, d *Data) error {
			_, err := d.upPlan(ctx)
			return err
		},
	}
}
