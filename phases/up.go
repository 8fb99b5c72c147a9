package phases

import (
	"context"

	"github.com/kforge/kforge/fleet"
)

// UpData is the part of Data the up and reset-hosts workflows read and produce: the fleet
// of hosts they drive over SSH, and its plan.
type UpData struct {
	// Options configure the fleet; the command sets them.
	Options fleet.Options
	// Prune makes the prune phase delete the Nodes of workers that are not in the file
	// (up --prune).
	Prune bool
	// Plan is the operator's intent the plan follows (up --init-new-cluster).
	Plan fleet.PlanOptions

	// fleet is the run over the hosts, made by the first phase that needs it (connect).
	fleet *fleet.Fleet
	// observed is what detect found; plan is what plan decided; both set once.
	observed *fleet.Observed
	plan     *fleet.Plan
}

// UpWorkflow is `kforge up`: it makes the hosts of cluster.toml a cluster, over SSH.
// Every phase works from the plan, which the first phase that needs it makes (connect,
// detect and plan), so that `up phase <name>` runs one step of a run on its own.
func UpWorkflow() *Workflow {
	notDry := func(d *Data) (string, bool) {
		return "--dry-run: the plan above is what a real run would do", d.DryRun
	}
	return &Workflow{
		Name: "up",
		Phases: []Phase{
			upConnectPhase(),
			upDetectPhase(),
			upPlanPhase(),
			// Expired certificates are recovered before anything needs the API.
			upRecoverCertsPhase(notDry),
			upRebootstrapKubeletsPhase(notDry),
			upPrepareHostsPhase(notDry),
			upInitPhase(notDry),
			upJoinControlPlanesPhase(notDry),
			upJoinWorkersPhase(notDry),
			upReconfigurePhase(),
			upRenewCertsPhase(),
			upApproveServingCertsPhase(),
			upMarkNodesPhase(),
			upAddonsPhase(),
			upPrunePhase(notDry),
			upUploadConfigPhase(notDry),
		},
	}
}

// Fleet returns the fleet of this run, connected to every host the run is about, printing
// through the running phase's printer; the first call makes it and connects.
func (d *Data) Fleet(ctx context.Context) (*fleet.Fleet, error) {
	u := &d.Up
	if u.fleet != nil {
		u.fleet.UsePrinter(d.Out)
		return u.fleet, nil
	}
	o := u.Options
	o.Out = d.Out
	o.Log = d.Log
	o.DryRun = d.DryRun
	f, err := fleet.New(o)
	if err != nil {
		return nil, err
	}
	u.fleet = f
	f.Connect(ctx, o.Hosts)
	return f, nil
}

// observe returns what detect found, asking the cluster on first use.
func (d *Data) observe(ctx context.Context) (*fleet.Observed, error) {
	u := &d.Up
	if u.observed != nil {
		return u.observed, nil
	}
	f, err := d.Fleet(ctx)
	if err != nil {
		return nil, err
	}
	o, err := f.Observe(ctx)
	if err != nil {
		return nil, err
	}
	u.observed = &o
	return u.observed, nil
}

// upPlan returns the plan of this run, making and printing it on first use.
func (d *Data) upPlan(ctx context.Context) (*fleet.Plan, error) {
	u := &d.Up
	f, err := d.Fleet(ctx)
	if err != nil || u.plan != nil {
		return u.plan, err
	}
	o, err := d.observe(ctx)
	if err != nil {
		return nil, err
	}
	p, err := fleet.MakePlan(d.Cluster, *o, u.Plan)
	if err != nil {
		f.SkipUndecided("up made no plan: see the error below")
		return nil, err
	}
	f.SetPlan(p, u.Prune)
	u.plan = &p
	return u.plan, nil
}

// CloseFleet ends the run: it deletes the join tokens the run stored, marks the hosts
// that no phase reached (a skipped phase, a phase run alone) and closes the connections.
// It returns the report, nil when no phase made the fleet.
func (d *Data) CloseFleet(ctx context.Context) *fleet.Report {
	f := d.Up.fleet
	if f == nil {
		return nil
	}
	defer f.Close()
	f.Cleanup(context.WithoutCancel(ctx))
	if !d.DryRun {
		f.SkipPending("not reached in this run (--skip-phases, a phase run alone, or a failure before it)")
	}
	return f.Report()
}
