package phases

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/internal/apiclient"
	"github.com/kforge/kforge/internal/wait"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	ch, err := apiclient.MutateNode(ctx, cs, name, marks.Apply)
	if err != nil {
		return err
	}
	if ch.Changed {
		d.Out.Say("marked node %s: %s", name, describeMarks(marks))
	} else {
		d.Out.Say("using existing marks of node %s: %s", name, describeMarks(marks))
	}
	return nil
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
