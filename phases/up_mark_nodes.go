package phases

import "context"

// upMarkNodesPhase gives every host's Node the labels and taints cluster.toml gives it,
// through the admin client: the only way an existing worker's Node converges, since a
// kubelet cannot change its own taints after it registered. On a dry run it says, per
// Node, what it would add and remove, and writes nothing.
//
// Reads Data.Up's plan.
func upMarkNodesPhase() Phase {
	return Phase{
		Name:  "mark-nodes",
		Short: "Set the labels and taints of every host's Node from the file, removing only those kforge set before; on --dry-run, show what would change",
		Run: func(ctx context.Context, d *Data) error {
			if _, err := d.upPlan(ctx); err != nil {
				return err
			}
			d.Up.fleet.MarkNodes(ctx)
			return nil
		},
	}
}
