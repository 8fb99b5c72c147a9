package phases

import "context"

// upReconfigurePhase makes the hosts already in the cluster match the file
// (fleet.Reconfigure): each host's plan first, printed with a diff per file, then, unless
// --dry-run, one host at a time, control planes first, each healthy before the next.
//
// Reads Data.Up's plan.
func upReconfigurePhase() Phase {
	return Phase{
		Name:  "reconfigure",
		Short: "Make the hosts already in the cluster match the file, one at a time; on --dry-run, show each host's diff",
		Run: func(ctx context.Context, d *Data) error {
			if _, err := d.upPlan(ctx); err != nil {
				return err
			}
			d.Up.fleet.Reconfigure(ctx)
			return nil
		},
	}
}
