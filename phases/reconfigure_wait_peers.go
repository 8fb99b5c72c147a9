package phases

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kforge/kforge/manifests"
)

// reconfigureWaitPeersPhase waits, on a control-plane host, until the kube-apiserver of
// every other control plane answers /readyz, before this host's etcd and control plane
// can restart. kforge up reconfigures one control plane at a time and each waits for its
// own components; this wait also covers an apiserver still restarting from a run that was
// killed, so that a re-run never takes a second one down while the first is not back.
//
// Reads Data.Waiter and the API (the kube-apiserver mirror pods and the address each
// advertises).
func reconfigureWaitPeersPhase() Phase {
	return Phase{
		Name:  "wait-peers",
		Short: "Wait for the other control planes' kube-apiservers to be ready",
		Run: func(ctx context.Context, d *Data) error {
			var client *http.Client
			return d.Waiter.WaitFor(ctx, d, "the other control planes' kube-apiservers to answer /readyz", func(ctx context.Context) error {
				if client == nil {
					c, err := clusterCAClient(d)
					if err != nil {
						return err
					}
					client = c
				}
				cs, err := d.Client()
				if err != nil {
					return err
				}
				pods, err := cs.CoreV1().Pods(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{LabelSelector: "component=kube-apiserver"})
				if err != nil {
					return fmt.Errorf("listing the kube-apiservers: %w", err)
				}
				var down []string
				for _, p := range peerAPIServers(pods.Items, d.Node.Name) {
					if msg := probe(ctx, client, "https://"+p.endpoint+"/readyz"); msg != "" {
						down = append(down, fmt.Sprintf("%s (%s): %s", p.node, p.endpoint, msg))
					}
				}
				if len(down) > 0 {
					return fmt.Errorf("not ready: %s", strings.Join(down, "; "))
				}
				return nil
			})
		},
	}
}

// peerAPIServer is another control plane's kube-apiserver: its node and the host:port it
// advertises.
type peerAPIServer struct{ node, endpoint string }

// peerAPIServers lists the kube-apiservers of pods, kube-apiserver mirror pods, on nodes
// other than self, by node name: each with the endpoint of its
// manifests.APIServerEndpointAnnotation. A pod without it (not made by kforge or
// kubeadm) cannot be probed and is left out.
func peerAPIServers(pods []corev1.Pod, self string) []peerAPIServer {
	var out []peerAPIServer
	for _, p := range pods {
		ep := p.Annotations[manifests.APIServerEndpointAnnotation]
		if p.Spec.NodeName == self || ep == "" {
			continue
		}
		out = append(out, peerAPIServer{node: p.Spec.NodeName, endpoint: ep})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].node < out[j].node })
	return out
}
