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
	return Each(ctx, hosts, limit, Host.Name, fn)
}

// Each is ForEach over any items that have a host's name (a cluster.toml entry before
// it is connected, say): fn runs for every item, at most limit at a time, and every
// failure comes back as a *HostError named by name(item).
func Each[T any](ctx context.Context, items []T, limit int, name func(T) string, fn func(ctx context.Context, item T) error) error {
	if limit <= 0 {
		limit = DefaultConcurrency
	}
	sem := make(chan struct{}, limit)
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	started := 0
	for i, it := range items {
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
			if err := fn(ctx, it); err != nil {
				errs[i] = &HostError{Host: name(it), Err: err}
			}
		})
	}
	wg.Wait()
	if started < len(items) {
		names := make([]string, 0, len(items)-started)
		for _, it := range items[started:] {
			names = append(names, name(it))
		}
		errs = append(errs, fmt.Errorf("not started on %s: %w", strings.Join(names, ", "), ctx.Err()))
	}
	return errors.Join(errs...)
}
