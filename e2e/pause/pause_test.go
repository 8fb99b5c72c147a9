//go:build unix

package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestMain runs main when the test binary is started as the pause process.
func TestMain(m *testing.M) {
	if os.Getenv("KFORGE_PAUSE_TEST_MAIN") == "1" {
		// An orphan-to-be: a child that exits at once, which pause must reap.
		if out := os.Getenv("KFORGE_PAUSE_TEST_CHILD_PID"); out != "" {
			c := exec.Command("/bin/sh", "-c", "exit 0")
			if err := c.Start(); err == nil {
				_ = os.WriteFile(out, []byte(strconv.Itoa(c.Process.Pid)), 0o644)
			}
		}
		main()
	}
	os.Exit(m.Run())
}

func startPause(t *testing.T, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, "KFORGE_PAUSE_TEST_MAIN=1")...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd
}

func waitExit(t *testing.T, cmd *exec.Cmd) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("pause did not exit")
		return nil
	}
}

func TestExitsZeroOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := startPause(t)
			time.Sleep(200 * time.Millisecond) // let it install its handlers
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if err := waitExit(t, cmd); err != nil {
				t.Fatalf("pause exited with %v after %v, want status 0", err, sig)
			}
		})
	}
}

func TestReapsChildren(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child")
	cmd := startPause(t, "KFORGE_PAUSE_TEST_CHILD_PID="+pidFile)
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(pidFile)
		if err == nil && len(b) > 0 {
			pid, _ := strconv.Atoi(string(b))
			// Once reaped, the child's /proc entry is gone; a zombie keeps it.
			if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); errors.Is(err, os.ErrNotExist) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the exited child was not reaped")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := waitExit(t, cmd); err != nil {
		t.Fatal(err)
	}
}
