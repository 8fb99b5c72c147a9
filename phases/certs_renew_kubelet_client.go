package phases

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/internal/fileutil"
	"github.com/kforge/kforge/kubelet"
)

// KubeletClientTarget is the name `certs renew` takes for the kubelet's own client
// certificate (kubelet.ClientCertPath).
const KubeletClientTarget = "kubelet-client"

// certsRenewKubeletClientPhase mints the kubelet a new client certificate (system:node:<node>,
// group system:nodes) from the CA on disk, but only once the one it has has expired: until
// then the kubelet rotates it itself. An expired one stops the kubelet from starting at all
// (it falls back to a bootstrap kubeconfig that a joined host no longer has), and with it
// every static pod, so the control plane cannot come back until this is done, offline. It
// lays the certificate out as the kubelet keeps it (a timestamped file and the
// kubelet.ClientCertPath link) and restarts the kubelet, before the manifests are written
// again, so that the kubelet is running to restart the static pods.
//
// Reads Data.Cluster, Data.Node, Data.CertDir and Data.Now; writes under kubelet.CertDir;
// restarts the kubelet through Data.Services; sets Data.Renew.
func certsRenewKubeletClientPhase() Phase {
	return Phase{
		Name:  KubeletClientTarget,
		Short: "Mint the kubelet a new client certificate from the CA, only if the one it has expired",
		Skip:  notNamed(KubeletClientTarget),
		Run:   renewKubeletClient,
	}
}

func renewKubeletClient(ctx context.Context, d *Data) error {
	data, err := readFileIfExists(d.Path(kubelet.ClientCertPath))
	if err != nil {
		return err
	}
	if data == nil {
		d.Out.Say("%s does not exist: nothing to renew (the kubelet requests one when it starts)", kubelet.ClientCertPath)
		return nil
	}
	old, err := certs.ParseCertPEM(data)
	if err != nil {
		return fmt.Errorf("reading the kubelet's client certificate %s: %w", kubelet.ClientCertPath, err)
	}
	now := d.Now()
	if now.Before(old.NotAfter) {
		d.Out.Say("the kubelet's client certificate is valid until %s; the kubelet rotates it itself", old.NotAfter.Format(time.RFC3339))
		return nil
	}
	caCert, caKey, err := certs.LoadCA(d.Path(d.CertDir), "ca")
	if errors.Is(err, certs.ErrExternalCA) {
		renewExternal(d, RenewedFile{Name: KubeletClientTarget, Path: kubelet.ClientCertPath, NotAfter: old.NotAfter},
			fmt.Errorf("the kubelet's client certificate: %w", err))
		return nil
	}
	if err != nil {
		return err
	}
	validity := d.Cluster.Certificates.CertValidity.Duration
	if err := certs.CheckCAOutlives(certs.NameCA, filepath.Join(d.CertDir, "ca.crt"), caCert, now, validity); err != nil {
		return fmt.Errorf("renewing the kubelet's client certificate: %w", err)
	}
	certPEM, keyPEM, err := certs.NewClientCert(caCert, caKey, certs.ClientRequest{
		CommonName:   "system:node:" + d.Node.Name,
		Organization: []string{"system:nodes"},
		Validity:     validity,
		KeyAlgorithm: d.Cluster.Certificates.KeyAlgorithm,
		Now:          d.Now,
	})
	if err != nil {
		return fmt.Errorf("renewing the kubelet's client certificate: %w", err)
	}
	renewed, err := certs.ParseCertPEM(certPEM)
	if err != nil {
		return err
	}
	name := kubelet.ClientCertFileName(renewed.NotBefore)
	shown := filepath.Join(kubelet.CertDir, name)
	if _, err := fileutil.WriteAtomic(d.Path(shown), append(certPEM, keyPEM...), 0o600, 0o700); err != nil {
		return err
	}
	if _, err := fileutil.SymlinkAtomic(d.Path(kubelet.ClientCertPath), name); err != nil {
		return err
	}
	d.Renew.Renewed = append(d.Renew.Renewed, RenewedFile{Name: KubeletClientTarget, Path: shown, NotAfter: renewed.NotAfter})
	d.Out.Say("the kubelet's client certificate expired %s ago: minted %s for system:node:%s, valid until %s, linked from %s",
		now.Sub(old.NotAfter).Round(time.Second), shown, d.Node.Name, renewed.NotAfter.Format(time.RFC3339), kubelet.ClientCertPath)
	if err := d.Services.Restart(ctx, kubeletSpec(d)); err != nil {
		return fmt.Errorf("restarting the kubelet with its new client certificate: %w", err)
	}
	d.Out.Say("restarted the kubelet")
	return nil
}
