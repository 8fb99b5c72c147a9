package phases

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/internal/apiclient"
	"github.com/kforge/kforge/internal/wait"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// MarkControlPlanePhase labels and taints this node as a control-plane node, with the
// labels and taints cluster.toml gives the host; those that an earlier run set and the file
// no longer gives are removed (bootstrap.NodeMarks.Apply). It waits for the kubelet to
// register the Node first. Labels and taints it did not set are left alone.
//
// Reads Data.Node, Data.Waiter and Data.Client.
func MarkControlPlanePhase() Phase {
	return Phase{
		Name:  "mark-control-plane",
		Short: "Label and taint this node as a control-plane node",
		Run:   runMarkControlPlane,
	}
}

func runMarkControlPlane(ctx context.Context, d *Data) error {
	marks, err := bootstrap.HostMarks(d.Node)
	if err != nil {
		return err
	}
	cs, err := clusterClient(ctx, d)
	if err != nil {
		return err
	}
	name := d.Node.Name
	nodes := cs.CoreV1().Nodes()
	err = d.Waiter.WaitFor(ctx, d, "Node "+name+" to be registered", func(ctx context.Context) error {
		_, err := nodes.Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			return nil
		}
		err = fmt.Errorf("reading Node %s: %w", name, err)
		if apierrors.IsNotFound(err) || apiclient.IsTransient(err) {
			return err
		}
		return wait.Permanent(err)
	})
	if err != nil {
		return fmt.Errorf("waiting for the kubelet to register Node %s: %w", name, err)
	}
	changed := false
	err = apiclient.Retry(ctx, func(ctx context.Context) error {
		node, err := nodes.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading Node %s: %w", name, err)
		}
		want := node.DeepCopy()
		if changed = marks.Apply(want); !changed {
			return nil
		}
		patch, err := markPatch(node, want)
		if err != nil {
			return err
		}
		if _, err := nodes.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("patching Node %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if changed {
		d.Out.Say("marked node %s: %s", name, describeMarks(marks))
	} else {
		d.Out.Say("using existing marks of node %s: %s", name, describeMarks(marks))
	}
	return nil
}

// markPatch is a JSON merge patch that takes node to want: the labels and annotations
// that differ (null for a removed one) and the whole taint list (lists are replaced). It
// carries node's resourceVersion, so a concurrent change to the Node makes it fail with a
// conflict instead of losing that change; the caller then reads the Node again.
func markPatch(node, want *corev1.Node) ([]byte, error) {
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

// describeMarks lists marks for the progress line: "label a=b, taint k:NoSchedule".
func describeMarks(m bootstrap.NodeMarks) string {
	var parts []string
	for k, v := range m.Labels {
		if v != "" {
			k += "=" + v
		}
		parts = append(parts, "label "+k)
	}
	slices.Sort(parts)
	for _, t := range m.Taints {
		s := t.Key
		if t.Value != "" {
			s += "=" + t.Value
		}
		parts = append(parts, "taint "+s+":"+string(t.Effect))
	}
	return strings.Join(parts, ", ")
}
