package service

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kforge/kforge/internal/testutil"
)

func testTimer() Timer {
	return Timer{
		Name:        "kforge-certs-renew",
		Description: "kforge: renew this control plane's certificates when they are due",
		Command:     []string{"/usr/local/bin/kforge", "certs", "renew", "all", "--if-due", "-f", "/etc/kforge/certs-renew.toml", "--node", "cp1"},
		Loop:        []string{"/usr/local/bin/kforge", "certs", "renew-loop", "-f", "/etc/kforge/certs-renew.toml", "--node", "cp1"},
		Every:       24 * time.Hour,
		RandomDelay: 3 * time.Hour,
	}
}

func TestTimerUnitsGolden(t *testing.T) {
	tm := testTimer()
	testutil.Golden(t, "kforge-certs-renew.service", tm.SystemdService())
	testutil.Golden(t, "kforge-certs-renew.timer", tm.SystemdTimer())
}

func TestExecLineQuotes(t *testing.T) {
	got := execLine([]string{"/bin/kforge", "-f", "/etc/my dir/c.toml", "100%"})
	want := `/bin/kforge -f "/etc/my dir/c.toml" "100%%"`
	if got != want {
		t.Errorf("execLine = %s, want %s", got, want)
	}
}

// TestSystemdSchedule checks that Schedule converges (a second run with the timer active
// changes nothing and runs no systemctl but is-active), that a changed schedule reloads and
// restarts the timer, and that Unschedule removes exactly the two units.
func TestSystemdSchedule(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "kubelet.service")
	if err := os.WriteFile(other, []byte("[Unit]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var calls []string
	active := false
	m := &Systemd{UnitDir: dir, Run: func(_ context.Context, name string, args ...string) ([]byte, error) {
		calls = append(calls, name+" "+strings.Join(args, " "))
		switch {
		case args[0] == "is-active" && !active:
			return []byte("inactive\n"), errors.New("exit status 3")
		case args[0] == "restart":
			active = true
		case args[0] == "disable":
			active = false
		}
		return nil, nil
	}}
	ctx := context.Background()
	tm := testTimer()

	steps := []struct {
		name        string
		do          func() (bool, error)
		wantChanged bool
		wantCalls   []string
	}{
		{"install", func() (bool, error) { return m.Schedule(ctx, tm) }, true,
			[]string{"systemctl daemon-reload", "systemctl enable kforge-certs-renew.timer", "systemctl restart kforge-certs-renew.timer"}},
		{"again", func() (bool, error) { return m.Schedule(ctx, tm) }, false,
			[]string{"systemctl is-active kforge-certs-renew.timer"}},
		{"changed schedule", func() (bool, error) { tm.Every = time.Hour; return m.Schedule(ctx, tm) }, true,
			[]string{"systemctl daemon-reload", "systemctl enable kforge-certs-renew.timer", "systemctl restart kforge-certs-renew.timer"}},
		{"stopped timer is started", func() (bool, error) { active = false; return m.Schedule(ctx, tm) }, true,
			[]string{"systemctl is-active kforge-certs-renew.timer", "systemctl daemon-reload", "systemctl enable kforge-certs-renew.timer", "systemctl restart kforge-certs-renew.timer"}},
		{"remove", func() (bool, error) { return m.Unschedule(ctx, tm.Name) }, true,
			[]string{"systemctl disable --now kforge-certs-renew.timer", "systemctl stop kforge-certs-renew.service", "systemctl daemon-reload"}},
		{"remove again", func() (bool, error) { return m.Unschedule(ctx, tm.Name) }, false, nil},
	}
	for _, s := range steps {
		calls = nil
		changed, err := s.do()
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if changed != s.wantChanged {
			t.Errorf("%s: changed = %t, want %t", s.name, changed, s.wantChanged)
		}
		if diff := cmp.Diff(s.wantCalls, calls); diff != "" {
			t.Errorf("%s: systemctl calls (-want +got):\n%s", s.name, diff)
		}
	}
	entries, _ := os.ReadDir(dir)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if diff := cmp.Diff([]string{"kubelet.service"}, left); diff != "" {
		t.Errorf("unit dir after Unschedule (-want +got):\n%s", diff)
	}
}
