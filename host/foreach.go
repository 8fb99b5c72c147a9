package host

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// DefaultConcurrency is ForEach's limit when none is given.
const DefaultConcurrency = 20

// ForEach calls fn for every host, at most limit at a time (DefaultConcurrency
// when limit <= 0). A failing host does not stop the others. The result joins
// every failure, in the order of hosts, each as a *HostError naming its host.
// Once ctx is done no further host is started; the hosts left out are
// reported in one error wrapping ctx.Err().
func ForEach(ctx context.Context, hosts []Host, limit int, fn func(ctx context.Context, h Host) error) error {
	if limit <= 0 {
		limit = DefaultConcurrency
	}
	sem := make(chan struct{}, limit)
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	started := 0
	for i, h := range hosts {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		started++
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, h); err != nil {
				errs[i] = &HostError{Host: h.Name(), Err: err}
			}
		})
	}
	wg.Wait()
	if started < len(hosts) {
		names := make([]string, 0, len(hosts)-started)
		for _, h := range hosts[started:] {
			names = append(names, h.Name())
		}
		errs = append(errs, fmt.Errorf("not started on %s: %w", strings.Join(names, ", "), ctx.Err()))
	}
	return errors.Join(errs...)
}
