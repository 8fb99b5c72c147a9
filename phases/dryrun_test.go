package phases

import (
	"io"
	"strings"
	"testing"

	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/internal/overlay"
)

// planOver runs run in a dry run of cluster c for node, over the host that host (a test
// Data) set up under its Root, and returns the changes it plans.
func planOver(t *testing.T, host *Data, c *config.Cluster, node *config.Host, run func(d *Data) error) []overlay.FileChange {
	t.Helper()
	s := DataSpec{Cluster: c, Node: node, AdvertiseAddress: host.AdvertiseAddress, CertDir: host.CertDir,
		KubeconfigDir: host.KubeconfigDir, ManifestsDir: host.ManifestsDir, PreflightSystem: host.PreflightSystem, Out: NewPrinter(io.Discard), Log: host.Log}
	deps := DryRunDeps(s, t.TempDir())
	deps.DryRunHost = host.Root
	d := NewData(s, deps)
	if err := run(d); err != nil {
		t.Fatal(err)
	}
	changes, err := d.PlannedChanges()
	if err != nil {
		t.Fatal(err)
	}
	return changes
}

// TestDryRunPlansOnlyWhatChanged: a dry run over a host that init already set up reads
// the host's files through the overlay, so it plans nothing for an unchanged file and,
// for a changed setting, exactly the file it changes, with a diff. Before the overlay, a
// dry run compared with its empty scratch root and listed every file as new.
func TestDryRunPlansOnlyWhatChanged(t *testing.T) {
	c := testCluster(t, nil)
	phasesOf := func() *Workflow {
		return &Workflow{Name: "init", Phases: []Phase{certsPhase(), kubeconfigPhase(), etcdPhase(), controlPlanePhase()}}
	}
	host := newTestData(t, c, "cp1", io.Discard, nil)
	host.Join.ControlPlane = false // init, not a join
	if err := phasesOf().Run(t.Context(), host, "", nil); err != nil {
		t.Fatal(err)
	}
	plan := func(c *config.Cluster) []string {
		t.Helper()
		run := func(d *Data) error { return phasesOf().Run(t.Context(), d, "", nil) }
		var out []string
		for _, ch := range planOver(t, host, c, &c.Hosts[0], run) {
			out = append(out, ch.Action+" "+ch.Path+"\n"+ch.Diff)
		}
		return out
	}
	if got := plan(c); len(got) != 0 {
		t.Fatalf("a dry run of the same configuration plans changes:\n%s", strings.Join(got, "\n"))
	}
	changed := testCluster(t, nil)
	changed.APIServer.ExtraArgs = map[string]string{"max-requests-inflight": "500"}
	got := plan(changed)
	if len(got) != 1 || !strings.HasPrefix(got[0], "update /etc/kubernetes/manifests/kube-apiserver.yaml\n") ||
		!strings.Contains(got[0], "+    - --max-requests-inflight=500") {
		t.Fatalf("plan of a new apiserver extra arg = %q, want the apiserver manifest alone, with the new flag in its diff", got)
	}
}
