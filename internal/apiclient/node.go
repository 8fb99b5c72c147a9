package apiclient

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// MutateNode reads Node name, lets mutate change a copy, and patches the Node with what
// changed when mutate reports a change; it returns whether it patched. The patch carries
// the resourceVersion it read, so a concurrent change makes it fail with a conflict, and
// Retry then reads the Node again instead of losing that change.
func MutateNode(ctx context.Context, cs kubernetes.Interface, name string, mutate func(*corev1.Node) bool) (bool, error) {
	nodes := cs.CoreV1().Nodes()
	changed := false
	err := Retry(ctx, func(ctx context.Context) error {
		node, err := nodes.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading Node %s: %w", name, err)
		}
		want := node.DeepCopy()
		if changed = mutate(want); !changed {
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
	return changed, err
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
