package phases

import (
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/kforge/kforge/fleet"
)

// TestInitRecordsAnInitInProgress: init writes fleet.InitMarker before the first phase that
// writes to the host and removes it only at the very end, so that a run killed half-way
// leaves it for kforge up to find; a re-run of an init on a host that already holds a
// cluster does not write it.
func TestInitRecordsAnInitInProgress(t *testing.T) {
	t.Run("in the workflow", func(t *testing.T) {
		var names []string
		for _, p := range InitWorkflow().Phases {
			names = append(names, p.Name)
		}
		// preflight only reads the host; every phase after it may write.
		if i := slices.Index(names, "in-progress"); i != 1 || names[0] != "preflight" {
			t.Errorf("init phases %v: want in-progress right after preflight, before anything writes", names)
		}
		if names[len(names)-1] != "finish" {
			t.Errorf("init phases %v: want finish last", names)
		}
	})

	killed := errors.New("killed")
	// run runs init on d as far as the certificates (the host-only phases, which need no
	// machine), then the phase that simulates a kill when kill is set, then finish.
	run := func(t *testing.T, d *Data, kill bool) error {
		t.Helper()
		wf := InitWorkflow()
		at := slices.IndexFunc(wf.Phases, func(p Phase) bool { return p.Name == "certs" })
		if kill {
			wf.Phases = slices.Insert(wf.Phases, at+1, Phase{Name: "kill", Run: func(context.Context, *Data) error { return killed }})
		}
		var skip []string
		for _, p := range wf.Phases {
			if !slices.Contains([]string{"in-progress", "certs", "kill", "finish"}, p.Name) {
				skip = append(skip, p.Name)
			}
		}
		return wf.Run(t.Context(), d, "", skip)
	}
	marker := func(d *Data) (string, bool) {
		b, err := os.ReadFile(d.Path(fleet.InitMarker))
		return string(b), err == nil
	}

	t.Run("a fresh init killed after certs, then run again", func(t *testing.T) {
		d := newTestData(t, testCluster(t, nil), "cp1", io.Discard, nil)
		if err := run(t, d, true); !errors.Is(err, killed) {
			t.Fatalf("init: %v, want it killed", err)
		}
		if _, err := os.Stat(d.Path(DefaultCertDir + "/ca.crt")); err != nil {
			t.Fatalf("the killed init wrote no CA: %v", err)
		}
		first, ok := marker(d)
		if !ok || !strings.Contains(first, "cp1") {
			t.Fatalf("after a killed init, %s = %q (exists %v), want it naming cp1", fleet.InitMarker, first, ok)
		}
		if st, err := os.Stat(d.Path(fleet.InitMarker)); err != nil || st.Mode().Perm() != 0o644 {
			t.Errorf("%s: %v, %v; want mode 0644", fleet.InitMarker, err, st)
		}
		// Killed again: the host holds state now, but the init it holds is still unfinished.
		if err := run(t, d, true); !errors.Is(err, killed) {
			t.Fatalf("second init: %v, want it killed", err)
		}
		if again, ok := marker(d); !ok || again != first {
			t.Fatalf("after a second killed init, %s = %q (exists %v), want %q kept", fleet.InitMarker, again, ok, first)
		}
		if err := run(t, d, false); err != nil {
			t.Fatalf("init to the end: %v", err)
		}
		if m, ok := marker(d); ok {
			t.Errorf("after a finished init, %s is still there: %q", fleet.InitMarker, m)
		}
	})

	t.Run("a re-run on a host that holds a cluster, killed", func(t *testing.T) {
		d := newTestData(t, testCluster(t, nil), "cp1", io.Discard, nil)
		if err := run(t, d, false); err != nil {
			t.Fatalf("first init: %v", err)
		}
		if err := run(t, d, true); !errors.Is(err, killed) {
			t.Fatalf("re-run: %v, want it killed", err)
		}
		if m, ok := marker(d); ok {
			t.Errorf("a killed re-run on a finished cluster left %s (%q): up would take the cluster for an unfinished init", fleet.InitMarker, m)
		}
	})
}
