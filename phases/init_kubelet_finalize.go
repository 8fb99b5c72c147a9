package phases

import (
	"bytes"
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
			// Seed the rotating file with the credentials init signed; the kubelet
			// replaces it before it expires.
			seed := func() ([]byte, error) {
				cert, key, err := embeddedClientCert(d)
				return append(cert, key...), err
			}
			if err := layOutKubeletClientCert(d, seed); err != nil {
				return err
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

// layOutKubeletClientCert keeps the kubelet's client certificate as the kubelet's
// certificate store needs it to rotate: kubelet.ClientCertPath a symlink to a timestamped
// file beside it (kubelet.ClientCertFileName), holding the certificate and its key.
//
// A regular file at kubelet.ClientCertPath (kforge wrote one before it laid the files out
// so) is converted: its bytes go to the timestamped file, then the link replaces it. With
// nothing there, or a link to nothing, seed gives the certificate and key to start from; a
// nil seed leaves the path to the kubelet's TLS bootstrap. A link to a file is left alone:
// the kubelet may have rotated to it. Each step is atomic and named after the certificate,
// so a run killed anywhere is finished by the next one, which writes nothing else.
func layOutKubeletClientCert(d *Data, seed func() ([]byte, error)) error {
	current := d.Path(kubelet.ClientCertPath)
	var pair []byte
	st, err := os.Lstat(current)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("checking %s: %w", kubelet.ClientCertPath, err)
	case st.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(current)
		if err != nil {
			return fmt.Errorf("checking %s: %w", kubelet.ClientCertPath, err)
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(kubelet.CertDir, target)
		}
		if _, err := os.Stat(d.Path(target)); err == nil {
			d.Out.Say("%s links to %s; leaving it to the kubelet's rotation", kubelet.ClientCertPath, target)
			return nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("checking %s: %w", target, err)
		}
	case st.Mode().IsRegular():
		if pair, err = os.ReadFile(current); err != nil {
			return fmt.Errorf("reading %s: %w", kubelet.ClientCertPath, err)
		}
	default:
		return fmt.Errorf("%s is neither a file nor a link (%s)", kubelet.ClientCertPath, st.Mode().Type())
	}
	converting := pair != nil
	if !converting {
		if seed == nil {
			return nil
		}
		if pair, err = seed(); err != nil {
			return err
		}
	}
	cert, err := certs.ParseCertPEM(pair)
	if err != nil {
		return fmt.Errorf("the kubelet's client certificate for %s: %w", kubelet.ClientCertPath, err)
	}
	name := kubelet.ClientCertFileName(cert.NotBefore)
	shown := filepath.Join(kubelet.CertDir, name)
	if old, err := os.ReadFile(d.Path(shown)); err == nil && !bytes.Equal(old, pair) {
		return fmt.Errorf("%s already holds another certificate; leaving it and %s alone", shown, kubelet.ClientCertPath)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reading %s: %w", shown, err)
	}
	if _, err := fileutil.WriteAtomic(d.Path(shown), pair, 0o600, 0o700); err != nil {
		return err
	}
	if _, err := fileutil.SymlinkAtomic(current, name); err != nil {
		return err
	}
	if converting {
		d.Out.Say("moved the kubelet's client certificate to %s and linked %s to it, so the kubelet can rotate it", shown, kubelet.ClientCertPath)
	} else {
		d.Out.Say("wrote the kubelet's client certificate to %s, linked from %s", shown, kubelet.ClientCertPath)
	}
	return nil
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
