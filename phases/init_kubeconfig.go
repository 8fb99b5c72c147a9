package phases

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/internal/fileutil"
	"github.com/kforge/kforge/kubeconfig"
)

// kubeconfigPhase generates one sub-phase per kubeconfig file.
//
// Reads Data.Cluster, Data.Node, Data.AdvertiseAddress, Data.KubeconfigDir, Data.Now and
// the CA on disk.
func kubeconfigPhase() Phase {
	p := Phase{Name: "kubeconfig", Short: "Generate the kubeconfig files the control plane and the admin use"}
	for _, spec := range kubeconfig.Specs("") {
		p.Phases = append(p.Phases, Phase{
			Name:  spec.Name,
			Short: spec.Desc,
			Run: func(_ context.Context, d *Data) error {
				for _, s := range kubeconfig.Specs(d.Node.Name) {
					if s.Name == spec.Name {
						return ensureKubeconfig(d, s)
					}
				}
				return fmt.Errorf("no kubeconfig named %q", spec.Name)
			},
		})
	}
	return p
}

func ensureKubeconfig(d *Data, spec kubeconfig.Spec) error {
	server := spec.Server(d.Cluster, d.AdvertiseAddress.String())
	certDir := d.Path(d.CertDir)
	caPEM, err := os.ReadFile(filepath.Join(certDir, "ca.crt"))
	if err != nil {
		return fmt.Errorf("reading the cluster CA (run the certs phase first): %w", err)
	}
	shown := filepath.Join(d.KubeconfigDir, spec.FileName)
	path := d.Path(shown)
	existing, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := kubeconfig.VerifyWithFiles(existing, d.Cluster.Name, server, caPEM, spec, d.Now(),
			func(p string) ([]byte, error) { return os.ReadFile(d.Path(p)) }); err != nil {
			return err
		}
		d.Out.Say("using existing %s", shown)
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("reading %s: %w", shown, err)
	}
	external, err := externalCA(d)
	if err != nil {
		return err
	}
	if external {
		return fmt.Errorf("the cluster CA is external (no ca.key in %s), so kforge cannot sign a client certificate for %s: provide that file", d.CertDir, shown)
	}
	caCert, caKey, err := certs.LoadCA(certDir, "ca")
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := certs.NewClientCert(caCert, caKey, certs.ClientRequest{
		CommonName:   spec.CommonName,
		Organization: spec.Organization,
		Validity:     d.Cluster.Certificates.CertValidity.Duration,
		KeyAlgorithm: d.Cluster.Certificates.KeyAlgorithm,
		Now:          d.Now,
	})
	if err != nil {
		return fmt.Errorf("signing the client certificate for %s: %w", shown, err)
	}
	data, err := kubeconfig.Build(d.Cluster.Name, server, caPEM, spec.CommonName, certPEM, keyPEM)
	if err != nil {
		return err
	}
	if _, err := fileutil.WriteAtomic(path, data, 0o600, 0o755); err != nil {
		return err
	}
	d.Out.Say("wrote %s (user %s)", shown, spec.CommonName)
	return nil
}
