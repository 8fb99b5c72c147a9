// Package wait holds kforge's one poll loop and one retry loop. It knows nothing of what
// it waits for: callers say which errors are worth another try, and mark with Permanent
// the ones that are not.
package wait

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrPermanent is wrapped by Permanent: Poll and Retry stop at such an error.
var ErrPermanent = errors.New("not worth waiting out")

type permanent struct{ err error }

func (p permanent) Error() string        { return p.err.Error() }
func (p permanent) Unwrap() error        { return p.err }
func (p permanent) Is(target error) bool { return target == ErrPermanent }

// Permanent marks err as one that Poll and Retry must not wait out.
func Permanent(err error) error { return permanent{err: err} }

// Poll calls check right away and then every interval until it returns nil, returns an
// error marked Permanent, or timeout passes (or ctx ends). Any other error means "not yet";
// the last one is in the error Poll returns, so a timeout says what was last seen.
func Poll(parent context.Context, interval, timeout time.Duration, check func(context.Context) error) error {
	if interval <= 0 {
		return fmt.Errorf("polling every %s: the interval must be positive", interval)
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	var last error
	for {
		err := check(ctx)
		if err == nil || errors.Is(err, ErrPermanent) {
			return err
		}
		// A check cut short by the deadline says less than the one before it.
		if last == nil || ctx.Err() == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if parent.Err() != nil {
				return fmt.Errorf("%w (last seen: %w)", parent.Err(), last)
			}
			return fmt.Errorf("timed out after %s: %w", timeout, last)
		case <-t.C:
		}
	}
}

// Backoff bounds the attempts of Retry.
type Backoff struct {
	// Steps is the number of attempts.
	Steps int
	// Initial is the first wait; each wait doubles up to Max.
	Initial, Max time.Duration
}

// Retry calls fn until it succeeds, fails with an error that retriable rejects or that is
// marked Permanent, or the attempts run out, waiting with exponential backoff in between;
// it stops when ctx ends.
func Retry(ctx context.Context, b Backoff, retriable func(error) bool, fn func(context.Context) error) error {
	delay := b.Initial
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case errors.Is(err, ErrPermanent) || !retriable(err):
			return err
		case attempt >= b.Steps:
			return fmt.Errorf("gave up after %d attempts: %w", attempt, err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-t.C:
		}
		delay = min(2*delay, b.Max)
	}
}
