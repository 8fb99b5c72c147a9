package phases

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/fleet"
	"github.com/kforge/kforge/internal/crashpoint"
	"github.com/kforge/kforge/internal/fileutil"
	"github.com/kforge/kforge/kubeconfig"
	"github.com/kforge/kforge/manifests"
)

// controlPlanePhase writes the static pod manifests of the apiserver, the
// controller-manager and the scheduler, and before the apiserver's the files it reads:
// its audit policy, admission and authentication configurations and, on init, the
// encryption configuration with a new key. Shared by init and join.
//
// Reads Data.Cluster, Data.Node, Data.AdvertiseAddress, Data.Join.ControlPlane and the
// directories of Data.
func controlPlanePhase() Phase {
	p := Phase{Name: "control-plane", Short: "Generate the static pod manifests for the control plane"}
	for _, c := range manifests.ControlPlaneComponents() {
		p.Phases = append(p.Phases, Phase{
			Name:  c.Phase,
			Short: c.Desc,
			Run: func(_ context.Context, d *Data) error {
				if c.Name == manifests.NameAPIServer {
					if err := writeAPIServerFiles(d); err != nil {
						return err
					}
					if err := forgetKubeletsVerified(d); err != nil {
						return err
					}
				}
				return writeManifest(d, c)
			},
		})
	}
	return p
}

// writeAPIServerFiles writes the apiserver's security configuration ([security]).
func writeAPIServerFiles(d *Data) error {
	params, err := manifestParams(d)
	if err != nil {
		return err
	}
	files, err := manifests.APIServerFiles(params)
	if err != nil {
		return err
	}
	for _, f := range files {
		res, err := fileutil.WriteAtomic(d.Path(f.Path), f.Data, f.Mode, 0o755)
		if err != nil {
			return err
		}
		if res == fileutil.Unchanged {
			d.Out.Say("using existing %s (unchanged)", f.Path)
		} else {
			d.Out.Say("%s %s", res, f.Path)
		}
	}
	if d.Cluster.Security.EncryptsSecrets() {
		return ensureEncryptionConfig(d)
	}
	return nil
}

// ensureEncryptionConfig makes the key that encrypts Secrets once: an existing file is
// kept, whatever it holds, since Secrets already written can be read only with its keys.
// A joining control plane never makes one: it must use the cluster's, which
// download-certs wrote.
func ensureEncryptionConfig(d *Data) error {
	shown := manifests.EncryptionConfigPath(d.CertDir)
	have, err := readFileIfExists(d.Path(shown))
	if err != nil {
		return err
	}
	switch {
	case have != nil:
		d.Out.Say("using existing %s", shown)
		return nil
	case d.Join.ControlPlane:
		return fmt.Errorf("%s is missing: a joining control plane must use the cluster's encryption key; "+
			"upload the shared certificates again with 'kforge init phase upload-certs --upload-certs' on a control-plane host and join with the key it prints", shown)
	}
	// An apiserver manifest that already reads the file means Secrets may be encrypted with
	// the key that went missing: a new key would not read them.
	manifest := filepath.Join(d.ManifestsDir, manifests.FileName(manifests.NameAPIServer))
	if m, err := readFileIfExists(d.Path(manifest)); err != nil {
		return err
	} else if bytes.Contains(m, []byte("--encryption-provider-config=")) {
		return fmt.Errorf("%s is missing, but %s already reads it: Secrets in etcd may be encrypted with the lost key, and a new one could not read them; "+
			"restore the file from another control-plane host (the same path) or a backup, then run init again", shown, manifest)
	}
	key := make([]byte, manifests.EncryptionKeySize)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("generating the encryption key: %w", err)
	}
	data, err := manifests.EncryptionConfig(key)
	if err != nil {
		return err
	}
	if _, err := fileutil.WriteAtomic(d.Path(shown), data, 0o600, 0o700); err != nil {
		return err
	}
	d.Out.Say("created %s: a new key that encrypts Secrets in etcd", shown)
	return nil
}

func manifestParams(d *Data) (manifests.Params, error) {
	external, err := externalCA(d)
	if err != nil {
		return manifests.Params{}, err
	}
	inputs, err := manifestInputs(d)
	if err != nil {
		return manifests.Params{}, err
	}
	verified, err := readFileIfExists(d.Path(fleet.KubeletServingMarker))
	if err != nil {
		return manifests.Params{}, err
	}
	return manifests.Params{
		Cluster:          d.Cluster,
		NodeName:         d.Node.Name,
		AdvertiseAddress: d.AdvertiseAddress.String(),
		CertDir:          d.CertDir,
		KubeconfigDir:    d.KubeconfigDir,
		ExternalCA:       external,
		VerifyKubelets:   verified != nil,
		Inputs:           inputs,
	}, nil
}

// forgetKubeletsVerified removes the record that every kubelet serves a certificate the
// cluster CA signed (fleet.KubeletServingMarker) when kubelet.server_tls_bootstrap is off:
// the kubelets then sign their own, and turning the option on again must wait until every
// kubelet has its CA-signed certificate again before the apiserver verifies them.
func forgetKubeletsVerified(d *Data) error {
	if d.Cluster.Kubelet.ServerTLSBootstrap {
		return nil
	}
	err := os.Remove(d.Path(fleet.KubeletServingMarker))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("removing %s (kubelet.server_tls_bootstrap is off): %w", fleet.KubeletServingMarker, err)
	}
	d.Out.Say("removed %s: kubelet.server_tls_bootstrap is off, the apiserver no longer verifies kubelets with the cluster CA", fleet.KubeletServingMarker)
	return nil
}

// manifestInputs fingerprints the certificates (not the keys: a renewal keeps them), the
// service-account public key and the kubeconfigs on the host that a static pod may read
// (manifests.Params.Inputs): a renewed certificate changes the manifests of the
// components that read it, so that the kubelet restarts them. Missing files are left out.
func manifestInputs(d *Data) (map[string]string, error) {
	var files []string
	for _, s := range certs.Table(d.Cluster) {
		files = append(files, s.CertPath(d.CertDir))
	}
	_, pub := certs.ServiceAccountKeyPaths(d.CertDir)
	files = append(files, pub)
	for _, s := range kubeconfig.Specs(d.Node.Name) {
		files = append(files, filepath.Join(d.KubeconfigDir, s.FileName))
	}
	inputs := map[string]string{}
	for _, f := range files {
		data, err := readFileIfExists(d.Path(f))
		if err != nil {
			return nil, err
		}
		if data != nil {
			inputs[f] = manifests.InputFingerprint(data)
		}
	}
	return inputs, nil
}

func writeManifest(d *Data, c manifests.Component) error {
	params, err := manifestParams(d)
	if err != nil {
		return err
	}
	_, err = writeManifestWith(d, c, params)
	return err
}

// writeManifestWith renders c's manifest from params and writes it, reporting whether the
// file changed.
func writeManifestWith(d *Data, c manifests.Component, params manifests.Params) (fileutil.Result, error) {
	pod, err := c.Build(params)
	if err != nil {
		return 0, fmt.Errorf("building the %s manifest: %w", c.Name, err)
	}
	data, err := manifests.Render(pod)
	if err != nil {
		return 0, fmt.Errorf("rendering the %s manifest: %w", c.Name, err)
	}
	shown := filepath.Join(d.ManifestsDir, manifests.FileName(c.Name))
	res, err := fileutil.WriteAtomic(d.Path(shown), data, 0o600, 0o755)
	if err != nil {
		return 0, err
	}
	if res != fileutil.Unchanged {
		if d.Rewritten == nil {
			d.Rewritten = map[string]time.Time{}
		}
		d.Rewritten[c.Name] = d.Now()
		crashpoint.Here("control-plane/" + c.Name + "/written")
	}
	switch res {
	case fileutil.Unchanged:
		d.Out.Say("using existing %s (unchanged)", shown)
	default:
		d.Out.Say("%s static pod manifest for %s: %s", res, c.Name, shown)
	}
	return res, nil
}
