package phases

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/internal/fileutil"
)

// downloadCertsPhase writes the shared control-plane certificates PrepareJoin opened.
//
// Reads Data.Join.SharedCerts (set by PrepareJoin) and Data.CertDir.
func downloadCertsPhase() Phase {
	return Phase{
		Name:  "download-certs",
		Short: "Write the shared certificates (CAs, service-account keys) from Secret kube-system/kubeadm-certs",
		Run: func(_ context.Context, d *Data) error {
			if d.Join.SharedCerts == nil {
				d.Out.Say("using the shared certificates already on this host")
				return nil
			}
			for _, f := range bootstrap.SharedCertFiles(d.Cluster, d.CertDir) {
				data, ok := d.Join.SharedCerts[f.Key]
				if !ok {
					continue // optional: an external CA's key
				}
				have, err := readFileIfExists(d.Path(f.Path))
				if err != nil {
					return err
				}
				if have != nil {
					if !bytes.Equal(have, data) {
						return fmt.Errorf("%s differs from the cluster's copy in %s/%s: this host holds other certificates; run 'kforge reset' first",
							f.Path, bootstrap.NamespaceSystem, bootstrap.CertsSecretName)
					}
					d.Out.Say("using existing %s", f.Path)
					continue
				}
				mode := fs.FileMode(0o644)
				if f.Secret || filepath.Ext(f.Path) == ".key" {
					mode = 0o600
				}
				if _, err := fileutil.WriteAtomic(d.Path(f.Path), data, mode, 0o700); err != nil {
					return err
				}
				d.Out.Say("wrote %s", f.Path)
			}
			return nil
		},
	}
}
