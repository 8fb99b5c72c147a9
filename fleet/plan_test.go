package fleet

import (
	"testing"

	"github.com/kforge/kforge/internal/testutil"

	"github.com/google/go-cmp/cmp"

	"github.com/kforge/kforge/config"
)

func TestMakePlan(t *testing.T) {
	cp, wk := config.RoleControlPlane, config.RoleWorker
	ready := Node{Ready: true}
	readyCP := Node{Ready: true, ControlPlane: true}
	all := map[string]Node{"cp1": readyCP, "cp2": readyCP, "w1": ready, "w2": ready}
	with := func(m map[string]Node, kv ...any) map[string]Node {
		out := map[string]Node{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(out, kv[i].(string))
				continue
			}
			out[kv[i].(string)] = kv[i+1].(Node)
		}
		return out
	}
	inCluster := func(state string) string { return "in the cluster (" + state + "): leaving it alone" }
	tests := []struct {
		name string
		obs  Observed
		want Plan
	}{
		{
			name: "fresh cluster: init on the first control plane, joins for the rest",
			obs:  Observed{},
			want: Plan{Init: "cp1", Steps: []Step{
				{Host: "cp1", Role: cp, Action: ActionInit},
				{Host: "cp2", Role: cp, Action: ActionJoinControlPlane},
				{Host: "w1", Role: wk, Action: ActionJoinWorker},
				{Host: "w2", Role: wk, Action: ActionJoinWorker},
			}},
		},
		{
			name: "re-run: every host is in the cluster, nothing to do",
			obs:  Observed{Cluster: true, Nodes: with(all, "w2", Node{})},
			want: Plan{Steps: []Step{
				{Host: "cp1", Role: cp, Action: ActionUnchanged, Note: inCluster("Ready")},
				{Host: "cp2", Role: cp, Action: ActionUnchanged, Note: inCluster("Ready")},
				{Host: "w1", Role: wk, Action: ActionUnchanged, Note: inCluster("Ready")},
				{Host: "w2", Role: wk, Action: ActionUnchanged, Note: inCluster("NotReady")},
			}},
		},
		{
			name: "growth: a host added to the file joins, no init",
			obs:  Observed{Cluster: true, Nodes: with(all, "w2", nil)},
			want: Plan{Steps: []Step{
				{Host: "cp1", Role: cp, Action: ActionUnchanged, Note: inCluster("Ready")},
				{Host: "cp2", Role: cp, Action: ActionUnchanged, Note: inCluster("Ready")},
				{Host: "w1", Role: wk, Action: ActionUnchanged, Note: inCluster("Ready")},
				{Host: "w2", Role: wk, Action: ActionJoinWorker},
			}},
		},
		{
			name: "reset hosts: a Node without kubelet.conf joins again",
			obs:  Observed{Cluster: true, Nodes: all, Stale: map[string]bool{"cp2": true, "w1": true}},
			want: Plan{Steps: []Step{
				{Host: "cp1", Role: cp, Action: ActionUnchanged, Note: inCluster("Ready")},
				{Host: "cp2", Role: cp, Action: ActionJoinControlPlane, Note: "has a Node in the cluster but no kubelet.conf (it was reset): its Node will be replaced"},
				{Host: "w1", Role: wk, Action: ActionJoinWorker, Note: "has a Node in the cluster but no kubelet.conf (it was reset): its Node will be replaced"},
				{Host: "w2", Role: wk, Action: ActionUnchanged, Note: inCluster("Ready")},
			}},
		},
		{
			name: "unfinished control-plane join: the node is not marked yet",
			obs:  Observed{Cluster: true, Nodes: with(all, "cp2", ready)},
			want: Plan{Steps: []Step{
				{Host: "cp1", Role: cp, Action: ActionUnchanged, Note: inCluster("Ready")},
				{Host: "cp2", Role: cp, Action: ActionJoinControlPlane, Note: "its Node is not marked as a control-plane node yet: its join did not finish"},
				{Host: "w1", Role: wk, Action: ActionUnchanged, Note: inCluster("Ready")},
				{Host: "w2", Role: wk, Action: ActionUnchanged, Note: inCluster("Ready")},
			}},
		},
		{
			name: "lost hosts get no step; with no cluster the first control plane still inits",
			obs:  Observed{Unreachable: map[string]bool{"cp1": true, "w2": true}},
			want: Plan{Init: "cp1", Steps: []Step{
				{Host: "cp2", Role: cp, Action: ActionJoinControlPlane},
				{Host: "w1", Role: wk, Action: ActionJoinWorker},
			}},
		},
		{
			name: "prune candidates: Nodes the file does not name, sorted, with their roles",
			obs:  Observed{Cluster: true, Nodes: with(all, "old-w", ready, "old-cp", readyCP, "a-w", Node{})},
			want: Plan{
				Steps: []Step{
					{Host: "cp1", Role: cp, Action: ActionUnchanged, Note: inCluster("Ready")},
					{Host: "cp2", Role: cp, Action: ActionUnchanged, Note: inCluster("Ready")},
					{Host: "w1", Role: wk, Action: ActionUnchanged, Note: inCluster("Ready")},
					{Host: "w2", Role: wk, Action: ActionUnchanged, Note: inCluster("Ready")},
				},
				NotInFile: []Extra{{Name: "a-w", Role: wk}, {Name: "old-cp", Role: cp}, {Name: "old-w", Role: wk}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := MakePlan(testutil.Cluster(t), tc.obs)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlanHosts(t *testing.T) {
	p := MakePlan(testutil.Cluster(t), Observed{})
	if got, want := p.Hosts(ActionJoinWorker, ActionInit), []string{"cp1", "w1", "w2"}; !cmp.Equal(got, want) {
		t.Errorf("Hosts = %v, want %v (file order)", got, want)
	}
	if !p.ControlPlaneJoins() {
		t.Error("ControlPlaneJoins = false, want true: cp2 joins")
	}
	if MakePlan(testutil.Cluster(t), Observed{Cluster: true, Nodes: map[string]Node{"cp1": {ControlPlane: true}, "cp2": {ControlPlane: true}}}).ControlPlaneJoins() {
		t.Error("ControlPlaneJoins = true with both control planes in the cluster")
	}
}
