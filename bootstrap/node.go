package bootstrap

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	kubeletapis "k8s.io/kubelet/pkg/apis"

	"github.com/kforge/kforge/config"
)

// ControlPlaneLabel and its NoSchedule taint mark control-plane nodes.
const ControlPlaneLabel = "node-role.kubernetes.io/control-plane"

// ControlPlaneTaint keeps ordinary workloads off control-plane nodes.
var ControlPlaneTaint = corev1.Taint{Key: ControlPlaneLabel, Effect: corev1.TaintEffectNoSchedule}

// Annotations on a Node that list the labels and taints kforge set on it, so that a later
// run removes the ones cluster.toml no longer gives and never touches anyone else's.
const (
	// ManagedLabelsAnnotation lists label keys, comma-separated.
	ManagedLabelsAnnotation = "kforge.io/managed-labels"
	// ManagedTaintsAnnotation lists taints as "key:Effect", comma-separated.
	ManagedTaintsAnnotation = "kforge.io/managed-taints"
)

// NodeMarks are labels and taints a node must carry. Apply adds them to a Node and removes
// only the ones an earlier Apply set and that are no longer wanted (the Node's managed
// annotations list those): other labels and taints are someone else's.
type NodeMarks struct {
	Labels map[string]string
	Taints []corev1.Taint
}

// HostMarks returns the marks of host h: for a control plane, the control-plane label and
// the control-plane taint unless h is also a worker (as in a one-host cluster); for every
// host, its own labels and taints from cluster.toml.
func HostMarks(h *config.Host) (NodeMarks, error) {
	m := NodeMarks{Labels: map[string]string{}}
	if h.HasRole(config.RoleControlPlane) {
		m.Labels[ControlPlaneLabel] = ""
		if !h.HasRole(config.RoleWorker) {
			m.Taints = append(m.Taints, ControlPlaneTaint)
		}
	}
	maps.Copy(m.Labels, h.Labels)
	for _, s := range h.Taints {
		t, err := ParseTaint(s)
		if err != nil {
			return NodeMarks{}, fmt.Errorf("host %s: %w", h.Name, err)
		}
		m.Taints = mergeTaint(m.Taints, t)
	}
	return m, nil
}

// KubeletLabels are the labels of m that a kubelet may set on its own Node at
// registration (--node-labels). The kubelet refuses labels in the kubernetes.io and k8s.io
// namespaces but for a few of its own (k8s.io/kubelet/pkg/apis IsKubeletLabel), so
// node-role.kubernetes.io/* are set through the API only.
func (m NodeMarks) KubeletLabels() map[string]string {
	out := map[string]string{}
	for k, v := range m.Labels {
		ns, _, found := strings.Cut(k, "/")
		restricted := found && (ns == "kubernetes.io" || ns == "k8s.io" ||
			strings.HasSuffix(ns, ".kubernetes.io") || strings.HasSuffix(ns, ".k8s.io"))
		if !restricted || kubeletapis.IsKubeletLabel(k) {
			out[k] = v
		}
	}
	return out
}

// TaintStrings writes m's taints as the kubelet's --register-with-taints takes them:
// "key[=value]:Effect".
func (m NodeMarks) TaintStrings() []string {
	var out []string
	for _, t := range m.Taints {
		s := t.Key
		if t.Value != "" {
			s += "=" + t.Value
		}
		out = append(out, s+":"+string(t.Effect))
	}
	return out
}

// ParseTaint reads a taint written "key[=value]:Effect".
func ParseTaint(s string) (corev1.Taint, error) {
	i := strings.LastIndex(s, ":")
	if i < 0 {
		return corev1.Taint{}, fmt.Errorf("taint %q: want \"key[=value]:Effect\"", s)
	}
	key, value, _ := strings.Cut(s[:i], "=")
	effect := s[i+1:]
	switch e := corev1.TaintEffect(effect); {
	case key == "":
		return corev1.Taint{}, fmt.Errorf("taint %q: want \"key[=value]:Effect\"", s)
	case e != corev1.TaintEffectNoSchedule && e != corev1.TaintEffectPreferNoSchedule && e != corev1.TaintEffectNoExecute:
		return corev1.Taint{}, fmt.Errorf("taint %q: effect %q is not NoSchedule, PreferNoSchedule or NoExecute", s, effect)
	}
	return corev1.Taint{Key: key, Value: value, Effect: corev1.TaintEffect(effect)}, nil
}

// Apply gives node m's labels and taints, removes the labels and taints an earlier Apply
// set (as node's managed annotations list them) that m no longer has, records m's in the
// annotations, and reports whether anything changed. A taint with the same key and effect
// as one of m's takes m's value. Labels and taints Apply did not set are left alone.
func (m NodeMarks) Apply(node *corev1.Node) bool {
	changed := false
	for _, k := range splitList(node.Annotations[ManagedLabelsAnnotation]) {
		if _, want := m.Labels[k]; !want {
			if _, ok := node.Labels[k]; ok {
				delete(node.Labels, k)
				changed = true
			}
		}
	}
	for _, ke := range splitList(node.Annotations[ManagedTaintsAnnotation]) {
		key, effect, _ := strings.Cut(ke, ":")
		t := corev1.Taint{Key: key, Effect: corev1.TaintEffect(effect)}
		if taintIndex(m.Taints, t) >= 0 {
			continue
		}
		if i := taintIndex(node.Spec.Taints, t); i >= 0 {
			node.Spec.Taints = slices.Delete(node.Spec.Taints, i, i+1)
			changed = true
		}
	}
	for k, v := range m.Labels {
		if cur, ok := node.Labels[k]; ok && cur == v {
			continue
		}
		if node.Labels == nil {
			node.Labels = map[string]string{}
		}
		node.Labels[k] = v
		changed = true
	}
	for _, t := range m.Taints {
		switch i := taintIndex(node.Spec.Taints, t); {
		case i < 0:
			node.Spec.Taints = append(node.Spec.Taints, t)
			changed = true
		case node.Spec.Taints[i].Value != t.Value:
			node.Spec.Taints[i].Value = t.Value
			changed = true
		}
	}
	var taintKeys []string
	for _, t := range m.Taints {
		taintKeys = append(taintKeys, t.Key+":"+string(t.Effect))
	}
	for name, list := range map[string][]string{
		ManagedLabelsAnnotation: slices.Collect(maps.Keys(m.Labels)),
		ManagedTaintsAnnotation: taintKeys,
	} {
		slices.Sort(list)
		v := strings.Join(list, ",")
		if cur, ok := node.Annotations[name]; ok && cur == v || !ok && v == "" {
			continue
		}
		if v == "" {
			delete(node.Annotations, name)
		} else {
			if node.Annotations == nil {
				node.Annotations = map[string]string{}
			}
			node.Annotations[name] = v
		}
		changed = true
	}
	return changed
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// mergeTaint sets t in ts: replaces the taint with t's key and effect, or appends t.
func mergeTaint(ts []corev1.Taint, t corev1.Taint) []corev1.Taint {
	if i := taintIndex(ts, t); i >= 0 {
		ts[i].Value = t.Value
		return ts
	}
	return append(ts, t)
}

func taintIndex(ts []corev1.Taint, t corev1.Taint) int {
	for i := range ts {
		if ts[i].Key == t.Key && ts[i].Effect == t.Effect {
			return i
		}
	}
	return -1
}
