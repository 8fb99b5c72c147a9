package phases

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/kforge/kforge/internal/apiclient"
	"github.com/kforge/kforge/internal/wait"
	"github.com/kforge/kforge/kubelet"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// kubeletWaitBootstrapPhase waits for the kubelet's TLS bootstrap to finish and its Node to
// register, then removes bootstrap-kubelet.conf, whose token is no longer needed.
//
// Reads Data.Join, Data.Node, Data.Waiter and Data.Client.
func kubeletWaitBootstrapPhase() Phase {
	return Phase{
		Name:  "kubelet-wait-bootstrap",
		Short: "Wait for the kubelet's client certificate and its Node, then remove bootstrap-kubelet.conf",
		Run: func(ctx context.Context, d *Data) error {
			confShown := filepath.Join(d.KubeconfigDir, kubelet.KubeconfigName)
			if !d.Join.AlreadyJoined {
				d.Out.Say("waiting up to %s for the kubelet's TLS bootstrap (%s)", d.Wait, confShown)
			}
			err := d.Waiter.WaitFor(ctx, d, "the kubelet to write "+confShown, func(context.Context) error {
				if !joinedHere(d, d.Join.ClusterCA) {
					return fmt.Errorf("%s has no client certificate for node %s signed by the cluster CA yet", confShown, d.Node.Name)
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("the kubelet did not finish its TLS bootstrap: %w%s", err, kubeletLogHint(d))
			}
			cs, err := clusterClient(ctx, d)
			if err != nil {
				return err
			}
			name := d.Node.Name
			err = d.Waiter.WaitFor(ctx, d, "Node "+name+" to be registered", func(ctx context.Context) error {
				_, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
				if err == nil || apierrors.IsNotFound(err) || apiclient.IsTransient(err) {
					if err != nil {
						return fmt.Errorf("reading Node %s: %w", name, err)
					}
					return nil
				}
				return wait.Permanent(fmt.Errorf("reading Node %s: %w", name, err))
			})
			if err != nil {
				return fmt.Errorf("waiting for the kubelet to register Node %s: %w%s", name, err, kubeletLogHint(d))
			}
			d.Out.Say("the kubelet has its client certificate and Node %s is registered", name)
			bootShown := filepath.Join(d.KubeconfigDir, kubelet.BootstrapConfigName)
			if err := os.Remove(d.Path(bootShown)); err == nil {
				d.Out.Say("removed %s", bootShown)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("removing %s: %w", bootShown, err)
			}
			return nil
		},
	}
}
