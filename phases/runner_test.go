package phases

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
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

func testData(out io.Writer) *Data {
	return &Data{Out: NewPrinter(out), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
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
			err := recorder(&log, tc.fail).Run(context.Background(), testData(&out), tc.only, tc.skip)
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
	if err := recorder(&log, "").Run(context.Background(), testData(&out), "", []string{"d"}); err != nil {
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
	err := wf.Run(ctx, testData(io.Discard), "", nil)
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

func TestDropChains(t *testing.T) {
	save := `*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:FLANNEL-POSTRTG - [0:0]
:DOCKER - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG
-A POSTROUTING -s 172.17.0.0/16 -j MASQUERADE
-A KUBE-SERVICES -d 10.96.0.1/32 -j KUBE-SVC-X
-A DOCKER -i docker0 -j RETURN
COMMIT
`
	want := `*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A POSTROUTING -s 172.17.0.0/16 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
COMMIT
`
	got, n := dropChains([]byte(save), ownedChain)
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("dropChains (-want +got):\n%s", diff)
	}
	if n != 5 {
		t.Errorf("removed %d lines, want 5", n)
	}
}

func TestRemoveContentsKeepsTheDirectory(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "member", "snap"), 0o700)
	os.WriteFile(filepath.Join(dir, "member", "snap", "db"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(dir, "file"), []byte("x"), 0o600)
	if err := removeContents(dir); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Fatalf("after removeContents: %v entries, %v", len(entries), err)
	}
	f := filepath.Join(dir, "single")
	os.WriteFile(f, []byte("x"), 0o600)
	if err := removeContents(f); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f); err == nil {
		t.Fatal("removeContents left a file")
	}
}

func TestMountsToUnmount(t *testing.T) {
	line := func(id int, mp string) string {
		return fmt.Sprintf("%d 1 0:1 / %s rw shared:1 - tmpfs tmpfs rw", id, mp)
	}
	tests := []struct {
		name string
		mnts []string
		want []string
	}{
		{name: "the dir itself is a mount: kept", mnts: []string{line(1, "/"), line(2, "/var/lib/kubelet")}},
		{name: "pod volumes below go, deepest first",
			mnts: []string{line(2, "/var/lib/kubelet"), line(3, "/var/lib/kubelet/pods/a/volumes/x"), line(4, "/var/lib/kubelet/pods/a")},
			want: []string{"/var/lib/kubelet/pods/a/volumes/x", "/var/lib/kubelet/pods/a"}},
		{name: "the kubelet's self-bind on top goes, the lowest stays",
			mnts: []string{line(2, "/var/lib/kubelet"), line(3, "/var/lib/kubelet")},
			want: []string{"/var/lib/kubelet"}},
		{name: "a sibling with the same prefix is not below", mnts: []string{line(2, "/var/lib/kubelet-other")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mountsToUnmount(strings.Join(tc.mnts, "\n"), "/var/lib/kubelet")
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("mountsToUnmount (-want +got):\n%s", diff)
			}
		})
	}
}
