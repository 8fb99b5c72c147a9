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
	"github.com/kforge/kforge/kubelet"
)

// kubeletFinalizePhase points kubelet.conf at the kubelet's own rotating client
// certificate, so that certificate rotation keeps the node's credentials current.
//
// Reads Data.Cluster, Data.Node, Data.AdvertiseAddress, Data.KubeconfigDir and the CA on
// disk.
func kubeletFinalizePhase() Phase {
	return Phase{
		Name:  "kubelet-finalize",
		Short: "Point kubelet.conf at the kubelet's rotating client certificate",
		Run: func(_ context.Context, d *Data) error {
			pemPath := d.Path(kubelet.ClientCertPath)
			if _, err := os.Stat(pemPath); errors.Is(err, fs.ErrNotExist) {
				// Seed the rotating file with the credentials init signed; the kubelet
				// replaces it before it expires.
				cert, key, err := embeddedClientCert(d)
				if err != nil {
					return err
				}
				if _, err := fileutil.WriteAtomic(pemPath, append(cert, key...), 0o600, 0o700); err != nil {
					return err
				}
			} else if err != nil {
				return fmt.Errorf("checking %s: %w", kubelet.ClientCertPath, err)
			}
			spec, err := kubeletKubeconfigSpec(d)
			if err != nil {
				return err
			}
			caPEM, err := os.ReadFile(filepath.Join(d.Path(d.CertDir), "ca.crt"))
			if err != nil {
				return fmt.Errorf("reading the cluster CA: %w", err)
			}
			data, err := kubeconfig.BuildWithCertFile(d.Cluster.Name, spec.Server(d.Cluster, d.AdvertiseAddress.String()),
				caPEM, spec.CommonName, kubelet.ClientCertPath)
			if err != nil {
				return err
			}
			shown := filepath.Join(d.KubeconfigDir, kubelet.KubeconfigName)
			res, err := fileutil.WriteAtomic(d.Path(shown), data, 0o600, 0o755)
			if err != nil {
				return err
			}
			if res == fileutil.Unchanged {
				d.Out.Say("%s already uses %s", shown, kubelet.ClientCertPath)
			} else {
				d.Out.Say("%s now uses the rotating client certificate %s", shown, kubelet.ClientCertPath)
			}
			return nil
		},
	}
}

func kubeletKubeconfigSpec(d *Data) (kubeconfig.Spec, error) {
	for _, s := range kubeconfig.Specs(d.Node.Name) {
		if s.FileName == kubelet.KubeconfigName {
			return s, nil
		}
	}
	return kubeconfig.Spec{}, fmt.Errorf("no kubeconfig spec for %s", kubelet.KubeconfigName)
}

// embeddedClientCert reads the client certificate and key embedded in kubelet.conf.
func embeddedClientCert(d *Data) (cert, key []byte, err error) {
	path := d.Path(filepath.Join(d.KubeconfigDir, kubelet.KubeconfigName))
	cfg, err := loadKubeconfig(path)
	if err != nil {
		return nil, nil, err
	}
	for _, u := range cfg.AuthInfos {
		if len(u.ClientCertificateData) > 0 && len(u.ClientKeyData) > 0 {
			if _, err := certs.ParseCertPEM(u.ClientCertificateData); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", path, err)
			}
			return u.ClientCertificateData, u.ClientKeyData, nil
		}
	}
	return nil, nil, fmt.Errorf("%s has no embedded client certificate to seed %s with", path, kubelet.ClientCertPath)
}
