package phases

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/kforge/kforge/cri"
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

// TestRestartedSince: only a running container of the node's own static pod, created
// after the manifest was written, counts as the restart that applies it.
func TestRestartedSince(t *testing.T) {
	written := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	c := func(name, pod string, running bool, created time.Time) cri.Container {
		return cri.Container{Name: name, PodName: pod, PodNamespace: "kube-system", Running: running, Created: created}
	}
	for _, tc := range []struct {
		name string
		c    cri.Container
		want bool
	}{
		{"new and running", c("kube-apiserver", "kube-apiserver-cp1", true, written.Add(time.Second)), true},
		{"the old container", c("kube-apiserver", "kube-apiserver-cp1", true, written.Add(-time.Minute)), false},
		{"new but exited", c("kube-apiserver", "kube-apiserver-cp1", false, written.Add(time.Second)), false},
		{"another node's pod name", c("kube-apiserver", "kube-apiserver-cp2", true, written.Add(time.Second)), false},
		{"another component", c("kube-scheduler", "kube-scheduler-cp1", true, written.Add(time.Second)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := restartedSince([]cri.Container{tc.c}, "kube-apiserver", "cp1", written); got != tc.want {
				t.Errorf("restartedSince = %v, want %v", got, tc.want)
			}
		})
	}
}
