package phases

import (
	"context"
	"slices"

	"github.com/kforge/kforge/fleet"
)

// ResetHostsWorkflow is `kforge reset -f cluster.toml`: it runs kforge reset on hosts of
// the file over SSH, the workers in parallel, then the control-plane hosts one at a time,
// the first one of the file last, so that each etcd member leaves while the others keep
// quorum. The Nodes of reset workers are deleted through a control-plane host that is
// not being reset.
func ResetHostsWorkflow() *Workflow {
	notDry := func(d *Data) (string, bool) {
		return "--dry-run: the plan above is what a real run would do", d.DryRun
	}
	return &Workflow{
		Name: "reset-hosts",
		Phases: []Phase{
			upConnectPhase(),
			{
				Name:  "detect",
				Short: "Find the cluster through a control-plane host, for the credentials that delete the workers' Nodes",
				Run:   runResetHostsDetect,
			},
			{
				Name:  "reset-workers",
				Short: "Run kforge reset on the workers, in parallel, and delete their Nodes",
				Skip:  notDry,
				Run: func(ctx context.Context, d *Data) error {
					f, err := d.Fleet(ctx)
					if err != nil {
						return err
					}
					f.ResetWorkers(ctx, resetHostNames(d, false), d.Force)
					return ctx.Err()
				},
			},
			{
				Name:  "reset-control-planes",
				Short: "Run kforge reset on the control-plane hosts, one at a time, the first of the file last",
				Skip:  notDry,
				Run: func(ctx context.Context, d *Data) error {
					f, err := d.Fleet(ctx)
					if err != nil {
						return err
					}
					f.ResetControlPlanes(ctx, resetHostNames(d, true), d.Force)
					return ctx.Err()
				},
			},
		},
	}
}

// runResetHostsDetect plans a reset of every host the run is about and finds the cluster;
// a cluster that does not answer only means the workers' Nodes stay for kubectl.
//
// Reads Data.Up.Options.Hosts; sets the fleet's plan.
func runResetHostsDetect(ctx context.Context, d *Data) error {
	f, err := d.Fleet(ctx)
	if err != nil {
		return err
	}
	names := resetHostNames(d, false)
	names = append(names, resetHostNames(d, true)...)
	f.Plan(names, fleet.ActionReset)
	for _, n := range f.Pending(names) {
		d.Out.Phase(n, "will reset")
	}
	if len(d.Up.Options.Hosts) > 0 {
		f.ConnectAdmin(ctx)
	}
	if _, err := f.Observe(ctx); err != nil {
		d.Out.Say("WARNING: %v; Nodes of reset workers are left for kubectl delete node", err)
	}
	return nil
}

// resetHostNames names the hosts the run resets with the control-plane role (cp) or
// without it, in file order.
func resetHostNames(d *Data, cp bool) []string {
	var out []string
	for _, h := range d.Cluster.Hosts {
		if h.IsControlPlane() != cp {
			continue
		}
		if hs := d.Up.Options.Hosts; len(hs) == 0 || slices.Contains(hs, h.Name) {
			out = append(out, h.Name)
		}
	}
	return out
}
