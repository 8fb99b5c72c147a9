package phases

import "context"

// upApproveServingCertsPhase approves the kubelets' serving certificates when
// kubelet.server_tls_bootstrap is on (fleet.ApproveServingCerts): it approves each pending
// kubernetes.io/kubelet-serving CSR that asks for exactly its own node's names and
// addresses (servingcsr.Decide), leaves the others pending and says why, waits until every
// kubelet serves a certificate signed by the cluster CA, and only then has the apiserver
// of each control plane, one at a time, verify kubelets with the cluster CA
// (--kubelet-certificate-authority). On --dry-run it says what it would approve and
// whether it would turn the flag on.
//
// Reads Data.Up's plan; runs after reconfigure and the joins, whose kubelets ask then.
func upApproveServingCertsPhase() Phase {
	return Phase{
		Name:  "approve-serving-certs",
		Short: "Approve the kubelets' serving CSRs for their own names and addresses, then have the apiserver verify kubelets (kubelet.server_tls_bootstrap)",
		Skip: func(d *Data) (string, bool) {
			return "kubelet.server_tls_bootstrap is off", !d.Cluster.Kubelet.ServerTLSBootstrap
		},
		Run: func(ctx context.Context, d *Data) error {
			if _, err := d.upPlan(ctx); err != nil {
				return err
			}
			return d.Up.fleet.ApproveServingCerts(ctx)
		},
	}
}
