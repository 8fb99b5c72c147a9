package phases

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/config"
)

// certsRenewCertsPhase generates one sub-phase per leaf of the certificate table: each
// signs its certificate again for the key it has (certs.Spec.Renew).
//
// Reads Data.Cluster, Data.Node, Data.AdvertiseAddress, Data.CertDir and Data.Now; writes
// the certificates under Data.CertDir; sets Data.Renew.
func certsRenewCertsPhase() Phase {
	p := Phase{Name: "certs", Short: "Renew the certificates of the table, for the keys they have"}
	for _, spec := range certs.Table(config.Default()) {
		if spec.IsCA {
			continue
		}
		p.Phases = append(p.Phases, Phase{
			Name:  spec.Name,
			Short: "Renew the " + spec.Name + " certificate",
			Skip: func(d *Data) (string, bool) {
				if reason, skip := notInTable(spec)(d); skip {
					return reason, true
				}
				return notNamed(spec.Name)(d)
			},
			Run: func(_ context.Context, d *Data) error { return renewCert(d, spec) },
		})
	}
	return p
}

func renewCert(d *Data, spec certs.Spec) error {
	shown := spec.CertPath(d.CertDir)
	r, err := spec.Renew(d.Path(d.CertDir), certParams(d))
	if errors.Is(err, certs.ErrExternalCA) {
		f := RenewedFile{Name: spec.Name, Path: shown}
		if data, rerr := os.ReadFile(d.Path(shown)); rerr == nil {
			if c, perr := certs.ParseCertPEM(data); perr == nil {
				f.NotAfter = c.NotAfter
			}
		}
		renewExternal(d, f, err)
		return nil
	}
	if err != nil {
		return err
	}
	d.Renew.Renewed = append(d.Renew.Renewed, RenewedFile{Name: spec.Name, Path: shown, NotAfter: r.NotAfter})
	d.Out.Say("renewed %s (%s), for the key it had: valid until %s", spec.Name, shown, r.NotAfter.Format(time.RFC3339))
	return nil
}

// renewExternal records f, a certificate (or kubeconfig) whose CA key is not here, for
// the external-ca phase; why says why it was not renewed.
func renewExternal(d *Data, f RenewedFile, why error) {
	d.Renew.External = append(d.Renew.External, f)
	d.Out.Say("not renewed: %v", why)
}
