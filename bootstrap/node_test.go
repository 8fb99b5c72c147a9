package bootstrap

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/kforge/kforge/config"
)

func TestParseTaint(t *testing.T) {
	tests := []struct {
		in      string
		want    corev1.Taint
		wantErr string
	}{
		{in: "dedicated=gpu:NoSchedule", want: corev1.Taint{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}},
		{in: "example.com/maintenance:NoExecute", want: corev1.Taint{Key: "example.com/maintenance", Effect: corev1.TaintEffectNoExecute}},
		{in: "k=a:b:PreferNoSchedule", want: corev1.Taint{Key: "k", Value: "a:b", Effect: corev1.TaintEffectPreferNoSchedule}},
		{in: "dedicated=gpu", wantErr: `want "key[=value]:Effect"`},
		{in: "=gpu:NoSchedule", wantErr: `want "key[=value]:Effect"`},
		{in: "k:Never", wantErr: `effect "Never" is not`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseTaint(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("taint (-want +got):\n%s", diff)
			}
		})
	}
}

func TestControlPlaneMarks(t *testing.T) {
	cpTaint := corev1.Taint{Key: ControlPlaneLabel, Effect: corev1.TaintEffectNoSchedule}
	tests := []struct {
		name    string
		host    config.Host
		want    NodeMarks
		wantErr string
	}{
		{
			name: "control plane",
			host: config.Host{Name: "cp1", Roles: []string{config.RoleControlPlane}},
			want: NodeMarks{Labels: map[string]string{ControlPlaneLabel: ""}, Taints: []corev1.Taint{cpTaint}},
		},
		{
			name: "control plane that is also a worker is not tainted",
			host: config.Host{Name: "cp1", Roles: []string{config.RoleControlPlane, config.RoleWorker}},
			want: NodeMarks{Labels: map[string]string{ControlPlaneLabel: ""}},
		},
		{
			name: "host labels and taints",
			host: config.Host{Name: "cp1", Roles: []string{config.RoleControlPlane},
				Labels: map[string]string{"zone": "a"}, Taints: []string{"dedicated=infra:NoSchedule"}},
			want: NodeMarks{
				Labels: map[string]string{ControlPlaneLabel: "", "zone": "a"},
				Taints: []corev1.Taint{cpTaint, {Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoSchedule}},
			},
		},
		{
			name: "host taint overrides the control-plane taint's value",
			host: config.Host{Name: "cp1", Roles: []string{config.RoleControlPlane},
				Taints: []string{ControlPlaneLabel + "=yes:NoSchedule"}},
			want: NodeMarks{
				Labels: map[string]string{ControlPlaneLabel: ""},
				Taints: []corev1.Taint{{Key: ControlPlaneLabel, Value: "yes", Effect: corev1.TaintEffectNoSchedule}},
			},
		},
		{
			name:    "bad taint",
			host:    config.Host{Name: "cp1", Roles: []string{config.RoleControlPlane}, Taints: []string{"nope"}},
			wantErr: `host cp1: taint "nope"`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ControlPlaneMarks(&tc.host)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("marks (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNodeMarksApply(t *testing.T) {
	marks := NodeMarks{
		Labels: map[string]string{ControlPlaneLabel: "", "zone": "a"},
		Taints: []corev1.Taint{ControlPlaneTaint, {Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoSchedule}},
	}
	notReady := corev1.Taint{Key: "node.kubernetes.io/not-ready", Effect: corev1.TaintEffectNoSchedule}
	node := func(labels map[string]string, taints ...corev1.Taint) *corev1.Node {
		n := &corev1.Node{}
		n.Labels = labels
		n.Spec.Taints = taints
		return n
	}
	marked := node(map[string]string{ControlPlaneLabel: "", "zone": "a", "kubernetes.io/os": "linux"},
		notReady, ControlPlaneTaint, corev1.Taint{Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoSchedule})
	tests := []struct {
		name        string
		node        *corev1.Node
		want        *corev1.Node
		wantChanged bool
	}{
		{
			name:        "fresh node keeps the kubelet's labels and taints",
			node:        node(map[string]string{"kubernetes.io/os": "linux"}, notReady),
			want:        marked,
			wantChanged: true,
		},
		{
			name: "already marked",
			node: marked.DeepCopy(),
			want: marked,
		},
		{
			name: "taint value drifted",
			node: node(map[string]string{ControlPlaneLabel: "", "zone": "a", "kubernetes.io/os": "linux"},
				notReady, ControlPlaneTaint, corev1.Taint{Key: "dedicated", Value: "other", Effect: corev1.TaintEffectNoSchedule}),
			want:        marked,
			wantChanged: true,
		},
		{
			name: "label value drifted",
			node: node(map[string]string{ControlPlaneLabel: "", "zone": "b", "kubernetes.io/os": "linux"},
				notReady, ControlPlaneTaint, corev1.Taint{Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoSchedule}),
			want:        marked,
			wantChanged: true,
		},
		{
			name: "same key with another effect is another taint",
			node: node(nil, corev1.Taint{Key: ControlPlaneLabel, Effect: corev1.TaintEffectNoExecute}),
			want: node(map[string]string{ControlPlaneLabel: "", "zone": "a"},
				corev1.Taint{Key: ControlPlaneLabel, Effect: corev1.TaintEffectNoExecute}, ControlPlaneTaint,
				corev1.Taint{Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoSchedule}),
			wantChanged: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			changed := marks.Apply(tc.node)
			if changed != tc.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tc.wantChanged)
			}
			if diff := cmp.Diff(tc.want, tc.node); diff != "" {
				t.Errorf("node (-want +got):\n%s", diff)
			}
			if marks.Apply(tc.node) {
				t.Error("applying twice changed the node again")
			}
		})
	}
}
