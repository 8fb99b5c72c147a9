package bootstrap

import (
	"maps"
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

func TestHostMarks(t *testing.T) {
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
			name: "worker: its own labels and taints only",
			host: config.Host{Name: "w1", Roles: []string{config.RoleWorker},
				Labels: map[string]string{"zone": "a"}, Taints: []string{"dedicated=gpu:NoSchedule"}},
			want: NodeMarks{
				Labels: map[string]string{"zone": "a"},
				Taints: []corev1.Taint{{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}},
			},
		},
		{
			name: "plain worker",
			host: config.Host{Name: "w1", Roles: []string{config.RoleWorker}},
			want: NodeMarks{Labels: map[string]string{}},
		},
		{
			name:    "bad taint",
			host:    config.Host{Name: "cp1", Roles: []string{config.RoleControlPlane}, Taints: []string{"nope"}},
			wantErr: `host cp1: taint "nope"`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := HostMarks(&tc.host)
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
	managed := map[string]string{
		ManagedLabelsAnnotation: ControlPlaneLabel + ",zone",
		ManagedTaintsAnnotation: "dedicated:NoSchedule," + ControlPlaneLabel + ":NoSchedule",
	}
	annotated := func(n *corev1.Node, a map[string]string) *corev1.Node {
		n.Annotations = maps.Clone(a)
		return n
	}
	marked := annotated(node(map[string]string{ControlPlaneLabel: "", "zone": "a", "kubernetes.io/os": "linux"},
		notReady, ControlPlaneTaint, corev1.Taint{Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoSchedule}), managed)
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
			name: "marks from before the annotations are adopted, not changed",
			node: node(map[string]string{ControlPlaneLabel: "", "zone": "a", "kubernetes.io/os": "linux"},
				notReady, ControlPlaneTaint, corev1.Taint{Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoSchedule}),
			want:        marked,
			wantChanged: true,
		},
		{
			name: "what kforge set and the file no longer gives is removed; others' labels and taints stay",
			node: annotated(node(map[string]string{ControlPlaneLabel: "", "zone": "a", "old": "x", "team": "db", "kubernetes.io/os": "linux"},
				notReady, ControlPlaneTaint, corev1.Taint{Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoSchedule},
				corev1.Taint{Key: "gone", Effect: corev1.TaintEffectNoExecute}, corev1.Taint{Key: "theirs", Effect: corev1.TaintEffectNoExecute}),
				map[string]string{
					ManagedLabelsAnnotation: ControlPlaneLabel + ",old,zone",
					ManagedTaintsAnnotation: "dedicated:NoSchedule,gone:NoExecute," + ControlPlaneLabel + ":NoSchedule",
					"other":                 "kept",
				}),
			want: annotated(node(map[string]string{ControlPlaneLabel: "", "zone": "a", "team": "db", "kubernetes.io/os": "linux"},
				notReady, ControlPlaneTaint, corev1.Taint{Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoSchedule},
				corev1.Taint{Key: "theirs", Effect: corev1.TaintEffectNoExecute}),
				map[string]string{
					ManagedLabelsAnnotation: ControlPlaneLabel + ",zone",
					ManagedTaintsAnnotation: "dedicated:NoSchedule," + ControlPlaneLabel + ":NoSchedule",
					"other":                 "kept",
				}),
			wantChanged: true,
		},
		{
			name: "taint value drifted",
			node: annotated(node(map[string]string{ControlPlaneLabel: "", "zone": "a", "kubernetes.io/os": "linux"},
				notReady, ControlPlaneTaint, corev1.Taint{Key: "dedicated", Value: "other", Effect: corev1.TaintEffectNoSchedule}), managed),
			want:        marked,
			wantChanged: true,
		},
		{
			name: "label value drifted",
			node: annotated(node(map[string]string{ControlPlaneLabel: "", "zone": "b", "kubernetes.io/os": "linux"},
				notReady, ControlPlaneTaint, corev1.Taint{Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoSchedule}), managed),
			want:        marked,
			wantChanged: true,
		},
		{
			name: "same key with another effect is another taint",
			node: node(nil, corev1.Taint{Key: ControlPlaneLabel, Effect: corev1.TaintEffectNoExecute}),
			want: annotated(node(map[string]string{ControlPlaneLabel: "", "zone": "a"},
				corev1.Taint{Key: ControlPlaneLabel, Effect: corev1.TaintEffectNoExecute}, ControlPlaneTaint,
				corev1.Taint{Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoSchedule}), managed),
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

func TestKubeletLabels(t *testing.T) {
	m := NodeMarks{Labels: map[string]string{
		ControlPlaneLabel:                  "",
		"zone":                             "a",
		"example.com/team":                 "db",
		"node.kubernetes.io/instance-type": "big",
		"topology.kubernetes.io/zone":      "z1",
		"foo.k8s.io/x":                     "y",
		"kubernetes.io/custom":             "z",
	}}
	want := map[string]string{
		"zone":                             "a",
		"example.com/team":                 "db",
		"node.kubernetes.io/instance-type": "big",
		"topology.kubernetes.io/zone":      "z1",
	}
	if diff := cmp.Diff(want, m.KubeletLabels()); diff != "" {
		t.Errorf("KubeletLabels (-want +got):\n%s", diff)
	}
}
