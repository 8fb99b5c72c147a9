package fleet

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/internal/overlay"
	"github.com/kforge/kforge/internal/testutil"
)

var statusNow = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

// healthyFacts are the facts of a cluster of cp1, cp2, w1 and w2 where all is well.
func healthyFacts(t *testing.T) StatusFacts {
	t.Helper()
	c := testutil.Cluster(t)
	in := StatusFacts{
		Cluster: c,
		Observed: Observed{Cluster: true, Via: "cp1", Unreachable: map[string]bool{}, Stale: map[string]bool{},
			Nodes: map[string]Node{}},
		Failed: map[string]string{},
		Pods:   StaticPods{},
		Hosts:  map[string]HostFacts{},
		Now:    statusNow,
	}
	for _, h := range c.Hosts {
		in.Observed.Nodes[h.Name] = Node{ControlPlane: h.IsControlPlane(), Ready: true, KubeletVersion: "v1.31.2"}
		hf := HostFacts{SameKforge: true, Plan: &HostPlan{Node: h.Name}}
		if h.IsControlPlane() {
			in.Pods[h.Name] = map[string]bool{"etcd": true, "kube-apiserver": true, "kube-controller-manager": true, "kube-scheduler": true}
			hf.Certs = []certs.ExpiryRow{
				{Name: "ca", NotAfter: statusNow.Add(3650 * 24 * time.Hour)},
				{Name: "apiserver", NotAfter: statusNow.Add(364*24*time.Hour + time.Hour)},
				{Name: "etcd-peer", Missing: true},
			}
		}
		in.Hosts[h.Name] = hf
	}
	return in
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name   string
		change func(in *StatusFacts)
		// problems are the start of each problem, in order.
		problems []string
		// check looks at the hosts' lines.
		check func(t *testing.T, hosts map[string]HostStatus)
	}{
		{
			name: "all well",
			check: func(t *testing.T, hosts map[string]HostStatus) {
				cp1 := hosts["cp1"]
				want := HostStatus{Host: "cp1", Role: "control-plane", InFile: true, InCluster: true, Reachable: true, KubeletVersion: "v1.31.2", Ready: true,
					StaticPods: []PodHealth{{Name: "etcd", Ready: true}, {Name: "kube-apiserver", Ready: true}, {Name: "kube-controller-manager", Ready: true}, {Name: "kube-scheduler", Ready: true}},
					CertExpiry: &CertExpiry{Name: "apiserver", NotAfter: statusNow.Add(364*24*time.Hour + time.Hour), DaysLeft: 364},
					SameKforge: ptr(true), Match: MatchYes}
				if d := cmp.Diff(want, cp1); d != "" {
					t.Errorf("cp1 (-want +got):\n%s", d)
				}
				if w1 := hosts["w1"]; w1.StaticPods != nil || w1.CertExpiry != nil || w1.Match != MatchYes {
					t.Errorf("w1: %+v, want no static pods, no certificates, matching", w1)
				}
			},
		},
		{
			name: "unreachable worker",
			change: func(in *StatusFacts) {
				in.Observed.Unreachable["w2"] = true
				delete(in.Hosts, "w2")
				in.Failed["w2"] = "unreachable: dial tcp 192.0.2.21:22: connection refused"
			},
			problems: []string{"w2: unreachable: dial tcp 192.0.2.21:22: connection refused (check the host's address"},
			check: func(t *testing.T, hosts map[string]HostStatus) {
				if w2 := hosts["w2"]; w2.Reachable || w2.Match != MatchUnknown || !w2.Ready || w2.KubeletVersion != "v1.31.2" {
					t.Errorf("w2: %+v, want unreachable, match unknown, and still its Node's version and Ready", w2)
				}
			},
		},
		{
			name: "node not ready and a static pod down and one missing",
			change: func(in *StatusFacts) {
				in.Observed.Nodes["cp2"] = Node{ControlPlane: true}
				in.Pods["cp2"]["kube-scheduler"] = false
				delete(in.Pods["cp2"], "etcd")
			},
			problems: []string{"cp2: its Node is not Ready", "cp2: static pods not Ready: etcd (no mirror pod), kube-scheduler:"},
		},
		{
			name: "differs from the file",
			change: func(in *StatusFacts) {
				in.Hosts["w1"] = HostFacts{SameKforge: true, Plan: &HostPlan{Node: "w1",
					Changes: []overlay.FileChange{{Path: "/var/lib/kubelet/config.yaml"}, {Path: "/etc/containerd/config.toml"}}, Restarts: []string{"kubelet", "containerd"}}}
			},
			problems: []string{"w1: differs from the file: 2 files differ, restarts kubelet, containerd: run kforge up --dry-run to see the changes"},
			check: func(t *testing.T, hosts map[string]HostStatus) {
				if w1 := hosts["w1"]; w1.Match != MatchNo || w1.Changes != 2 || len(w1.Restarts) != 2 {
					t.Errorf("w1: %+v, want no match, 2 changes, 2 restarts", w1)
				}
			},
		},
		{
			name:     "another kforge build",
			change:   func(in *StatusFacts) { in.Hosts["cp2"] = HostFacts{} },
			problems: []string{"cp2: cannot be compared with the file: kforge on the host is another build; run kforge up --dry-run"},
			check: func(t *testing.T, hosts map[string]HostStatus) {
				cp2 := hosts["cp2"]
				if cp2.Match != MatchUnknown || cp2.MatchNote != NoteOtherBuild || cp2.CertExpiry != nil || *cp2.SameKforge || !cp2.Ready || len(cp2.StaticPods) != 4 {
					t.Errorf("cp2: %+v, want unknown (another build), no certificates, and the API's facts", cp2)
				}
			},
		},
		{
			name: "plan failed",
			change: func(in *StatusFacts) {
				in.Hosts["w1"] = HostFacts{SameKforge: true, PlanError: "asking for the host's plan: exit status 1"}
			},
			problems: []string{"w1: cannot be compared with the file: asking for the host's plan: exit status 1"},
		},
		{
			name: "expired certificate",
			change: func(in *StatusFacts) {
				hf := in.Hosts["cp1"]
				hf.Certs = []certs.ExpiryRow{{Name: "front-proxy-client", NotAfter: statusNow.Add(-48 * time.Hour)}}
				in.Hosts["cp1"] = hf
			},
			problems: []string{"cp1: certificate front-proxy-client expired on 2026-12-01"},
			check: func(t *testing.T, hosts map[string]HostStatus) {
				if e := hosts["cp1"].CertExpiry; e == nil || !e.Expired || e.DaysLeft != -2 {
					t.Errorf("cp1's certificate: %+v, want expired 2 days ago", e)
				}
			},
		},
		{
			name: "not joined, reset, and a Node not in the file",
			change: func(in *StatusFacts) {
				delete(in.Observed.Nodes, "w1")
				delete(in.Hosts, "w1")
				in.Observed.Stale["w2"] = true
				delete(in.Hosts, "w2")
				in.Observed.Nodes["old"] = Node{Ready: true, KubeletVersion: "v1.30.0"}
			},
			problems: []string{"w1: not in the cluster: run kforge up to join it", "w2: reset since it joined (its Node is left): run kforge up", "old: in the cluster but not in the file"},
			check: func(t *testing.T, hosts map[string]HostStatus) {
				if old := hosts["old"]; old.InFile || !old.InCluster || old.Role != "worker" || old.Match != MatchNo {
					t.Errorf("old: %+v, want a worker in the cluster, not in the file", old)
				}
				if w1 := hosts["w1"]; w1.InCluster || w1.Match != MatchNo {
					t.Errorf("w1: %+v, want not in the cluster, no match", w1)
				}
			},
		},
		{
			name: "the API does not answer",
			change: func(in *StatusFacts) {
				in.Observed.Cluster, in.Observed.Via, in.Observed.Nodes, in.Hosts, in.Pods = false, "", map[string]Node{}, nil, nil
				in.Observed.Silent = map[string]string{"cp1": "listing nodes: connection refused"}
			},
			problems: []string{"the cluster's API does not answer through any control-plane host's admin.conf (cp1: listing nodes: connection refused)"},
			check: func(t *testing.T, hosts map[string]HostStatus) {
				if cp1 := hosts["cp1"]; cp1.Match != MatchUnknown || cp1.InCluster {
					t.Errorf("cp1: %+v, want unknown, not known in the cluster", cp1)
				}
			},
		},
		{
			name: "certificates expired while the cluster was off",
			change: func(in *StatusFacts) {
				in.Observed.Cluster, in.Observed.Via, in.Observed.Nodes, in.Hosts, in.Pods = false, "", map[string]Node{}, nil, nil
				kubelet := func(in time.Duration) *HostCert {
					return &HostCert{Name: "kubelet-client", Path: "/var/lib/kubelet/pki/kubelet-client-current.pem", NotAfter: statusNow.Add(in)}
				}
				in.Observed.Certs = map[string]HostCerts{
					"cp1": {Now: statusNow, CAs: []HostCert{{Name: "ca", NotAfter: statusNow.Add(time.Hour)}},
						Leaves:        []HostCert{{Name: "apiserver", NotAfter: statusNow.Add(-3 * time.Hour)}, {Name: "admin.conf", NotAfter: statusNow.Add(-3 * time.Hour)}},
						KubeletClient: kubelet(-2 * time.Hour)},
					"w1": {Now: statusNow, KubeletClient: kubelet(-2 * time.Hour)},
					"w2": {Now: statusNow, KubeletClient: kubelet(time.Hour)},
				}
			},
			problems: []string{
				"the cluster's certificates have expired: run kforge up",
				"cp1: certificates EXPIRED: apiserver (3h ago), admin.conf (3h ago), kubelet-client (2h ago): run kforge up",
				"w1: certificates EXPIRED: kubelet-client (2h ago)",
			},
			check: func(t *testing.T, hosts map[string]HostStatus) {
				if e := hosts["cp1"].CertExpiry; e == nil || !e.Expired || e.Name != "apiserver" {
					t.Errorf("cp1's certificate cell %+v, want apiserver EXPIRED", e)
				}
				if e := hosts["w2"].CertExpiry; e != nil || len(hosts["w2"].ExpiredCerts) != 0 {
					t.Errorf("w2: %+v, want nothing expired", hosts["w2"])
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := healthyFacts(t)
			if tc.change != nil {
				tc.change(&in)
			}
			s := Summarize(in)
			if s.OK != (len(tc.problems) == 0) {
				t.Errorf("OK = %v with problems %q", s.OK, s.Problems)
			}
			if len(s.Problems) != len(tc.problems) {
				t.Fatalf("problems:\n%s\nwant %d starting %q", strings.Join(s.Problems, "\n"), len(tc.problems), tc.problems)
			}
			for i, p := range tc.problems {
				if !strings.HasPrefix(s.Problems[i], p) {
					t.Errorf("problem %d = %q, want it to start %q", i, s.Problems[i], p)
				}
			}
			hosts := map[string]HostStatus{}
			var order []string
			for _, h := range s.Hosts {
				hosts[h.Host] = h
				order = append(order, h.Host)
			}
			if order[0] != "cp1" || order[3] != "w2" {
				t.Errorf("hosts in order %v, want the file's first", order)
			}
			if s.Cluster.Name != in.Cluster.Name || s.Cluster.Endpoint != in.Cluster.EndpointURL() || s.Cluster.Nodes != len(in.Observed.Nodes) || s.Cluster.APIReachable != in.Observed.Cluster {
				t.Errorf("cluster line %+v", s.Cluster)
			}
			if tc.check != nil {
				tc.check(t, hosts)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
