package apiclient

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// NodeChange is what a change of a Node's labels and taints did, or would do.
type NodeChange struct {
	// Changed is true when the Node was patched (or would be): its labels, taints or
	// annotations differ.
	Changed bool
	// Added and Removed list the labels ("label key=value") and taints ("taint
	// key=value:Effect") that the change adds and removes, sorted; a label or taint whose
	// value changes is removed with the old value and added with the new one.
	Added, Removed []string
}

// MutateNode reads Node name, lets mutate change a copy, and patches the Node with what
// changed when mutate reports a change; it returns what changed. The patch carries the
// resourceVersion it read, so a concurrent change makes it fail with a conflict, and Retry
// then reads the Node again instead of losing that change.
func MutateNode(ctx context.Context, cs kubernetes.Interface, name string, mutate func(*corev1.Node) bool) (NodeChange, error) {
	return mutateNode(ctx, cs, name, mutate, true)
}

// PlanNode is MutateNode without the patch: what mutate would change in the Node as it is.
func PlanNode(ctx context.Context, cs kubernetes.Interface, name string, mutate func(*corev1.Node) bool) (NodeChange, error) {
	return mutateNode(ctx, cs, name, mutate, false)
}

func mutateNode(ctx context.Context, cs kubernetes.Interface, name string, mutate func(*corev1.Node) bool, write bool) (NodeChange, error) {
	nodes := cs.CoreV1().Nodes()
	var ch NodeChange
	err := Retry(ctx, func(ctx context.Context) error {
		node, err := nodes.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading Node %s: %w", name, err)
		}
		want := node.DeepCopy()
		ch = NodeChange{Changed: mutate(want)}
		if !ch.Changed {
			return nil
		}
		ch.Added, ch.Removed = nodeMarkChanges(node, want)
		if !write {
			return nil
		}
		patch, err := NodePatch(node, want)
		if err != nil {
			return err
		}
		if _, err := nodes.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("patching Node %s: %w", name, err)
		}
		return nil
	})
	return ch, err
}

// nodeMarkChanges lists the labels and taints want has and node has not (added), and
// those node has and want has not (removed); see NodeChange.
func nodeMarkChanges(node, want *corev1.Node) (added, removed []string) {
	label := func(k, v string) string {
		if v == "" {
			return "label " + k
		}
		return "label " + k + "=" + v
	}
	for k, v := range want.Labels {
		if cur, ok := node.Labels[k]; !ok || cur != v {
			added = append(added, label(k, v))
		}
	}
	for k, v := range node.Labels {
		if nv, ok := want.Labels[k]; !ok || nv != v {
			removed = append(removed, label(k, v))
		}
	}
	taint := func(t corev1.Taint) string {
		s := t.Key
		if t.Value != "" {
			s += "=" + t.Value
		}
		return "taint " + s + ":" + string(t.Effect)
	}
	has := func(ts []corev1.Taint, t corev1.Taint) bool {
		return slices.ContainsFunc(ts, func(x corev1.Taint) bool {
			return x.Key == t.Key && x.Value == t.Value && x.Effect == t.Effect
		})
	}
	for _, t := range want.Spec.Taints {
		if !has(node.Spec.Taints, t) {
			added = append(added, taint(t))
		}
	}
	for _, t := range node.Spec.Taints {
		if !has(want.Spec.Taints, t) {
			removed = append(removed, taint(t))
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	return added, removed
}

// NodePatch is a JSON merge patch that takes node to want: the labels and annotations
// that differ (null for a removed one) and the whole taint list (lists are replaced),
// with node's resourceVersion.
func NodePatch(node, want *corev1.Node) ([]byte, error) {
	meta := map[string]any{}
	for field, m := range map[string][2]map[string]string{
		"labels":      {node.Labels, want.Labels},
		"annotations": {node.Annotations, want.Annotations},
	} {
		diff := map[string]any{}
		for k, v := range m[1] {
			if cur, ok := m[0][k]; !ok || cur != v {
				diff[k] = v
			}
		}
		for k := range m[0] {
			if _, ok := m[1][k]; !ok {
				diff[k] = nil
			}
		}
		if len(diff) > 0 {
			meta[field] = diff
		}
	}
	if node.ResourceVersion != "" {
		meta["resourceVersion"] = node.ResourceVersion
	}
	patch := map[string]any{"metadata": meta}
	if !apiequality.Semantic.DeepEqual(node.Spec.Taints, want.Spec.Taints) {
		patch["spec"] = map[string]any{"taints": want.Spec.Taints}
	}
	out, err := json.Marshal(patch)
	if err != nil {
		return nil, fmt.Errorf("encoding the patch of Node %s: %w", node.Name, err)
	}
	return out, nil
}
