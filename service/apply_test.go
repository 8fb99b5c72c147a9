package service

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestApplyRestartsAfterAKill runs Apply over systemd, killed at each point between writing
// the files and the restart that applies them (the drop-in is new; the config is new): the
// next Apply, which finds every file already written, restarts the service all the same,
// and the one after it does nothing.
func TestApplyRestartsAfterAKill(t *testing.T) {
	for _, killAt := range []string{"systemctl daemon-reload", "systemctl enable kubelet.service", "systemctl restart kubelet.service"} {
		t.Run(killAt, func(t *testing.T) {
			root := t.TempDir()
			var calls []string
			kill := errors.New("killed")
			m := &Systemd{UnitDir: filepath.Join(root, "units"), Run: func(_ context.Context, name string, args ...string) ([]byte, error) {
				call := name + " " + strings.Join(args, " ")
				if kill != nil && call == killAt {
					return nil, kill
				}
				calls = append(calls, call)
				return nil, nil // is-active: active
			}}
			c := Change{
				Spec:  Spec{Name: "kubelet", Unit: []byte("unit\n"), DropIn: []byte("dropin v2\n")},
				Files: []File{{Path: "/var/lib/kubelet/config.yaml", Data: []byte("v2\n"), Mode: 0o644, DirMode: 0o755}},
				Root:  root, StartStopped: true,
			}
			if _, err := Apply(t.Context(), m, c); !errors.Is(err, kill) {
				t.Fatalf("first Apply: %v, want killed at %s", err, killAt)
			}
			kill = nil
			calls = nil
			a, err := Apply(t.Context(), m, c)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"systemctl daemon-reload", "systemctl enable kubelet.service", "systemctl restart kubelet.service"}
			if diff := cmp.Diff(want, calls); diff != "" {
				t.Errorf("Apply after the kill (-want +got):\n%s", diff)
			}
			if !a.Resumed || !a.Restarted || len(a.Written) != 0 {
				t.Errorf("Apply after the kill = %+v, want a resumed restart that wrote nothing", a)
			}
			if _, err := os.Stat(filepath.Join(root, PendingDir, "kubelet")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the pending marker is still there after the restart: %v", err)
			}
			calls = nil
			if a, err := Apply(t.Context(), m, c); err != nil || a.Restarted {
				t.Errorf("third Apply = %+v, %v; want nothing done", a, err)
			}
			if diff := cmp.Diff([]string{"systemctl is-active kubelet.service"}, calls); diff != "" {
				t.Errorf("third Apply (-want +got):\n%s", diff)
			}
		})
	}
}
