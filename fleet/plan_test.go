package fleet

import (
	"errors"
	"strings"
	"testing"

	"github.com/kforge/kforge/internal/testutil"

	"github.com/google/go-cmp/cmp"

	"github.com/kforge/kforge/bootstrap"
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
	inCluster := func(state string) string {
		return "in the cluster (" + state + "): reconfigured only where it differs from the file"
	}
	caState := []string{"/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/pki/ca.key"}
	tests := []struct {
		name string
		obs  Observed
		opts PlanOptions
		want Plan
		// wantErr, when set, is the refusal MakePlan must return, and wantMsg what its
		// message must say.
		wantErr error
		wantMsg []string
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
			name: "only a worker unreachable, no state anywhere: init, the worker gets no step",
			obs:  Observed{Unreachable: map[string]bool{"w2": true}},
			want: Plan{Init: "cp1", Steps: []Step{
				{Host: "cp1", Role: cp, Action: ActionInit},
				{Host: "cp2", Role: cp, Action: ActionJoinControlPlane},
				{Host: "w1", Role: wk, Action: ActionJoinWorker},
			}},
		},
		{
			name:    "a control plane unreachable and no cluster: no init, the unreachable hosts named",
			obs:     Observed{Unreachable: map[string]bool{"cp2": true, "w2": true}},
			wantErr: ErrControlPlaneUnreachable,
			wantMsg: []string{"cp2", "--init-new-cluster"},
		},
		{
			name:    "the first control plane unreachable and no cluster: no init",
			obs:     Observed{Unreachable: map[string]bool{"cp1": true}},
			wantErr: ErrControlPlaneUnreachable,
			wantMsg: []string{"cp1"},
		},
		{
			name: "a control plane unreachable, --init-new-cluster: init on the first, the lost host gets no step",
			obs:  Observed{Unreachable: map[string]bool{"cp2": true, "w2": true}},
			opts: PlanOptions{InitNewCluster: true},
			want: Plan{Init: "cp1", Steps: []Step{
				{Host: "cp1", Role: cp, Action: ActionInit},
				{Host: "w1", Role: wk, Action: ActionJoinWorker},
			}},
		},
		{
			name:    "--init-new-cluster with the first control plane unreachable: init is not possible",
			obs:     Observed{Unreachable: map[string]bool{"cp1": true}},
			opts:    PlanOptions{InitNewCluster: true},
			wantErr: nil,
			wantMsg: []string{"cp1", "unreachable"},
		},
		{
			name:    "a control plane holds state, no admin.conf answers: no init, the host and its state named",
			obs:     Observed{State: map[string][]string{"cp2": caState}},
			wantErr: ErrClusterNotAnswering,
			wantMsg: []string{"cp2 holds /etc/kubernetes/pki/ca.crt, /etc/kubernetes/pki/ca.key", "kforge reset on cp2", "apiserver"},
		},
		{
			name: "the first control plane's apiserver does not answer: no init, what the client said",
			obs: Observed{
				State:  map[string][]string{"cp1": append(caState, "/etc/kubernetes/admin.conf")},
				Silent: map[string]string{"cp1": "listing nodes: timed out after 20s: connection refused"},
			},
			wantErr: ErrClusterNotAnswering,
			wantMsg: []string{"cp1 holds", "connection refused"},
		},
		{
			name: "kforge's init on the first control plane was killed: init runs again there, and the plan says so",
			obs: Observed{
				State:          map[string][]string{"cp1": append(caState, "/etc/kubernetes/admin.conf")},
				Silent:         map[string]string{"cp1": "listing nodes: timed out after 20s: connection refused"},
				InitInProgress: map[string]bool{"cp1": true},
				Unreachable:    map[string]bool{"w2": true},
			},
			want: Plan{Init: "cp1", Steps: []Step{
				{Host: "cp1", Role: cp, Action: ActionInit, Note: "resuming kforge's unfinished init on cp1 (it holds " + InitMarker + ")"},
				{Host: "cp2", Role: cp, Action: ActionJoinControlPlane},
				{Host: "w1", Role: wk, Action: ActionJoinWorker},
			}},
		},
		{
			name:    "an unfinished init on the first control plane, but another holds state: no init",
			obs:     Observed{State: map[string][]string{"cp1": caState, "cp2": caState}, InitInProgress: map[string]bool{"cp1": true}},
			wantErr: ErrClusterNotAnswering,
			wantMsg: []string{"cp1 holds", "cp2 holds", "not resuming the unfinished init on cp1: cp2 holds cluster state too"},
		},
		{
			name:    "an unfinished init on the first control plane, but another is unreachable: no init",
			obs:     Observed{State: map[string][]string{"cp1": caState}, InitInProgress: map[string]bool{"cp1": true}, Unreachable: map[string]bool{"cp2": true}},
			wantErr: ErrClusterNotAnswering,
			wantMsg: []string{"cp1 holds", "not resuming the unfinished init on cp1: cp2 could not be checked"},
		},
		{
			name:    "the marker on a control plane that does not init: no init",
			obs:     Observed{State: map[string][]string{"cp2": caState}, InitInProgress: map[string]bool{"cp2": true}},
			wantErr: ErrClusterNotAnswering,
			wantMsg: []string{"cp2 holds", "not resuming the unfinished init on cp2: only the first control-plane host, cp1, inits"},
		},
		{
			name:    "the first control plane holds state without the marker: no init, and why not",
			obs:     Observed{State: map[string][]string{"cp1": caState}},
			wantErr: ErrClusterNotAnswering,
			wantMsg: []string{"cp1 holds", "not kforge's unfinished init: cp1 holds no " + InitMarker},
		},
		{
			name: "state without an answering cluster, --init-new-cluster: init on the first",
			obs:  Observed{State: map[string][]string{"cp2": caState}},
			opts: PlanOptions{InitNewCluster: true},
			want: Plan{Init: "cp1", Steps: []Step{
				{Host: "cp1", Role: cp, Action: ActionInit},
				{Host: "cp2", Role: cp, Action: ActionJoinControlPlane},
				{Host: "w1", Role: wk, Action: ActionJoinWorker},
				{Host: "w2", Role: wk, Action: ActionJoinWorker},
			}},
		},
		{
			name:    "the API refuses admin.conf (401): fatal, even with --init-new-cluster",
			obs:     Observed{State: map[string][]string{"cp1": caState}, Rejected: &Rejection{Host: "cp1", Err: "Unauthorized"}},
			opts:    PlanOptions{InitNewCluster: true},
			wantErr: ErrAPIRejected,
			wantMsg: []string{"cp1: Unauthorized", "credentials", "control_plane_endpoint"},
		},
		{
			name:    "the API's certificate is not from admin.conf's CA: fatal",
			obs:     Observed{State: map[string][]string{"cp1": caState}, Rejected: &Rejection{Host: "cp1", TLS: true, Err: "x509: certificate signed by unknown authority"}},
			wantErr: ErrAPIRejected,
			wantMsg: []string{"unknown authority", "another cluster"},
		},
		{
			name: "a cluster answers, the first control plane is lost: no init, the others go on",
			obs: Observed{Cluster: true, Nodes: with(all, "cp1", nil, "w2", nil), Unreachable: map[string]bool{"cp1": true},
				State: map[string][]string{"cp2": caState}},
			want: Plan{Steps: []Step{
				{Host: "cp2", Role: cp, Action: ActionUnchanged, Note: inCluster("Ready")},
				{Host: "w1", Role: wk, Action: ActionUnchanged, Note: inCluster("Ready")},
				{Host: "w2", Role: wk, Action: ActionJoinWorker},
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
			got, err := MakePlan(testutil.Cluster(t), tc.obs, tc.opts)
			if tc.wantErr != nil || len(tc.wantMsg) > 0 {
				if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
					t.Fatalf("MakePlan = %+v, %v; want the error %v", got, err, tc.wantErr)
				}
				for _, m := range tc.wantMsg {
					if !strings.Contains(err.Error(), m) {
						t.Errorf("error %q does not say %q", err, m)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("MakePlan: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlanHosts(t *testing.T) {
	p, err := MakePlan(testutil.Cluster(t), Observed{}, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Hosts(ActionJoinWorker, ActionInit), []string{"cp1", "w1", "w2"}; !cmp.Equal(got, want) {
		t.Errorf("Hosts = %v, want %v (file order)", got, want)
	}
	if !p.ControlPlaneJoins() {
		t.Error("ControlPlaneJoins = false, want true: cp2 joins")
	}
	p, err = MakePlan(testutil.Cluster(t), Observed{Cluster: true, Nodes: map[string]Node{"cp1": {ControlPlane: true}, "cp2": {ControlPlane: true}}}, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.ControlPlaneJoins() {
		t.Error("ControlPlaneJoins = true with both control planes in the cluster")
	}
}

// TestMakePlanRefusesUnsafeChanges: a file that changes a setting the running cluster
// cannot change is refused, naming each setting with both values and what to do; a file
// that matches the stored configuration, or changes only what can change, is planned.
func TestMakePlanRefusesUnsafeChanges(t *testing.T) {
	nodes := map[string]Node{"cp1": {Ready: true, ControlPlane: true}}
	tests := []struct {
		name    string
		stored  func(c *config.Cluster)
		kubeadm bool
		wantMsg []string
	}{
		{name: "unchanged"},
		{name: "a change the cluster can take", stored: func(c *config.Cluster) { c.Addons.DNS.Replicas = 5 }},
		{
			name:    "pod CIDR",
			stored:  func(c *config.Cluster) { c.Networking.PodCIDR = "10.99.0.0/16" },
			wantMsg: []string{`networking.pod_cidr: "10.99.0.0/16" in the cluster, "10.244.0.0/16" in the file`, "Put the cluster's values back", "rebuild the cluster"},
		},
		{
			name: "service CIDR, DNS domain and name at once",
			stored: func(c *config.Cluster) {
				c.Networking.ServiceCIDR, c.Networking.DNSDomain, c.Name = "10.100.0.0/16", "corp.local", "prod"
			},
			wantMsg: []string{"networking.service_cidr", "networking.dns_domain", `name: "prod" in the cluster, "kubernetes" in the file`},
		},
		{
			name: "local etcd to external",
			stored: func(c *config.Cluster) {
				c.Etcd.Local = nil
				c.Etcd.External = &config.ExternalEtcd{Endpoints: []string{"https://192.0.2.50:2379"}, CAFile: "/etc/etcd/ca.crt", CertFile: "/etc/etcd/c.crt", KeyFile: "/etc/etcd/c.key"}
			},
			wantMsg: []string{`etcd: "external" in the cluster, "local" in the file`},
		},
		{
			name:    "a cluster made by kubeadm",
			stored:  func(c *config.Cluster) { c.Networking.PodCIDR = "192.168.0.0/16" },
			kubeadm: true,
			wantMsg: []string{"networking.pod_cidr", "kubeadm's ClusterConfiguration"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stored := testutil.Cluster(t)
			if tc.stored != nil {
				tc.stored(stored)
			}
			obs := Observed{Cluster: true, Nodes: nodes, Stored: &bootstrap.StoredCluster{Cluster: stored, FromKubeadm: tc.kubeadm}}
			p, err := MakePlan(testutil.Cluster(t), obs, PlanOptions{})
			if len(tc.wantMsg) == 0 {
				if err != nil {
					t.Fatalf("MakePlan: %v", err)
				}
				if len(p.Steps) != 4 {
					t.Errorf("plan %+v, want a step for each of the 4 hosts", p)
				}
				return
			}
			if !errors.Is(err, ErrUnsafeChange) {
				t.Fatalf("MakePlan = %+v, %v; want ErrUnsafeChange", p, err)
			}
			for _, m := range tc.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not say %q", err, m)
				}
			}
		})
	}
}
