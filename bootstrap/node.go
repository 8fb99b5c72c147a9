package bootstrap

import (
	"fmt"
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/kforge/kforge/config"
)

// ControlPlaneLabel and its NoSchedule taint mark control-plane nodes.
const ControlPlaneLabel = "node-role.kubernetes.io/control-plane"

// ControlPlaneTaint keeps ordinary workloads off control-plane nodes.
var ControlPlaneTaint = corev1.Taint{Key: ControlPlaneLabel, Effect: corev1.TaintEffectNoSchedule}

// NodeMarks are labels and taints a node must carry. They are added to a Node, never
// removed from it: other labels and taints are someone else's.
type NodeMarks struct {
	Labels map[string]string
	Taints []corev1.Taint
}

// ControlPlaneMarks returns the marks of control-plane host h: the control-plane label,
// the control-plane taint unless h is also a worker (as in a one-host cluster), and h's own
// labels and taints from cluster.toml.
func ControlPlaneMarks(h *config.Host) (NodeMarks, error) {
	m := NodeMarks{Labels: map[string]string{ControlPlaneLabel: ""}}
	maps.Copy(m.Labels, h.Labels)
	if !h.HasRole(config.RoleWorker) {
		m.Taints = append(m.Taints, ControlPlaneTaint)
	}
	for _, s := range h.Taints {
		t, err := ParseTaint(s)
		if err != nil {
			return NodeMarks{}, fmt.Errorf("host %s: %w", h.Name, err)
		}
		m.Taints = mergeTaint(m.Taints, t)
	}
	return m, nil
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

// Apply adds m to node and reports whether anything changed. A taint with the same key and
// effect as one of m's takes m's value.
func (m NodeMarks) Apply(node *corev1.Node) bool {
	changed := false
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
	return changed
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
