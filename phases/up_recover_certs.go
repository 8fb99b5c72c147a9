package phases

import "context"

// upRecoverCertsPhase brings back a cluster whose certificates expired (while it was off,
// typically), before anything needs its API: on each control-plane host the plan says
// (fleet.Plan.Recovery), one at a time, `kforge certs renew all` offline from the CA on
// disk, which restarts the kubelet and the static pods, then that host's apiserver ready;
// then the renewed admin.conf becomes the run's admin kubeconfig (and the operator's). The
// cluster answers again, so the run asks it and plans again, as a fresh run would: the
// phases after this one work from that plan. A failure on one host leaves the ones after
// it alone; running up again goes on from where it stopped (renewal converges).
//
// Reads Data.Up's plan; resets Data.Up's observed and plan after a renewal.
func upRecoverCertsPhase(notDry func(*Data) (string, bool)) Phase {
	return Phase{
		Name:  "recover-certs",
		Short: "Renew expired certificates offline on each control-plane host, one at a time, then refresh the admin kubeconfig",
		Skip:  notDry,
		Run: func(ctx context.Context, d *Data) error {
			p, err := d.upPlan(ctx)
			if err != nil {
				return err
			}
			if len(p.Recovery.ControlPlanes) == 0 {
				d.Out.Say("no control-plane certificate has expired")
				return nil
			}
			if err := d.Up.fleet.RenewControlPlanes(ctx, p.Recovery.ControlPlanes); err != nil {
				return err
			}
			d.Out.Say("the control plane is back; asking the cluster again and planning the rest")
			d.Up.observed, d.Up.plan = nil, nil
			_, err = d.upPlan(ctx)
			return err
		},
	}
}
