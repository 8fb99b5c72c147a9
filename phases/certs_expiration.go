package phases

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/kubeconfig"
)

// Expiration is what `kforge certs check-expiration` reports, as of now: every certificate
// of the table under certDir (certs.Expiration), then the client certificate of every
// kubeconfig of RenewKubeconfigs under kubeconfigDir, each with its residual time.
func Expiration(certDir, kubeconfigDir string, c *config.Cluster, now time.Time) ([]certs.ExpiryRow, error) {
	rows, err := certs.Expiration(certDir, c)
	if err != nil {
		return nil, err
	}
	external := false // the cluster CA's key is absent
	for _, r := range rows {
		if r.Name == certs.NameCA {
			external = r.External
		}
	}
	for _, f := range RenewKubeconfigs {
		r := certs.ExpiryRow{Name: f, Path: filepath.Join(kubeconfigDir, f), Signer: certs.NameCA}
		data, err := readFileIfExists(r.Path)
		if err != nil {
			return nil, fmt.Errorf("reading certificate expiration: %w", err)
		}
		if data == nil {
			r.Missing = true
			rows = append(rows, r)
			continue
		}
		certPEM, _, err := kubeconfig.ClientCert(data)
		if err != nil {
			return nil, fmt.Errorf("reading certificate expiration: %s: %w", r.Path, err)
		}
		cert, err := certs.ParseCertPEM(certPEM)
		if err != nil {
			return nil, fmt.Errorf("reading certificate expiration: the client certificate of %s: %w", r.Path, err)
		}
		r.NotAfter, r.External = cert.NotAfter, external
		rows = append(rows, r)
	}
	for i := range rows {
		if !rows[i].Missing {
			rows[i].ResidualSeconds = int64(rows[i].NotAfter.Sub(now) / time.Second)
		}
	}
	return rows, nil
}
