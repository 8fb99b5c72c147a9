package phases

import (
	"context"
	"fmt"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/kforge/kforge/fleet"
	"github.com/kforge/kforge/internal/fileutil"
)

// ApproveServingSpec is what `kforge certs approve-serving` works with on a control-plane
// host.
type ApproveServingSpec struct {
	// Client reaches the cluster as an admin (admin.conf).
	Client kubernetes.Interface
	// CA is the cluster CA (ca.crt), PEM.
	CA []byte
	// Marker is where fleet.KubeletServingMarker is on this host (under a test's root).
	Marker string
	// DryRun reviews without approving and records nothing.
	DryRun bool
	// Wait is how long to wait for every kubelet to serve a certificate the cluster CA
	// signed; 0 looks once. Interval is how often to look again.
	Wait, Interval time.Duration
	// Dial opens connections to the kubelets; nil is a plain net.Dialer.
	Dial fleet.DialFunc
	// Out gets a line per CSR and the outcome.
	Out *Printer
}

// ApproveServingReport is what `kforge certs approve-serving -o json` prints.
type ApproveServingReport struct {
	DryRun bool `json:"dry_run"`
	fleet.ServingCertsReport
	// Recorded is the path of the marker written (or, on a dry run, that would be),
	// "" when some kubelet is not verified.
	Recorded string `json:"recorded,omitempty"`
}

// ApproveServing is `kforge certs approve-serving`: kforge up's approval of the kubelets'
// serving certificates (fleet.ServingApproval: each pending kubelet-serving CSR that asks
// for exactly its own node's names and addresses is approved, the others are left pending
// with why), for operators who do not run up, from a control-plane host. Once every
// kubelet serves a certificate the cluster CA signed (dialled from this host, trusting only
// that CA) it records so on this host (fleet.KubeletServingMarker): the next `kforge
// reconfigure` here then gives the apiserver --kubelet-certificate-authority, if
// kubelet.server_tls_bootstrap is on. The error says which kubelets are not verified.
func ApproveServing(ctx context.Context, s ApproveServingSpec) (ApproveServingReport, error) {
	a := fleet.ServingApproval{
		Client: s.Client, CA: s.CA, Dial: s.Dial, DryRun: s.DryRun,
		Interval: s.Interval, Timeout: s.Wait,
		Print: func(line string) { s.Out.Say("%s", line) },
	}
	rep, err := a.Run(ctx)
	out := ApproveServingReport{DryRun: s.DryRun, ServingCertsReport: rep}
	if len(rep.CSRs) == 0 && ctx.Err() == nil {
		s.Out.Say("no pending kubelet serving CSR")
	}
	if err != nil {
		return out, fmt.Errorf("the apiserver must not verify kubelets yet: %w", err)
	}
	out.Recorded = fleet.KubeletServingMarker
	if s.DryRun {
		s.Out.Say("every kubelet (%d) serves a certificate signed by the cluster CA; would record it in %s", len(rep.Kubelets), fleet.KubeletServingMarker)
		return out, nil
	}
	if _, err := fileutil.WriteAtomic(s.Marker, fleet.MarkerText(rep.Kubelets, time.Now()), 0o644, 0o755); err != nil {
		return out, fmt.Errorf("recording that every kubelet is verified: %w", err)
	}
	s.Out.Say("every kubelet (%d) serves a certificate signed by the cluster CA; recorded in %s", len(rep.Kubelets), fleet.KubeletServingMarker)
	s.Out.Say("with kubelet.server_tls_bootstrap = true, run 'kforge reconfigure -f cluster.toml' on this host to have its apiserver verify kubelets (--kubelet-certificate-authority); do the same on every control-plane host")
	return out, nil
}
