package phases

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/config"
)

// certsPhase generates one sub-phase per row of the certificate table, plus "sa".
//
// Reads Data.Cluster, Data.Node, Data.AdvertiseAddress, Data.CertDir and Data.Now; writes
// the certificates and keys under Data.CertDir.
func certsPhase() Phase {
	p := Phase{Name: "certs", Short: "Generate the certificates"}
	// The tree is built from the full table (local etcd); a run with external etcd skips
	// the rows its own table leaves out.
	for _, spec := range certs.Table(config.Default()) {
		p.Phases = append(p.Phases, Phase{
			Name:  spec.Name,
			Short: spec.Desc,
			Skip:  notInTable(spec),
			Run:   func(_ context.Context, d *Data) error { return ensureCert(d, spec) },
		})
	}
	p.Phases = append(p.Phases, Phase{
		Name:  "sa",
		Short: "Generate a private key for signing service account tokens along with its public key",
		Run: func(_ context.Context, d *Data) error {
			out, err := certs.EnsureServiceAccountKeys(d.Path(d.CertDir), d.Cluster.Certificates.KeyAlgorithm)
			if err != nil {
				return err
			}
			d.Out.Say("%s: service account key pair (sa.key, sa.pub)", describeOutcome(out))
			return nil
		},
	})
	return p
}

// notInTable is the skip rule of a sub-phase generated from the full certificate table
// (local etcd) for spec: a run whose own table leaves spec out (external etcd) skips it.
func notInTable(spec certs.Spec) func(d *Data) (string, bool) {
	return func(d *Data) (string, bool) {
		inUse := slices.ContainsFunc(certs.Table(d.Cluster), func(s certs.Spec) bool { return s.Name == spec.Name })
		return "etcd is external", !inUse
	}
}

func ensureCert(d *Data, spec certs.Spec) error {
	out, err := spec.Ensure(d.Path(d.CertDir), certParams(d))
	if err != nil {
		return err
	}
	d.Out.Say("%s: %s certificate and key (%s)", describeOutcome(out), spec.Name,
		filepath.Join(d.CertDir, spec.BaseName+".crt"))
	return nil
}

func certParams(d *Data) certs.Params {
	return certs.Params{Cluster: d.Cluster, NodeName: d.Node.Name, AdvertiseAddress: d.AdvertiseAddress, Now: d.Now, ReissueSANs: d.ReissueSANs}
}

func describeOutcome(o certs.Outcome) string {
	switch o {
	case certs.Created:
		return "generated"
	case certs.Reused:
		return "using existing"
	case certs.External:
		return "using external"
	case certs.Reissued:
		return "signed again for the names the file adds (same key)"
	}
	return o.String()
}

// externalCA reports whether the cluster CA is external: ca.crt present without ca.key.
func externalCA(d *Data) (bool, error) {
	dir := d.Path(d.CertDir)
	if _, err := os.Stat(filepath.Join(dir, "ca.crt")); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("checking for the cluster CA: %w", err)
	}
	_, err := os.Stat(filepath.Join(dir, "ca.key"))
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, fs.ErrNotExist):
		return true, nil
	}
	return false, fmt.Errorf("checking for the cluster CA key: %w", err)
}
