package phases

import "context"

// upDetectPhase finds out what the cluster already holds: the cluster state each
// control-plane host holds (a CA, etcd data, kubeconfigs, static pod manifests) and whether
// a kforge init there is unfinished (fleet.InitMarker), then, from
// the cluster itself, through admin.conf of the first control-plane host whose admin.conf
// reaches it, the cluster's Nodes and which hosts with a Node were reset since. A
// control-plane host that cannot be checked is failed; the plan decides what that means.
//
// Reads the fleet; sets Data.Up's observed.
func upDetectPhase() Phase {
	return Phase{
		Name:  "detect",
		Short: "Check the control-plane hosts for cluster state, find the cluster through them, list its nodes and the hosts that were reset",
		Run: func(ctx context.Context, d *Data) error {
			_, err := d.observe(ctx)
			return err
		},
	}
}
