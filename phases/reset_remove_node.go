package phases

import (
	"context"

	"github.com/kforge/kforge/internal/apiclient"
	"github.com/kforge/kforge/internal/wait"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// removeNodePhase deletes this host's Node object, so that its pods are rescheduled and its
// name is free for the next join.
//
// Reads Data.Node and Data.Client, which is nil on a host that holds no kubeconfig.
func removeNodePhase() Phase {
	return Phase{
		Name:  "remove-node",
		Short: "Delete this host's Node object from the cluster",
		Run: func(ctx context.Context, d *Data) error {
			// A host that never joined, or whose kubeconfigs are gone, has no client.
			if d.Client == nil {
				d.Out.Say("no kubeconfig on this host reaches the cluster; delete the node with: kubectl delete node %s", d.Node.Name)
				return nil
			}
			cs, err := d.Client()
			if err != nil {
				d.Out.Say("WARNING: cannot reach the cluster (%v); delete the node with: kubectl delete node %s", err, d.Node.Name)
				return nil
			}
			err = apiclient.Retry(ctx, func(ctx context.Context) error {
				err := cs.CoreV1().Nodes().Delete(ctx, d.Node.Name, metav1.DeleteOptions{})
				if apierrors.IsNotFound(err) {
					return nil
				}
				if err != nil && !apiclient.IsTransient(err) {
					return wait.Permanent(err)
				}
				return err
			})
			if err != nil {
				d.Out.Say("WARNING: deleting Node %s: %v; delete it with: kubectl delete node %s", d.Node.Name, err, d.Node.Name)
				return nil
			}
			d.Out.Say("deleted Node %s", d.Node.Name)
			return nil
		},
	}
}
