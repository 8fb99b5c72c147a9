package phases

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/internal/fileutil"
	"github.com/kforge/kforge/kubeconfig"
)

// certsRenewKubeconfigPhase generates one sub-phase per kubeconfig that embeds its client
// certificate (RenewKubeconfigs): each signs that certificate again with the cluster CA,
// for the same key and subject, and keeps the rest of the file (server, CA).
//
// Reads Data.Cluster, Data.CertDir, Data.KubeconfigDir and Data.Now; writes the
// kubeconfigs under Data.KubeconfigDir; sets Data.Renew.
func certsRenewKubeconfigPhase() Phase {
	p := Phase{Name: "kubeconfig", Short: "Renew the client certificates embedded in the kubeconfig files"}
	for _, file := range RenewKubeconfigs {
		p.Phases = append(p.Phases, Phase{
			Name:  file,
			Short: "Renew the client certificate embedded in " + file,
			Skip:  notNamed(file),
			Run:   func(_ context.Context, d *Data) error { return renewKubeconfig(d, file) },
		})
	}
	return p
}

func renewKubeconfig(d *Data, file string) error {
	shown := filepath.Join(d.KubeconfigDir, file)
	data, err := readFileIfExists(d.Path(shown))
	if err != nil {
		return err
	}
	if data == nil {
		// super-admin.conf is on the init host only.
		d.Out.Say("%s is not on this host: nothing to renew", shown)
		return nil
	}
	certPEM, keyPEM, err := kubeconfig.ClientCert(data)
	if err != nil {
		return fmt.Errorf("reading %s: %w", shown, err)
	}
	old, err := certs.ParseCertPEM(certPEM)
	if err != nil {
		return fmt.Errorf("reading the client certificate of %s: %w", shown, err)
	}
	key, err := certs.ParseKeyPEM(keyPEM)
	if err != nil {
		return fmt.Errorf("reading the client key of %s: %w", shown, err)
	}
	certDir := d.Path(d.CertDir)
	caCert, caKey, err := certs.LoadCA(certDir, "ca")
	if errors.Is(err, certs.ErrExternalCA) {
		renewExternal(d, RenewedFile{Name: file, Path: shown, NotAfter: old.NotAfter}, fmt.Errorf("the client certificate of %s: %w", shown, err))
		return nil
	}
	if err != nil {
		return err
	}
	validity := d.Cluster.Certificates.CertValidity.Duration
	if err := certs.CheckCAOutlives(certs.NameCA, filepath.Join(d.CertDir, "ca.crt"), caCert, d.Now(), validity); err != nil {
		return fmt.Errorf("renewing the client certificate of %s: %w", shown, err)
	}
	newPEM, _, err := certs.NewClientCert(caCert, caKey, certs.ClientRequest{
		CommonName:   old.Subject.CommonName,
		Organization: old.Subject.Organization,
		Validity:     validity,
		Now:          d.Now,
		Key:          key,
		KeyPEM:       keyPEM,
	})
	if err != nil {
		return fmt.Errorf("renewing the client certificate of %s: %w", shown, err)
	}
	renewed, err := certs.ParseCertPEM(newPEM)
	if err != nil {
		return err
	}
	out, err := kubeconfig.WithClientCert(data, newPEM)
	if err != nil {
		return fmt.Errorf("renewing %s: %w", shown, err)
	}
	if _, err := fileutil.WriteAtomic(d.Path(shown), out, 0o600, 0o755); err != nil {
		return err
	}
	d.Renew.Renewed = append(d.Renew.Renewed, RenewedFile{Name: file, Path: shown, NotAfter: renewed.NotAfter})
	d.Out.Say("renewed the client certificate of %s (user %s), for the key it had: valid until %s", shown, old.Subject.CommonName, renewed.NotAfter.Format(time.RFC3339))
	return nil
}
