package phases

import (
	"context"

	"github.com/kforge/kforge/certs"
)

// joinCertsPhase generates this host's certificates, signed by the downloaded CAs.
//
// Reads Data.Cluster, Data.CertDir and the downloaded CAs on disk.
func joinCertsPhase() Phase {
	return Phase{
		Name:  "certs",
		Short: "Generate this host's certificates, signed by the downloaded CAs",
		Run:   runJoinCerts,
	}
}

// runJoinCerts ensures every certificate of the table and the service-account keys. The CAs
// and sa keys are the downloaded ones; every leaf is this host's own.
func runJoinCerts(_ context.Context, d *Data) error {
	for _, spec := range certs.Table(d.Cluster) {
		if err := ensureCert(d, spec); err != nil {
			return err
		}
	}
	out, err := certs.EnsureServiceAccountKeys(d.Path(d.CertDir), d.Cluster.Certificates.KeyAlgorithm)
	if err != nil {
		return err
	}
	d.Out.Say("%s: service account key pair (sa.key, sa.pub)", describeOutcome(out))
	return nil
}
