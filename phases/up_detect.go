package phases

import "context"

// upDetectPhase finds out what the cluster already holds, from the cluster itself:
// admin.conf from the first control-plane host that has one, the cluster's Nodes, and
// which hosts with a Node were reset since.
//
// Reads the fleet; sets Data.Up's observed.
func upDetectPhase() Phase {
	return Phase{
		Name:  "detect",
		Short: "Find the cluster through the control-plane hosts, list its nodes and the hosts that were reset",
		Run: func(ctx context.Context, d *Data) error {
			_, err := d.observe(ctx)
			return err
		},
	}
}
