package phases

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// kubeletHealthz is the kubelet's local health endpoint (healthzBindAddress and
// healthzPort of its configuration).
const kubeletHealthz = "http://127.0.0.1:10248/healthz"

// reconfigureWaitKubeletPhase waits until the kubelet answers its health endpoint, so
// that a restarted kubelet is up before kforge up moves on to the next host.
//
// Reads Data.Waiter.
func reconfigureWaitKubeletPhase() Phase {
	return Phase{
		Name:  "wait-kubelet",
		Short: "Wait for the kubelet to report healthy",
		Run: func(ctx context.Context, d *Data) error {
			client := &http.Client{Timeout: 5 * time.Second}
			return d.Waiter.WaitFor(ctx, d, "the kubelet to answer "+kubeletHealthz, func(ctx context.Context) error {
				if msg := probe(ctx, client, kubeletHealthz); msg != "" {
					return fmt.Errorf("the kubelet's %s: %s", kubeletHealthz, msg)
				}
				return nil
			})
		},
	}
}
