package host_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kforge/kforge/host"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name       string
		cmd        host.Cmd
		stdin      string
		wantStdout string
		wantStderr string
		wantCode   int
	}{
		{
			name:       "script with stdout and stderr",
			cmd:        host.Cmd{Script: "echo out; echo err >&2"},
			wantStdout: "out\n",
			wantStderr: "err\n",
		},
		{
			name:       "args are passed verbatim",
			cmd:        host.Cmd{Args: []string{"printf", "%s|", "a b", "it's", "$HOME", "*", ""}},
			wantStdout: "a b|it's|$HOME|*||",
		},
		{
			name:       "stdin",
			cmd:        host.Cmd{Args: []string{"cat"}},
			stdin:      "hello\n",
			wantStdout: "hello\n",
		},
		{
			name:       "multi-line script",
			cmd:        host.Cmd{Script: "x=1\nif [ \"$x\" = 1 ]; then\n  echo one\nfi"},
			wantStdout: "one\n",
		},
		{
			name:       "non-zero exit",
			cmd:        host.Cmd{Script: "echo partial; echo failed >&2; exit 3"},
			wantStdout: "partial\n",
			wantStderr: "failed\n",
			wantCode:   3,
		},
	}
	h, _ := newSSHHost(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cmd
			if tc.stdin != "" {
				c.Stdin = strings.NewReader(tc.stdin)
			}
			res, err := h.Run(testContext(t), c)
			var exitErr *host.ExitError
			switch {
			case tc.wantCode == 0 && err != nil:
				t.Fatalf("Run: %v", err)
			case tc.wantCode != 0 && !errors.As(err, &exitErr):
				t.Fatalf("Run error = %v, want an *ExitError", err)
			case tc.wantCode != 0 && exitErr.Code != tc.wantCode:
				t.Errorf("ExitError.Code = %d, want %d", exitErr.Code, tc.wantCode)
			}
			got := []string{string(res.Stdout), string(res.Stderr), strconv.Itoa(res.ExitCode)}
			want := []string{tc.wantStdout, tc.wantStderr, strconv.Itoa(tc.wantCode)}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("stdout, stderr, exit code differ (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunWritesToGivenWriters(t *testing.T) {
	h, _ := newSSHHost(t)
	var stdout, stderr bytes.Buffer
	res, err := h.Run(testContext(t), host.Cmd{Script: "echo out; echo err >&2; exit 1", Stdout: &stdout, Stderr: &stderr})
	var exitErr *host.ExitError
	if !errors.As(err, &exitErr) {
		t.Fatalf("Run error = %v, want an *ExitError", err)
	}
	if stdout.String() != "out\n" || stderr.String() != "err\n" {
		t.Errorf("writers got stdout %q, stderr %q; want %q, %q", stdout.String(), stderr.String(), "out\n", "err\n")
	}
	if res.Stdout != nil || res.Stderr != nil {
		t.Errorf("Result holds output %q, %q although writers were given", res.Stdout, res.Stderr)
	}
	if exitErr.Stderr != "err" {
		t.Errorf("ExitError.Stderr = %q, want %q even with a Stderr writer", exitErr.Stderr, "err")
	}
}

func TestExitError(t *testing.T) {
	const secret = "s3cret-token-value"
	h, _ := newSSHHost(t)
	script := `cat >/dev/null; i=1; while [ $i -le 30 ]; do echo "line $i" >&2; i=$((i+1)); done; exit 42`
	_, err := h.Run(testContext(t), host.Cmd{Script: script, Stdin: strings.NewReader(secret)})
	var exitErr *host.ExitError
	if !errors.As(err, &exitErr) {
		t.Fatalf("Run error = %v, want an *ExitError", err)
	}
	var wantTail []string
	for i := 11; i <= 30; i++ {
		wantTail = append(wantTail, fmt.Sprintf("line %d", i))
	}
	if diff := cmp.Diff(strings.Join(wantTail, "\n"), exitErr.Stderr); diff != "" {
		t.Errorf("ExitError.Stderr is not the last 20 lines (-want +got):\n%s", diff)
	}
	if exitErr.Host != "h1" || exitErr.Code != 42 {
		t.Errorf("ExitError host, code = %q, %d; want %q, 42", exitErr.Host, exitErr.Code, "h1")
	}
	msg := err.Error()
	for _, want := range []string{"h1", "cat >/dev/null; i=1;", "code 42", "line 30"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, secret) {
		t.Errorf("error %q leaks the stdin secret", msg)
	}
}

func TestExitErrorDisplay(t *testing.T) {
	h, _ := newSSHHost(t)
	_, err := h.Run(testContext(t), host.Cmd{
		Args:    []string{"sh", "-c", "exit 1", "token=abcdef.0123456789abcdef"},
		Display: "kubeadm-style join with a token",
	})
	var exitErr *host.ExitError
	if !errors.As(err, &exitErr) {
		t.Fatalf("Run error = %v, want an *ExitError", err)
	}
	if exitErr.Cmd != "kubeadm-style join with a token" || strings.Contains(err.Error(), "0123456789abcdef") {
		t.Errorf("error %q does not use Display in place of the command", err)
	}
}

func TestRunInvalidCmd(t *testing.T) {
	h, srv := newSSHHost(t)
	for _, c := range []host.Cmd{{}, {Args: []string{"true"}, Script: "true"}} {
		if _, err := h.Run(testContext(t), c); err == nil {
			t.Errorf("Run(%+v) succeeded, want an error", c)
		}
	}
	if srv.ExecCount() != 0 {
		t.Errorf("server ran %d commands for invalid Cmds, want 0", srv.ExecCount())
	}
}

// TestRunCancel runs a long sleep, cancels it, and checks that Run returns
// promptly with context.Canceled and that the process is gone.
func TestRunCancel(t *testing.T) {
	h, srv := newSSHHost(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := h.Run(ctx, host.Cmd{Script: fmt.Sprintf("echo $$ > %s.tmp; mv %s.tmp %s; exec sleep 30", pidFile, pidFile, pidFile)})
		done <- err
	}()
	var pid int
	waitFor(t, 5*time.Second, "the command to start", func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})

	start := time.Now()
	cancel()
	var err error
	select {
	case err = <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return within 3s of cancellation")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run error = %v, want context.Canceled", err)
	}
	t.Logf("Run returned %s after cancel: %v", time.Since(start), err)
	waitFor(t, 3*time.Second, fmt.Sprintf("process %d to be gone", pid), func() bool {
		return processGone(pid)
	})
	if srv.SignalCount() != 1 {
		t.Errorf("server got %d signal requests, want 1 (KILL)", srv.SignalCount())
	}
}

// processGone reports whether pid has exited. A zombie counts as gone: once
// orphaned it waits for init to reap it, which can take a while in a
// container.
func processGone(pid int) bool {
	if syscall.Kill(pid, 0) == syscall.ESRCH {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name: "pid (comm) Z ...".
	i := strings.LastIndex(string(stat), ") ")
	return i >= 0 && strings.HasPrefix(string(stat[i+2:]), "Z")
}
