package phases

import "context"

// upRenewCertsPhase renews the certificates of every control plane already in the cluster
// whose earliest leaf or kubeconfig client certificate has less than
// certificates.renew_before left (fleet.RenewCerts): the plan says "renews certificates on
// <host> (earliest <name> expires in <left>)", and, unless --dry-run, up runs
// `kforge certs renew all --if-due` on one control plane at a time, each healthy again
// before the next. It runs after reconfigure, which installs the file the renewal reads.
//
// Reads Data.Up's plan and Data.Now.
func upRenewCertsPhase() Phase {
	return Phase{
		Name:  "renew-certs",
		Short: "Renew the certificates of the control planes that have less than certificates.renew_before left, one at a time",
		Run: func(ctx context.Context, d *Data) error {
			if _, err := d.upPlan(ctx); err != nil {
				return err
			}
			d.Up.fleet.RenewCerts(ctx, d.Now())
			return nil
		},
	}
}
