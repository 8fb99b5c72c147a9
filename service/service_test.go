package service

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestMain lets the test binary stand in for kforge: "<test> supervise ..." runs the
// supervisor loop, as `kforge supervise` does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "supervise" {
		os.Exit(superviseMain(os.Args[2:]))
	}
	os.Exit(m.Run())
}

func superviseMain(args []string) int {
	opts := SuperviseOptions{Log: os.Stdout, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	for len(args) > 0 && args[0] != "--" {
		switch args[0] {
		case "--name":
			opts.Name = args[1]
		case "--state-dir":
			opts.StateDir = args[1]
		case "--env-file":
			opts.EnvFiles = append(opts.EnvFiles, args[1])
		}
		args = args[2:]
	}
	opts.Command = args[1:]
	if err := Supervise(context.Background(), opts); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func TestExpandArgs(t *testing.T) {
	env := map[string]string{"A": "--x=1  --y=2", "B": "one word"}
	got := ExpandArgs([]string{"bin", "$A", "${B}", "$MISSING", "--z=$A", "plain"}, env)
	want := []string{"bin", "--x=1", "--y=2", "one word", "--z=$A", "plain"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ExpandArgs (-want +got):\n%s", diff)
	}
}

func TestReadEnvFiles(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.env")
	b := filepath.Join(dir, "b.env")
	os.WriteFile(a, []byte("# comment\nX=\"--a=1 --b=2\"\nY=plain\n"), 0o644)
	os.WriteFile(b, []byte("Y=override\n"), 0o644)
	got, err := readEnvFiles([]string{a, filepath.Join(dir, "missing"), b})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"X": "--a=1 --b=2", "Y": "override"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("readEnvFiles (-want +got):\n%s", diff)
	}
}

func TestSystemdRestartWritesUnitsAndRunsSystemctl(t *testing.T) {
	dir := t.TempDir()
	var calls []string
	m := &Systemd{UnitDir: dir, Run: func(_ context.Context, name string, args ...string) ([]byte, error) {
		calls = append(calls, name+" "+strings.Join(args, " "))
		return nil, nil
	}}
	s := Spec{Name: "kubelet", Unit: []byte("unit\n"), DropIn: []byte("dropin\n")}
	if err := m.Restart(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	want := []string{"systemctl daemon-reload", "systemctl enable kubelet.service", "systemctl restart kubelet.service"}
	if diff := cmp.Diff(want, calls); diff != "" {
		t.Errorf("first restart (-want +got):\n%s", diff)
	}
	for path, content := range map[string]string{"kubelet.service": "unit\n", "kubelet.service.d/10-kforge.conf": "dropin\n"} {
		b, err := os.ReadFile(filepath.Join(dir, path))
		if err != nil || string(b) != content {
			t.Errorf("%s = %q, %v; want %q", path, b, err, content)
		}
	}
	// Unchanged units: reloaded all the same (a killed run may have written them).
	calls = nil
	if err := m.Restart(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, calls); diff != "" {
		t.Errorf("second restart (-want +got):\n%s", diff)
	}
}

func TestHasSystemd(t *testing.T) {
	root := t.TempDir()
	if HasSystemd(root) {
		t.Fatal("HasSystemd on an empty root")
	}
	os.MkdirAll(filepath.Join(root, "run/systemd/system"), 0o755)
	if !HasSystemd(root) {
		t.Fatal("HasSystemd with /run/systemd/system")
	}
}

// TestSupervisorRunsRestartsAndStops runs a real supervisor (this test binary) over a
// shell loop: it starts it, restarts it when it dies, restarts it on request with fresh
// env, and stops it.
func TestSupervisorRunsRestartsAndStops(t *testing.T) {
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	m := &Supervisor{StateDir: filepath.Join(dir, "run"), LogDir: filepath.Join(dir, "log"), Kforge: exe}
	env := filepath.Join(dir, "svc.env")
	os.WriteFile(env, []byte("MSG=first\n"), 0o644)
	out := filepath.Join(dir, "out")
	spec := Spec{Name: "svc", EnvFiles: []string{env},
		Command: []string{"/bin/sh", "-c", "echo $0 >> " + out + "; exec sleep 300", "${MSG}"}}
	ctx := context.Background()
	t.Cleanup(func() { m.Stop(context.Background(), "svc") })

	if err := m.Restart(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if ok, _ := m.Active(ctx, "svc"); !ok {
		t.Fatal("supervisor not active after Restart")
	}
	waitFor(t, "the first start to log", func() bool {
		b, _ := os.ReadFile(out)
		return string(b) == "first\n"
	})
	first := readPid(m.ChildPidFile("svc"))

	// The service dies: the supervisor starts it again.
	syscall.Kill(first, syscall.SIGKILL)
	waitFor(t, "a new service process", func() bool {
		p := readPid(m.ChildPidFile("svc"))
		return p > 0 && p != first && alive(p)
	})
	waitFor(t, "the second start to log", func() bool {
		b, _ := os.ReadFile(out)
		return string(b) == "first\nfirst\n"
	})

	// Restart with new env: the supervisor re-reads the env file.
	os.WriteFile(env, []byte("MSG=second\n"), 0o644)
	if err := m.Restart(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the restarted service to log", func() bool {
		b, _ := os.ReadFile(out)
		return strings.HasSuffix(string(b), "second\n")
	})
	b, _ := os.ReadFile(out)
	if diff := cmp.Diff("first\nfirst\nsecond\n", string(b)); diff != "" {
		t.Errorf("service starts (-want +got):\n%s", diff)
	}

	child := readPid(m.ChildPidFile("svc"))
	if err := m.Stop(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := m.Active(ctx, "svc"); ok {
		t.Error("supervisor still active after Stop")
	}
	waitFor(t, "the service process to end", func() bool { return !alive(child) })
	if err := m.Stop(ctx, "svc"); err != nil {
		t.Errorf("Stop of a stopped service: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSystemdRestartReloadsAfterAKill kills kforge after it wrote a changed unit and before
// daemon-reload: the next restart must still reload, or systemd restarts the old unit.
func TestSystemdRestartReloadsAfterAKill(t *testing.T) {
	dir := t.TempDir()
	var calls []string
	killed := fmt.Errorf("killed")
	m := &Systemd{UnitDir: dir, Run: func(_ context.Context, name string, args ...string) ([]byte, error) {
		call := name + " " + strings.Join(args, " ")
		if killed != nil && call == "systemctl daemon-reload" {
			return nil, killed
		}
		calls = append(calls, call)
		return nil, nil
	}}
	s := Spec{Name: "kubelet", Unit: []byte("unit v2\n"), DropIn: []byte("dropin v2\n")}
	if err := m.Restart(context.Background(), s); err != killed {
		t.Fatalf("first restart: %v, want it killed at daemon-reload", err)
	}
	killed = nil
	if err := m.Restart(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	want := []string{"systemctl daemon-reload", "systemctl enable kubelet.service", "systemctl restart kubelet.service"}
	if diff := cmp.Diff(want, calls); diff != "" {
		t.Errorf("restart after the kill (-want +got):\n%s", diff)
	}
}
