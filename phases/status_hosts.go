package phases

import "context"

// statusHostsPhase asks each reachable host in the cluster whether its kforge is this
// build and, if so, for its plan against the file (kforge reconfigure --dry-run) and, on
// control-plane hosts, its certificates' expiry (fleet.HostFacts). Nothing is installed.
//
// Reads the fleet and what detect observed; sets Data.Status's hosts.
func statusHostsPhase() Phase {
	return Phase{
		Name:  "hosts",
		Short: "Ask each host in the cluster for its plan against the file and, on control-plane hosts, its certificates' expiry",
		Run: func(ctx context.Context, d *Data) error {
			f, err := d.Fleet(ctx)
			if err != nil {
				return err
			}
			d.Status.hosts, err = f.HostFacts(ctx)
			return err
		},
	}
}
