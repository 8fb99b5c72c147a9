package testbed

import (
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const helperEnv = "KF_TESTBED_SUPERVISOR_DIR"

// TestSupervisorHelper is the process TestSupervisor drives: the service manager of a
// host's PID 1, without the namespaces (which need root).
func TestSupervisorHelper(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("this is the helper process of TestSupervisor, not a test of its own")
	}
	cfg := initConfig{Name: "helper", HostDir: dir, Services: []serviceSpec{
		{Name: "flaky", Argv: []string{"/bin/sh", "-c", "exit 3"}, PidFile: filepath.Join(dir, "flaky.pid")},
		{Name: "steady", Argv: []string{"/bin/sh", "-c", "exec sleep 1000"}, PidFile: filepath.Join(dir, "steady.pid")},
	}}
	os.Exit(newSupervisor(cfg, slog.New(slog.NewTextHandler(os.Stderr, nil))).run())
}

// TestSupervisor checks what kforge relies on in a host: a service that exits is started
// again with a growing backoff, one that is killed comes back at once, the testbed can
// stop and start one, pid files follow, and SIGTERM stops everything.
func TestSupervisor(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"log", "down"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSupervisorHelper$")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if t.Failed() {
			t.Logf("supervisor log:\n%s", stderr.String())
		}
	})

	status := func() map[string]ServiceStatus {
		b, err := os.ReadFile(filepath.Join(dir, "status.json"))
		if err != nil {
			return nil
		}
		var st hostStatus
		if json.Unmarshal(b, &st) != nil {
			return nil
		}
		m := map[string]ServiceStatus{}
		for _, s := range st.Services {
			m[s.Name] = s
		}
		return m
	}
	waitFor := func(what string, cond func(map[string]ServiceStatus) bool) map[string]ServiceStatus {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if st := status(); st != nil && cond(st) {
				return st
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("timed out waiting for %s; status: %+v", what, status())
		return nil
	}
	pidFile := func(name string) int {
		b, err := os.ReadFile(filepath.Join(dir, name+".pid"))
		if err != nil {
			return 0
		}
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
	hup := func() {
		t.Helper()
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}

	start := time.Now()
	st := waitFor("flaky to be restarted 3 times", func(st map[string]ServiceStatus) bool {
		return st["flaky"].Restarts >= 3 && st["steady"].State == StateRunning
	})
	// 100 + 200 + 400 ms of backoff at least: the waits grow.
	if took := time.Since(start); took < 700*time.Millisecond {
		t.Errorf("3 restarts took %s; with the backoff they take at least 700ms", took)
	}
	if got := st["flaky"].LastExit; got != "exit status 3" {
		t.Errorf("flaky's last exit = %q, want exit status 3", got)
	}
	steady := st["steady"].PID
	if steady == 0 || pidFile("steady") != steady {
		t.Fatalf("steady runs as pid %d, but its pid file says %d", steady, pidFile("steady"))
	}

	// Stop on request: it stays stopped.
	os.WriteFile(filepath.Join(dir, "down", "steady"), nil, 0o644)
	hup()
	waitFor("steady to stop", func(st map[string]ServiceStatus) bool { return st["steady"].State == StateStopped })
	if pidFile("steady") != 0 {
		t.Error("the pid file of a stopped service is still there")
	}
	if syscall.Kill(steady, 0) == nil {
		t.Errorf("steady (pid %d) still runs after being stopped", steady)
	}
	time.Sleep(300 * time.Millisecond)
	if s := status()["steady"]; s.State != StateStopped {
		t.Errorf("a stopped service came back: %+v", s)
	}

	// Start on request.
	os.Remove(filepath.Join(dir, "down", "steady"))
	hup()
	st = waitFor("steady to run again", func(st map[string]ServiceStatus) bool { return st["steady"].State == StateRunning })
	steady = st["steady"].PID

	// Killed: restarted at once, like kforge restarting containerd after a config change.
	syscall.Kill(steady, syscall.SIGKILL)
	st = waitFor("steady to be restarted", func(st map[string]ServiceStatus) bool {
		return st["steady"].State == StateRunning && st["steady"].PID != steady
	})
	if got := st["steady"].LastExit; got != "killed by killed" {
		t.Errorf("steady's last exit = %q, want killed by killed", got)
	}

	// SIGTERM: everything stops, then the supervisor exits.
	steady = st["steady"].PID
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the supervisor exited with %v after SIGTERM", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the supervisor did not exit after SIGTERM")
	}
	if err := syscall.Kill(steady, 0); err == nil {
		t.Errorf("steady (pid %d) outlived the supervisor", steady)
	}
}
