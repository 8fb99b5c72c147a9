package phases

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// recorder builds a workflow whose phases append their path to a log.
func recorder(log *[]string, fail string) *Workflow {
	leaf := func(path, name string) Phase {
		return Phase{Name: name, Short: "do " + name, Run: func(context.Context, *Data) error {
			*log = append(*log, path)
			if path == fail {
				return errors.New("boom")
			}
			return nil
		}}
	}
	return &Workflow{Name: "test", Phases: []Phase{
		leaf("a", "a"),
		{Name: "b", Short: "group b", Phases: []Phase{leaf("b/x", "x"), leaf("b/y", "y")}},
		{Name: "c", Short: "skipped by rule", Skip: func(*Data) (string, bool) { return "not today", true },
			Phases: []Phase{leaf("c/z", "z")}},
		leaf("d", "d"),
	}}
}

func TestWorkflowRun(t *testing.T) {
	tests := []struct {
		name    string
		only    string
		skip    []string
		fail    string
		want    []string
		wantErr string
	}{
		{name: "all", want: []string{"a", "b/x", "b/y", "d"}},
		{name: "skip leaf", skip: []string{"b/x"}, want: []string{"a", "b/y", "d"}},
		{name: "skip parent skips children", skip: []string{"b"}, want: []string{"a", "d"}},
		{name: "only parent", only: "b", want: []string{"b/x", "b/y"}},
		{name: "only leaf", only: "b/y", want: []string{"b/y"}},
		{name: "only with skip", only: "b", skip: []string{"b/y"}, want: []string{"b/x"}},
		{name: "failure stops and is wrapped once", fail: "b/x", want: []string{"a", "b/x"}, wantErr: `phase "b/x": boom`},
		{name: "unknown skip", skip: []string{"nope"}, wantErr: "unknown phase nope in --skip-phases"},
		{name: "unknown only", only: "b/q", wantErr: `unknown phase "b/q"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var log []string
			var out bytes.Buffer
			err := recorder(&log, tc.fail).Run(context.Background(), newTestData(t, testCluster(t, nil), "cp1", &out, nil), tc.only, tc.skip)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("Run: %v", err)
			}
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr && !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Run error = %v, want %q", err, tc.wantErr)
				}
				if strings.Count(err.Error(), "phase \"") > 1 {
					t.Errorf("error wrapped more than once: %v", err)
				}
			}
			if diff := cmp.Diff(tc.want, log); diff != "" {
				t.Errorf("phases run (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWorkflowRunReportsSkipsAndDurations(t *testing.T) {
	var log []string
	var out bytes.Buffer
	if err := recorder(&log, "").Run(context.Background(), newTestData(t, testCluster(t, nil), "cp1", &out, nil), "", []string{"d"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[c] skipped: not today", "[d] skipped (--skip-phases)", "[a] done in ", "[b] done in "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestWorkflowRunStopsOnCancel(t *testing.T) {
	var log []string
	ctx, cancel := context.WithCancel(context.Background())
	wf := recorder(&log, "")
	wf.Phases[0].Run = func(context.Context, *Data) error { log = append(log, "a"); cancel(); return nil }
	err := wf.Run(ctx, newTestData(t, testCluster(t, nil), "cp1", io.Discard, nil), "", nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run error = %v, want context.Canceled", err)
	}
	if diff := cmp.Diff([]string{"a"}, log); diff != "" {
		t.Errorf("phases run after cancel (-want +got):\n%s", diff)
	}
}

func TestWorkflowFlattenAndDescribe(t *testing.T) {
	var log []string
	wf := recorder(&log, "")
	want := []string{"a", "b", "b/x", "b/y", "c", "c/z", "d"}
	if diff := cmp.Diff(want, wf.Paths()); diff != "" {
		t.Errorf("Paths (-want +got):\n%s", diff)
	}
	wantText := "  a    do a\n  b    group b\n    x  do x\n    y  do y\n  c    skipped by rule\n    z  do z\n  d    do d\n"
	if diff := cmp.Diff(wantText, wf.Describe()); diff != "" {
		t.Errorf("Describe (-want +got):\n%s", diff)
	}
}
