package phases

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/kforge/kforge/service"
)

// fakeServices is a service.Manager that records restarts. A restart fails with
// killed while killed is set, as if kforge died right before it: nothing after it runs.
type fakeServices struct {
	active   map[string]bool
	restarts []string
	killed   error
}

func (f *fakeServices) Kind() string { return "fake" }
func (f *fakeServices) Restart(_ context.Context, s service.Spec) error {
	if f.killed != nil {
		return f.killed
	}
	f.restarts = append(f.restarts, s.Name)
	f.active[s.Name] = true
	return nil
}
func (f *fakeServices) Stop(_ context.Context, name string) error { f.active[name] = false; return nil }
func (f *fakeServices) Active(_ context.Context, name string) (bool, error) {
	return f.active[name], nil
}
func (f *fakeServices) Files(service.Spec) []service.File { return nil }

// TestConfigChangeAndRestartConverge kills kforge between writing a service's new config
// and restarting the service: the next run must restart it, although the config on disk is
// already the new one and the (old) service still runs.
func TestConfigChangeAndRestartConverge(t *testing.T) {
	killed := errors.New("killed before the restart")
	tests := []struct {
		name    string
		service string
		run     func(ctx context.Context, d *Data) error
	}{
		{name: "kubelet config", service: "kubelet", run: func(ctx context.Context, d *Data) error { return startKubelet(ctx, d, nil) }},
		{name: "containerd config", service: "containerd", run: configureContainerd},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newTestData(t, testCluster(t, nil), "cp1", io.Discard, nil)
			svc := &fakeServices{active: map[string]bool{"kubelet": true, "containerd": true}, killed: killed}
			d.Services = svc
			if err := tc.run(t.Context(), d); !errors.Is(err, killed) {
				t.Fatalf("first run: %v, want it killed before the restart", err)
			}
			svc.killed = nil
			if err := tc.run(t.Context(), d); err != nil {
				t.Fatalf("second run: %v", err)
			}
			if !slices.Equal(svc.restarts, []string{tc.service}) {
				t.Fatalf("restarts after the re-run: %v, want %s restarted once", svc.restarts, tc.service)
			}
			// The restart done, a third run has nothing to do.
			if err := tc.run(t.Context(), d); err != nil {
				t.Fatalf("third run: %v", err)
			}
			if len(svc.restarts) != 1 {
				t.Errorf("restarts after a third run: %v, want none more", svc.restarts)
			}
		})
	}
}
