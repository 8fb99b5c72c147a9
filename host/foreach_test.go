package host_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kforge/kforge/host"
)

// fakeHost is a Host that only has a name.
type fakeHost struct {
	host.Host
	name string
}

func (f fakeHost) Name() string   { return f.name }
func (f fakeHost) String() string { return f.name + " (fake)" }

func fakeHosts(n int) []host.Host {
	hosts := make([]host.Host, n)
	for i := range hosts {
		hosts[i] = fakeHost{name: fmt.Sprintf("h%d", i+1)}
	}
	return hosts
}

func TestForEachLimit(t *testing.T) {
	tests := []struct {
		name    string
		hosts   int
		limit   int
		wantMax int
	}{
		{"limit 3 of 10", 10, 3, 3},
		{"limit 1 is serial", 5, 1, 1},
		{"limit above host count", 4, 10, 4},
		{"default limit", 30, 0, host.DefaultConcurrency},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var running, maxRunning, calls atomic.Int32
			err := host.ForEach(testContext(t), fakeHosts(tc.hosts), tc.limit, func(ctx context.Context, h host.Host) error {
				calls.Add(1)
				n := running.Add(1)
				defer running.Add(-1)
				for {
					m := maxRunning.Load()
					if n <= m || maxRunning.CompareAndSwap(m, n) {
						break
					}
				}
				time.Sleep(20 * time.Millisecond)
				return nil
			})
			if err != nil {
				t.Fatalf("ForEach: %v", err)
			}
			if int(calls.Load()) != tc.hosts {
				t.Errorf("fn called %d times, want %d", calls.Load(), tc.hosts)
			}
			if got := int(maxRunning.Load()); got != tc.wantMax {
				t.Errorf("at most %d ran at once, want %d", got, tc.wantMax)
			}
		})
	}
}

func TestForEachReportsEveryFailure(t *testing.T) {
	errBoom := errors.New("boom")
	var mu sync.Mutex
	var ran []string
	err := host.ForEach(testContext(t), fakeHosts(6), 2, func(ctx context.Context, h host.Host) error {
		mu.Lock()
		ran = append(ran, h.Name())
		mu.Unlock()
		switch h.Name() {
		case "h2":
			return fmt.Errorf("installing packages: %w", errBoom)
		case "h5":
			return errors.New("disk full")
		}
		return nil
	})
	if len(ran) != 6 {
		t.Errorf("fn ran on %v, want all 6 hosts despite failures", ran)
	}
	if err == nil {
		t.Fatal("ForEach returned nil, want the failures")
	}
	if !errors.Is(err, errBoom) {
		t.Errorf("error %v does not wrap the host's error", err)
	}
	var hostErr *host.HostError
	if !errors.As(err, &hostErr) || hostErr.Host != "h2" {
		t.Errorf("first *HostError = %+v, want host h2", hostErr)
	}
	want := "h2: installing packages: boom\nh5: disk full"
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err.Error(), want)
	}
}

func TestForEachCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	var calls atomic.Int32
	err := host.ForEach(ctx, fakeHosts(10), 2, func(ctx context.Context, h host.Host) error {
		calls.Add(1)
		if h.Name() == "h1" {
			cancel()
		}
		<-ctx.Done()
		return ctx.Err()
	})
	if n := calls.Load(); n > 2 {
		t.Errorf("fn started on %d hosts after cancellation, want at most 2", n)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
	if !strings.Contains(err.Error(), "not started on") || !strings.Contains(err.Error(), "h10") {
		t.Errorf("error %q does not name the hosts left out", err)
	}
}

func TestForEachNoHosts(t *testing.T) {
	if err := host.ForEach(testContext(t), nil, 0, func(context.Context, host.Host) error {
		return errors.New("called")
	}); err != nil {
		t.Errorf("ForEach over no hosts = %v, want nil", err)
	}
}
