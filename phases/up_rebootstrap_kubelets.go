package phases

import "context"

// upRebootstrapKubeletsPhase gives every host whose kubelet client certificate expired a
// new one through the kubelet's TLS bootstrap, with a short-lived bootstrap token of its
// own, and waits for its Node to be Ready (fleet.RebootstrapKubelets). A control-plane
// host's kubelet is not among them: recover-certs renewed its certificate offline, since
// without it the kubelet runs no static pod.
//
// Reads Data.Up's plan.
func upRebootstrapKubeletsPhase(notDry func(*Data) (string, bool)) Phase {
	return Phase{
		Name:  "rebootstrap-kubelets",
		Short: "Re-bootstrap the kubelets whose client certificate expired, with a fresh short-lived token; wait for their Nodes to be Ready",
		Skip:  notDry,
		Run: func(ctx context.Context, d *Data) error {
			p, err := d.upPlan(ctx)
			if err != nil {
				return err
			}
			if len(p.Recovery.Kubelets) == 0 {
				d.Out.Say("no kubelet client certificate has expired")
				return nil
			}
			d.Up.fleet.RebootstrapKubelets(ctx, p.Recovery.Kubelets)
			return nil
		},
	}
}
