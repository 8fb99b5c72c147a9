package phases

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"time"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/tokens"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
)

// UploadCertsPhase seals the certificates control-plane nodes share (CAs, service-account
// keys) with the certificate key and stores them in Secret kube-system/kubeadm-certs, owned
// by a two-hour token so that they are deleted with it. The key itself never enters the
// cluster: it is printed for the control-plane join command, and never logged.
//
// Reads Data.Cluster, Data.CertDir, Data.UploadCerts and Data.Client; sets
// Data.CertificateKey when it generates one.
func UploadCertsPhase() Phase {
	return Phase{
		Name:  "upload-certs",
		Short: "Upload the shared control-plane certificates, sealed, to Secret kube-system/kubeadm-certs",
		Skip: func(d *Data) (string, bool) {
			return "--upload-certs not set", !d.BootstrapData.UploadCerts
		},
		Run: runUploadCerts,
	}
}

func runUploadCerts(ctx context.Context, d *Data) error {
	b := &d.BootstrapData
	if b.CertificateKey.IsZero() {
		k, err := bootstrap.GenerateCertificateKey()
		if err != nil {
			return err
		}
		b.CertificateKey = k
	}
	files, err := readSharedCerts(d)
	if err != nil {
		return err
	}
	cs, err := clusterClient(ctx, d)
	if err != nil {
		return err
	}
	ownerID, expires, err := currentCertsSecret(ctx, d, cs, files)
	if err != nil {
		return err
	}
	if ownerID != "" {
		d.Out.Say("using existing Secret %s/%s: it opens with the certificate key and holds the current files",
			bootstrap.NamespaceSystem, bootstrap.CertsSecretName)
	} else {
		owner, id, exp, err := newCertsOwner(ctx, d, cs)
		if err != nil {
			return err
		}
		sealed, err := bootstrap.SealCerts(b.CertificateKey, files)
		if err != nil {
			return err
		}
		if _, err := ensureObject(ctx, d, cs, bootstrap.CertsSecret(sealed, owner)); err != nil {
			return err
		}
		ownerID, expires = id, exp
	}
	d.Log.Debug("shared certificates uploaded", "files", len(files), "owner-token", ownerID)
	if err := ensureObjects(ctx, d, cs, bootstrap.CertsRBAC()...); err != nil {
		return err
	}
	d.Out.Say("the sealed certificates are deleted with bootstrap token %s, which %s", ownerID, describeExpiry(expires))
	d.Out.Say("certificate key (a secret: it opens the certificates, pass it to join --control-plane):")
	d.Out.Plain("%s", b.CertificateKey.Reveal())
	return nil
}

// readSharedCerts reads the files joining control-plane nodes need, keyed by their name in
// kubeadm-certs. Missing CA keys mean an external CA and are skipped.
func readSharedCerts(d *Data) (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, f := range bootstrap.SharedCertFiles(d.Cluster, d.CertDir) {
		data, err := os.ReadFile(d.Path(f.Path))
		switch {
		case err == nil:
			files[f.Key] = data
		case errors.Is(err, fs.ErrNotExist) && f.Optional:
			d.Out.Say("skipping %s: not present (external CA)", f.Path)
		default:
			return nil, fmt.Errorf("reading %s to upload it: %w", f.Path, err)
		}
	}
	return files, nil
}

// currentCertsSecret returns the owner token ID and expiry of the kubeadm-certs Secret when
// it can stay as it is: it opens with Data's certificate key, holds exactly files, and its
// owner token has at least half its lifetime left. It returns "" when it must be written.
func currentCertsSecret(ctx context.Context, d *Data, cs kubernetes.Interface, files map[string][]byte) (string, time.Time, error) {
	sec, err := getSecret(ctx, cs, bootstrap.NamespaceSystem, bootstrap.CertsSecretName)
	if err != nil || sec == nil {
		return "", time.Time{}, err
	}
	opened, err := bootstrap.OpenCerts(d.BootstrapData.CertificateKey, sec.Data)
	if err != nil {
		d.Log.Info("uploading the certificates again: the existing Secret does not open with this certificate key", "error", err)
		return "", time.Time{}, nil
	}
	if !maps.EqualFunc(opened, files, bytes.Equal) {
		d.Log.Info("uploading the certificates again: the existing Secret holds other files")
		return "", time.Time{}, nil
	}
	store := tokens.NewStore(cs, d.Log)
	for _, ref := range sec.OwnerReferences {
		t, spec, found, err := store.Owner(ctx, ref)
		switch {
		case errors.Is(err, tokens.ErrNotToken):
			continue
		case err != nil:
			return "", time.Time{}, err
		case !found || spec.Expires.IsZero() || spec.Expires.Sub(d.Now()) < bootstrap.CertsTokenTTL/2:
			continue
		}
		return t.ID, spec.Expires, nil
	}
	d.Log.Info("uploading the certificates again: their owner token is gone or expires soon")
	return "", time.Time{}, nil
}

// newCertsOwner creates the token whose Secret owns kubeadm-certs, and returns that
// Secret (with its UID), the token ID and its expiry.
func newCertsOwner(ctx context.Context, d *Data, cs kubernetes.Interface) (*corev1.Secret, string, time.Time, error) {
	t, err := tokens.Generate()
	if err != nil {
		return nil, "", time.Time{}, err
	}
	spec := bootstrap.CertsTokenSpec(d.Now())
	got, out, err := tokens.NewStore(cs, d.Log).CreateOwner(ctx, t, spec)
	if err != nil {
		return nil, "", time.Time{}, err
	}
	reportOutcome(d, tokenSecretName(t.ID), out)
	return got, t.ID, spec.Expires, nil
}
