package wait

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPoll(t *testing.T) {
	notYet := errors.New("not yet")
	tests := []struct {
		name     string
		check    func(n int) error
		interval time.Duration
		timeout  time.Duration
		wantErr  string
		wantIs   error
		wantN    int
	}{
		{name: "immediately", check: func(int) error { return nil }, timeout: time.Second, wantN: 1},
		{name: "third time", check: func(n int) error {
			if n < 3 {
				return notYet
			}
			return nil
		}, timeout: time.Second, wantN: 3},
		{name: "permanent stops", check: func(int) error { return fmt.Errorf("reading: %w", Permanent(errors.New("forbidden"))) },
			timeout: time.Second, wantErr: "reading: forbidden", wantIs: ErrPermanent, wantN: 1},
		{name: "timeout says what it saw last", check: func(int) error { return notYet },
			timeout: 30 * time.Millisecond, wantErr: "timed out after 30ms: not yet", wantIs: notYet},
		{name: "no interval", check: func(int) error { return nil }, interval: -1, timeout: time.Second,
			wantErr: "polling every -1ns: the interval must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.interval == 0 {
				tc.interval = time.Millisecond
			}
			n := 0
			err := Poll(context.Background(), tc.interval, tc.timeout, func(context.Context) error {
				n++
				return tc.check(n)
			})
			checkErr(t, err, tc.wantErr, tc.wantIs)
			if tc.wantN > 0 && n != tc.wantN {
				t.Errorf("check ran %d times, want %d", n, tc.wantN)
			}
		})
	}
}

// checkErr fails t unless err is nil when wantErr is empty, and otherwise reads wantErr and
// wraps wantIs (when set).
func checkErr(t *testing.T, err error, wantErr string, wantIs error) {
	t.Helper()
	if wantErr == "" && err != nil {
		t.Fatal(err)
	}
	if wantErr != "" && (err == nil || err.Error() != wantErr) {
		t.Fatalf("error = %v, want %q", err, wantErr)
	}
	if wantIs != nil && !errors.Is(err, wantIs) {
		t.Errorf("error %v does not wrap %v", err, wantIs)
	}
}

func TestPollParentCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Poll(ctx, time.Millisecond, time.Minute, func(context.Context) error { return errors.New("not yet") })
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "last seen: not yet") {
		t.Fatalf("error = %v", err)
	}
}

var errFlaky = errors.New("flaky")

func isFlaky(err error) bool { return errors.Is(err, errFlaky) }

func TestRetry(t *testing.T) {
	fast := Backoff{Steps: 4, Initial: time.Millisecond, Max: 2 * time.Millisecond}
	broken := errors.New("broken")
	tests := []struct {
		name      string
		failures  []error // what the attempts return, in order; then nil
		wantErr   string
		wantIs    error
		wantCalls int
	}{
		{name: "first time", wantCalls: 1},
		{name: "retriable twice", failures: []error{errFlaky, errFlaky}, wantCalls: 3},
		{name: "not retriable", failures: []error{errFlaky, broken}, wantErr: "broken", wantIs: broken, wantCalls: 2},
		{name: "permanent, though retriable", failures: []error{Permanent(errFlaky)}, wantErr: "flaky", wantIs: ErrPermanent, wantCalls: 1},
		{name: "gives up after the last attempt", failures: []error{errFlaky, errFlaky, errFlaky, errFlaky, errFlaky},
			wantErr: "gave up after 4 attempts: flaky", wantIs: errFlaky, wantCalls: 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := Retry(t.Context(), fast, isFlaky, func(context.Context) error {
				calls++
				if calls <= len(tc.failures) {
					return tc.failures[calls-1]
				}
				return nil
			})
			checkErr(t, err, tc.wantErr, tc.wantIs)
			if diff := cmp.Diff(tc.wantCalls, calls); diff != "" {
				t.Errorf("attempts (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRetryStopsOnCancel cancels during a backoff far longer than the test may take.
func TestRetryStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	slow := Backoff{Steps: 5, Initial: time.Hour, Max: time.Hour}
	tried := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Retry(ctx, slow, isFlaky, func(context.Context) error {
			close(tried)
			return errFlaky
		})
	}()
	<-tried
	cancel() // Ctrl-C while the server is still unavailable
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || !errors.Is(err, errFlaky) {
			t.Errorf("error = %v, want context.Canceled with the last error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Retry kept waiting after its context was cancelled")
	}
}
