package phases

import (
	"context"

	"github.com/kforge/kforge/fleet"
)

// StatusData is what the status workflow's own phases gather; the fleet, and what detect
// observed, are Data.Up's.
type StatusData struct {
	// pods are the static pods the API reports, podsErr why they could not be read; set by
	// static-pods.
	pods    fleet.StaticPods
	podsErr error
	// hosts are what each host in the cluster said; set by hosts.
	hosts map[string]fleet.HostFacts
}

// StatusWorkflow is `kforge status`: a read-only look at every host of cluster.toml and at
// the cluster. It connects and detects as up does, reads the Nodes' and static pods'
// health through the API, and asks each host in the cluster for its plan and its
// certificates' expiry; it changes nothing (the cluster.toml the hosts read goes under
// /tmp and is removed after). StatusReport sums it up.
func StatusWorkflow() *Workflow {
	return &Workflow{
		Name: "status",
		Phases: []Phase{
			upConnectPhase(),
			upDetectPhase(),
			statusStaticPodsPhase(),
			statusHostsPhase(),
		},
	}
}

// StatusReport ends a status run: it closes the fleet and sums up what the phases found
// (fleet.Summarize). Nil when the run stopped before detect.
func (d *Data) StatusReport(ctx context.Context) *fleet.Status {
	rep := d.CloseFleet(ctx)
	if rep == nil || d.Up.observed == nil {
		return nil
	}
	failed := map[string]string{}
	for _, h := range rep.Hosts {
		if h.Result == fleet.ResultFailed {
			failed[h.Host] = h.Error
		}
	}
	in := fleet.StatusFacts{
		Cluster:  d.Cluster,
		Observed: *d.Up.observed,
		Failed:   failed,
		Pods:     d.Status.pods,
		Hosts:    d.Status.hosts,
		Now:      d.Now(),
	}
	if d.Status.podsErr != nil {
		in.PodsError = d.Status.podsErr.Error()
	}
	s := fleet.Summarize(in)
	return &s
}
