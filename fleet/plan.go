package fleet

import (
	"sort"

	"github.com/kforge/kforge/config"
)

// Actions of a host in an up run.
const (
	ActionInit             = "init"
	ActionJoinControlPlane = "join control-plane"
	ActionJoinWorker       = "join worker"
	ActionUnchanged        = "unchanged"
	ActionRemove           = "remove"
	ActionReset            = "reset"
)

// Observed is what connecting to the hosts and asking the cluster found. Observe gathers
// it; MakePlan turns it into actions.
type Observed struct {
	// Unreachable names the hosts that could not be reached; they get no action.
	Unreachable map[string]bool
	// Cluster is true when a control-plane host's admin.conf reached a running cluster.
	Cluster bool
	// Nodes are the cluster's Nodes by name (empty without a cluster).
	Nodes map[string]Node
	// Stale names the hosts that have a Node but no kubelet.conf: they were reset.
	Stale map[string]bool
}

// Node is what the plan needs to know of one of the cluster's Nodes.
type Node struct {
	// ControlPlane is true when the Node has the control-plane role label.
	ControlPlane bool
	// Ready is the Node's Ready condition.
	Ready bool
}

// Step is the plan for one host of the file.
type Step struct {
	Host   string
	Role   string
	Action string
	// Note says why the action differs from the plain one ("it was reset"), or why there
	// is nothing to do; empty when the action speaks for itself.
	Note string
}

// Extra is a Node of the cluster that the file does not name.
type Extra struct {
	Name string
	Role string
}

// Plan is what an up run does: which host inits, and each reachable host's action.
type Plan struct {
	// Init names the host that runs init; empty when a cluster exists (or the file has no
	// control-plane host).
	Init string
	// Steps are the reachable hosts of the file, in file order.
	Steps []Step
	// NotInFile are the cluster's Nodes that the file does not name, by name.
	NotInFile []Extra
}

// MakePlan decides every host's action from the file and what was observed. It has no
// side effects.
func MakePlan(c *config.Cluster, o Observed) Plan {
	var p Plan
	if !o.Cluster {
		if cps := c.ControlPlaneHosts(); len(cps) > 0 {
			p.Init = cps[0].Name
		}
	}
	for _, h := range c.Hosts {
		if o.Unreachable[h.Name] {
			continue
		}
		s := Step{Host: h.Name, Role: roleOf(&h)}
		n, inCluster := o.Nodes[h.Name]
		switch {
		case inCluster && h.IsControlPlane() && !n.ControlPlane && !o.Stale[h.Name]:
			// The kubelet registered, but the join stopped before the node was marked: run
			// the join again, which picks up where it stopped.
			s.Action = ActionJoinControlPlane
			s.Note = "its Node is not marked as a control-plane node yet: its join did not finish"
		case inCluster && o.Stale[h.Name]:
			s.Action = joinAction(&h)
			s.Note = "has a Node in the cluster but no kubelet.conf (it was reset): its Node will be replaced"
		case inCluster:
			s.Action = ActionUnchanged
			state := "NotReady"
			if n.Ready {
				state = "Ready"
			}
			s.Note = "in the cluster (" + state + "): leaving it alone"
		case h.Name == p.Init:
			s.Action = ActionInit
		default:
			s.Action = joinAction(&h)
		}
		p.Steps = append(p.Steps, s)
	}
	for name, n := range o.Nodes {
		if _, ok := c.HostByName(name); ok {
			continue
		}
		role := config.RoleWorker
		if n.ControlPlane {
			role = config.RoleControlPlane
		}
		p.NotInFile = append(p.NotInFile, Extra{Name: name, Role: role})
	}
	sort.Slice(p.NotInFile, func(i, j int) bool { return p.NotInFile[i].Name < p.NotInFile[j].Name })
	return p
}

// Hosts names the hosts whose action is one of actions, in file order.
func (p Plan) Hosts(actions ...string) []string {
	var out []string
	for _, s := range p.Steps {
		for _, a := range actions {
			if s.Action == a {
				out = append(out, s.Host)
				break
			}
		}
	}
	return out
}

// ControlPlaneJoins reports whether the plan joins a control-plane host.
func (p Plan) ControlPlaneJoins() bool { return len(p.Hosts(ActionJoinControlPlane)) > 0 }

func joinAction(h *config.Host) string {
	if h.IsControlPlane() {
		return ActionJoinControlPlane
	}
	return ActionJoinWorker
}

func roleOf(h *config.Host) string {
	if h.IsControlPlane() {
		return config.RoleControlPlane
	}
	return config.RoleWorker
}
