//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/kforge/kforge/e2e/lab"
)

// TestInitSoak is `make soak`: KFORGE_SOAK_CYCLES fresh `kforge init` plus `kforge reset`
// cycles in a row on one test host. A cycle counts as passed when init returns, the node is
// Ready, every system pod is Ready and reset succeeds. A failed cycle is reported and the
// next one starts from a reset host; the test fails if any cycle failed. It reports the
// count and the spread of init times. Not part of `make e2e`: 30 cycles take about an hour.
func TestInitSoak(t *testing.T) {
	cycles, _ := strconv.Atoi(os.Getenv("KFORGE_SOAK_CYCLES"))
	if cycles <= 0 {
		t.Skip("the soak runs only when KFORGE_SOAK_CYCLES is set to a number of cycles (make soak sets 30)")
	}
	ctx := t.Context()
	l := newLab(t, ctx, 1)
	h, _ := l.TB.Host("h1")
	n := &node{t: t, h: h, lab: l}
	if err := l.WriteConfig(ctx, h, l.ClusterConfig(h)); err != nil {
		t.Fatal(err)
	}
	initArgs := []string{"init", "-f", lab.ConfigPath, "--node", h.Name}

	var initTimes, readyTimes []time.Duration
	var failures []string
	for c := 1; c <= cycles; c++ {
		err := func() error {
			start := time.Now()
			if _, err := n.run(ctx, initArgs...); err != nil {
				return fmt.Errorf("init: %w", err)
			}
			initTimes = append(initTimes, time.Since(start))
			cs := n.adminClient(ctx)
			if err := pollUntil(ctx, 3*time.Minute, func() error { return nodeReady(ctx, cs, h.Name) }); err != nil {
				return fmt.Errorf("node Ready: %w", err)
			}
			if err := pollUntil(ctx, 4*time.Minute, func() error { return systemPodsReady(ctx, cs, h.Name) }); err != nil {
				return fmt.Errorf("system pods Ready: %w", err)
			}
			readyTimes = append(readyTimes, time.Since(start))
			return nil
		}()
		if err != nil {
			failures = append(failures, fmt.Sprintf("cycle %d: %v", c, err))
			t.Logf("cycle %d FAILED: %v", c, err)
		} else {
			t.Logf("cycle %d: init %s, every system pod Ready after %s", c,
				initTimes[len(initTimes)-1].Round(100*time.Millisecond), readyTimes[len(readyTimes)-1].Round(100*time.Millisecond))
		}
		if _, err := n.run(ctx, "reset"); err != nil {
			failures = append(failures, fmt.Sprintf("cycle %d: reset: %v", c, err))
			t.Logf("cycle %d: reset FAILED: %v", c, err)
		}
	}
	t.Logf("soak: %d cycles, %d failures; init times %s; init to all system pods Ready %s",
		cycles, len(failures), spread(initTimes), spread(readyTimes))
	for _, f := range failures {
		t.Error(f)
	}
}

// pollUntil polls cond every half second until it returns nil, the timeout passes or ctx
// ends; it returns cond's last error on timeout.
func pollUntil(ctx context.Context, timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// spread describes durations as min / median / max over n.
func spread(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	r := func(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }
	return fmt.Sprintf("min %s / median %s / max %s over %d", r(s[0]), r(s[len(s)/2]), r(s[len(s)-1]), len(s))
}
