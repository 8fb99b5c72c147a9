package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kforge/kforge/internal/fileutil"
)

// Timer is a check that runs again and again: a systemd timer and its oneshot service on
// systemd hosts, and, where kforge supervises services, a supervised process that runs
// the check in a loop on the same schedule.
type Timer struct {
	// Name names the units ("<Name>.timer", "<Name>.service") or the supervised process.
	Name string
	// Description is the units' Description.
	Description string
	// Command runs the check once: the oneshot service's ExecStart.
	Command []string
	// Loop runs the check every Every plus up to RandomDelay, until stopped: what the
	// supervisor runs.
	Loop []string
	// Every is the time between two checks; RandomDelay a random delay added to each, so
	// that several hosts do not check at once.
	Every, RandomDelay time.Duration
}

// Scheduler installs, removes and reports periodic checks. Systemd, Supervisor and DryRun
// implement it.
type Scheduler interface {
	// Schedule installs t and starts it, or leaves it alone when it is installed as t
	// says and active; it reports whether it changed anything.
	Schedule(ctx context.Context, t Timer) (bool, error)
	// Unschedule stops and removes what Schedule installed for name; it reports whether
	// there was anything.
	Unschedule(ctx context.Context, name string) (bool, error)
	// Scheduled reports whether name is installed and whether it is active.
	Scheduled(ctx context.Context, name string) (installed, active bool, err error)
}

// systemdSeconds writes d as whole seconds, which every systemd reads.
func systemdSeconds(d time.Duration) string {
	return strconv.FormatInt(int64(d.Round(time.Second)/time.Second), 10) + "s"
}

// execLine quotes each argument that needs it, for ExecStart.
func execLine(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'\\$%;") {
			a = strconv.Quote(strings.ReplaceAll(a, "%", "%%"))
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// SystemdService is t's oneshot service unit.
func (t Timer) SystemdService() []byte {
	return fmt.Appendf(nil, `# Written by kforge; kforge reset removes it. Started by %[1]s.timer.
[Unit]
Description=%[2]s
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
ExecStart=%[3]s
`, t.Name, t.Description, execLine(t.Command))
}

// SystemdTimer is t's timer unit: the first check a minute after the timer starts (at
// boot, or when kforge installs it), then one every Every after the last, each delayed by
// up to RandomDelay.
func (t Timer) SystemdTimer() []byte {
	return fmt.Appendf(nil, `# Written by kforge; kforge reset removes it.
[Unit]
Description=%[1]s (schedule)

[Timer]
OnActiveSec=60s
OnUnitActiveSec=%[2]s
RandomizedDelaySec=%[3]s
AccuracySec=1s

[Install]
WantedBy=timers.target
`, t.Description, systemdSeconds(t.Every), systemdSeconds(t.RandomDelay))
}

func (m *Systemd) timerFiles(t Timer) []File {
	return []File{
		{Path: filepath.Join(m.UnitDir, t.Name+".service"), Data: t.SystemdService(), Mode: 0o644, DirMode: 0o755},
		{Path: filepath.Join(m.UnitDir, t.Name+".timer"), Data: t.SystemdTimer(), Mode: 0o644, DirMode: 0o755},
	}
}

// Schedule implements Scheduler: it writes the two units, reloads systemd and enables and
// (re)starts the timer when a unit changed or the timer is not active.
func (m *Systemd) Schedule(ctx context.Context, t Timer) (bool, error) {
	changed := false
	for _, f := range m.timerFiles(t) {
		res, err := fileutil.WriteAtomic(f.Path, f.Data, f.Mode, f.DirMode)
		if err != nil {
			return false, err
		}
		changed = changed || res != fileutil.Unchanged
	}
	if !changed {
		if _, active, err := m.Scheduled(ctx, t.Name); err != nil || active {
			return false, err
		}
	}
	if _, err := m.Run(ctx, "systemctl", "daemon-reload"); err != nil {
		return false, err
	}
	if _, err := m.Run(ctx, "systemctl", "enable", t.Name+".timer"); err != nil {
		return false, err
	}
	if _, err := m.Run(ctx, "systemctl", "restart", t.Name+".timer"); err != nil {
		return false, err
	}
	return true, nil
}

// Unschedule implements Scheduler: it disables and stops the timer, stops a check that
// runs, and removes both units.
func (m *Systemd) Unschedule(ctx context.Context, name string) (bool, error) {
	present := false
	for _, unit := range []string{name + ".timer", name + ".service"} {
		if _, err := os.Lstat(filepath.Join(m.UnitDir, unit)); err == nil {
			present = true
		}
	}
	if !present {
		return false, nil
	}
	// A unit systemd no longer knows makes these fail; removing the files is what matters.
	_, _ = m.Run(ctx, "systemctl", "disable", "--now", name+".timer")
	_, _ = m.Run(ctx, "systemctl", "stop", name+".service")
	for _, unit := range []string{name + ".timer", name + ".service"} {
		if err := os.Remove(filepath.Join(m.UnitDir, unit)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return true, fmt.Errorf("removing %s: %w", unit, err)
		}
	}
	_, err := m.Run(ctx, "systemctl", "daemon-reload")
	return true, err
}

// Scheduled implements Scheduler: the timer unit exists, and systemctl says it is active.
func (m *Systemd) Scheduled(ctx context.Context, name string) (bool, bool, error) {
	if _, err := os.Stat(filepath.Join(m.UnitDir, name+".timer")); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, false, nil
		}
		return false, false, err
	}
	active, err := m.unitActive(ctx, name+".timer")
	return true, active, err
}

// loopFile records the loop command the supervisor runs for name, so that Schedule sees
// a changed schedule.
func (m *Supervisor) loopFile(name string) string { return filepath.Join(m.StateDir, name+".loop") }

// Schedule implements Scheduler: a supervised process runs t.Loop. A running loop whose
// command changed is stopped and started again with the new one.
func (m *Supervisor) Schedule(ctx context.Context, t Timer) (bool, error) {
	want := strings.Join(t.Loop, "\x00")
	have, _ := os.ReadFile(m.loopFile(t.Name))
	running := m.running(t.Name) > 0
	if running && string(have) == want {
		return false, nil
	}
	if running {
		if err := m.Stop(ctx, t.Name); err != nil {
			return false, err
		}
	}
	if _, err := fileutil.WriteAtomic(m.loopFile(t.Name), []byte(want), 0o644, 0o755); err != nil {
		return false, err
	}
	if err := m.Restart(ctx, Spec{Name: t.Name, Command: slices.Clone(t.Loop)}); err != nil {
		return true, err
	}
	return true, nil
}

// Unschedule implements Scheduler: it stops the loop's supervisor and forgets the loop.
func (m *Supervisor) Unschedule(ctx context.Context, name string) (bool, error) {
	_, err := os.Stat(m.loopFile(name))
	present := err == nil || m.running(name) > 0
	if !present {
		return false, nil
	}
	if err := m.Stop(ctx, name); err != nil {
		return true, err
	}
	if err := os.Remove(m.loopFile(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return true, fmt.Errorf("removing %s: %w", m.loopFile(name), err)
	}
	return true, nil
}

// Scheduled implements Scheduler.
func (m *Supervisor) Scheduled(_ context.Context, name string) (bool, bool, error) {
	_, err := os.Stat(m.loopFile(name))
	running := m.running(name) > 0
	return err == nil || running, running, nil
}

// Schedule implements Scheduler: it says what a real run would install.
func (m *DryRun) Schedule(_ context.Context, t Timer) (bool, error) {
	m.Say("would install %s: %s every %s (random delay up to %s)", t.Name, strings.Join(t.Command, " "), t.Every, t.RandomDelay)
	return true, nil
}

// Unschedule implements Scheduler.
func (m *DryRun) Unschedule(_ context.Context, name string) (bool, error) {
	m.Say("would remove %s, if present", name)
	return false, nil
}

// Scheduled implements Scheduler: nothing is installed on a dry run.
func (*DryRun) Scheduled(context.Context, string) (bool, bool, error) { return false, false, nil }
