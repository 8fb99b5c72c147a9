package phases

import "context"

// upPrunePhase deletes the Nodes of workers that are in the cluster but not in the file.
// The hosts themselves are not touched.
//
// Reads Data.Up's plan and Data.Up.Prune.
func upPrunePhase(notDry func(*Data) (string, bool)) Phase {
	return Phase{
		Name:  "prune",
		Short: "Delete the Nodes of workers that are in the cluster but not in the file (--prune)",
		Skip: func(d *Data) (string, bool) {
			if !d.Up.Prune {
				return "--prune not set", true
			}
			return notDry(d)
		},
		Run: func(ctx context.Context, d *Data) error {
			if _, err := d.upPlan(ctx); err != nil {
				return err
			}
			d.Up.fleet.Prune(ctx)
			return nil
		},
	}
}
