package cmd

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kforge/kforge/fleet"
	"github.com/kforge/kforge/internal/testutil"
)

// sampleStatus is a status with a host of each kind: well, differing, another kforge
// build, unreachable, and a Node the file does not list.
func sampleStatus() *fleet.Status {
	yes, no := true, false
	expires := time.Date(2027, 12, 2, 13, 0, 0, 0, time.UTC)
	return &fleet.Status{
		Cluster: fleet.ClusterStatus{Name: "demo", Endpoint: "https://192.0.2.10:6443", APIReachable: true, Via: "cp1", Nodes: 4},
		Hosts: []fleet.HostStatus{
			{Host: "cp1", Role: "control-plane", InFile: true, InCluster: true, Reachable: true, KubeletVersion: "v1.31.2", Ready: true,
				StaticPods: []fleet.PodHealth{{Name: "etcd", Ready: true}, {Name: "kube-apiserver", Ready: true}, {Name: "kube-controller-manager", Ready: true}, {Name: "kube-scheduler", Ready: true}},
				CertExpiry: &fleet.CertExpiry{Name: "apiserver", NotAfter: expires, DaysLeft: 364}, SameKforge: &yes, Match: fleet.MatchYes},
			{Host: "cp2", Role: "control-plane", InFile: true, InCluster: true, Reachable: true, KubeletVersion: "v1.31.2", Ready: true,
				StaticPods: []fleet.PodHealth{{Name: "etcd", Ready: true}, {Name: "kube-apiserver"}, {Name: "kube-controller-manager", Ready: true}, {Name: "kube-scheduler", Missing: true}},
				SameKforge: &no, Match: fleet.MatchUnknown, MatchNote: fleet.NoteOtherBuild},
			{Host: "w1", Role: "worker", InFile: true, InCluster: true, Reachable: true, KubeletVersion: "v1.31.2", Ready: true,
				SameKforge: &yes, Match: fleet.MatchNo, MatchNote: "2 files differ, restarts kubelet", Changes: 2, Restarts: []string{"kubelet"}},
			{Host: "w2", Role: "worker", InFile: true, InCluster: true, KubeletVersion: "v1.31.2",
				SSHError: "unreachable: dial tcp 192.0.2.21:22: connection refused", Match: fleet.MatchUnknown, MatchNote: "not reachable"},
			{Host: "old", Role: "worker", InCluster: true, KubeletVersion: "v1.30.0", Ready: true, Match: fleet.MatchNo, MatchNote: "not in the file"},
		},
		Problems: []string{"cp2: static pods not Ready: kube-apiserver, kube-scheduler (no mirror pod)", "w1: differs from the file"},
	}
}

func TestPrintStatusText(t *testing.T) {
	var out bytes.Buffer
	if err := printStatus(&out, sampleStatus(), "text"); err != nil {
		t.Fatal(err)
	}
	testutil.Golden(t, "status.txt", out.Bytes())

	// Without the API, whether a host is in the cluster is not known.
	s := sampleStatus()
	s.Cluster.APIReachable, s.Cluster.Via = false, ""
	out.Reset()
	if err := printStatus(&out, s, "text"); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	lines := strings.Split(got, "\n")
	for i, h := range s.Hosts {
		if f := strings.Fields(lines[2+i]); f[0] != h.Host || f[2] != "unknown" {
			t.Errorf("row %q: want %s in the cluster: unknown", lines[2+i], h.Host)
		}
	}
	if !strings.Contains(got, "API https://192.0.2.10:6443 does not answer") {
		t.Errorf("the table without the API:\n%s", got)
	}
}

// TestPrintStatusJSON: the JSON is the documented Status, field for field, and reads back
// into it.
func TestPrintStatusJSON(t *testing.T) {
	var out bytes.Buffer
	s := sampleStatus()
	if err := printStatus(&out, s, "json"); err != nil {
		t.Fatal(err)
	}
	testutil.Golden(t, "status.json", out.Bytes())
	var back fleet.Status
	if err := json.Unmarshal(out.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(*s, back); d != "" {
		t.Errorf("JSON round trip (-want +got):\n%s", d)
	}
}

// TestStatusErr: kforge status fails exactly when the status is not OK, with every
// problem in the message.
func TestStatusErr(t *testing.T) {
	if err := statusErr(&fleet.Status{OK: true, Problems: []string{}}); err != nil {
		t.Errorf("an OK status: %v, want nil", err)
	}
	s := sampleStatus()
	err := statusErr(s)
	if err == nil {
		t.Fatal("a status with problems: nil error")
	}
	for _, p := range s.Problems {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not name the problem %q", err, p)
		}
	}
	if ExitCode(err) != 1 {
		t.Errorf("exit code %d, want 1", ExitCode(err))
	}
}

// TestStatusFlags: the file is required and the output format checked, before any host is
// contacted.
func TestStatusFlags(t *testing.T) {
	if _, err := run(t, "status"); err == nil || !strings.Contains(err.Error(), "config") {
		t.Errorf("status without -f: %v, want the flag named", err)
	}
	if _, err := run(t, "status", "-f", "cluster.toml", "-o", "yaml"); err == nil || !strings.Contains(err.Error(), "--output") {
		t.Errorf("status -o yaml: %v, want --output named", err)
	}
}
