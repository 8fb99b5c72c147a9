package certs

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/kforge/kforge/internal/fileutil"
)

// ErrCANotRenewed is returned, wrapped, when a CA is asked to be renewed.
var ErrCANotRenewed = errors.New("a CA is never renewed")

// Renewed is what Renew wrote.
type Renewed struct {
	// Path is the certificate file.
	Path string
	// NotAfter is when the new certificate expires.
	NotAfter time.Time
}

// Renew signs the leaf s again with its CA, for the key it already has: the key file is
// left as it is and only the certificate file is written (atomically), so a run killed at
// any point leaves a consistent pair, and a re-run renews again. The new certificate has
// the subject and names the configuration in p gives now (a name added to
// apiserver.cert_sans is picked up) and a validity of certificates.cert_validity.
//
// A CA is never renewed (ErrCANotRenewed): everything that trusts it would have to be
// given the new one. A leaf whose CA key is absent (external CA mode) is an error wrapping
// ErrExternalCA: the operator renews it. A CA that has expired, or expires before the new
// certificate would, is an error saying how long it has left (CheckCAOutlives).
func (s Spec) Renew(dir string, p Params) (Renewed, error) {
	if s.IsCA {
		return Renewed{}, fmt.Errorf("renewing %s: %s is a CA, and %w: every certificate it signed and everything that trusts it "+
			"(kubeconfigs, joined nodes, cluster-info) would have to change with it; renew the certificates it signs instead", s.Name, s.Name, ErrCANotRenewed)
	}
	if p.Cluster == nil {
		return Renewed{}, fmt.Errorf("renewing %s certificate: no cluster configuration", s.Name)
	}
	r, err := s.renew(dir, p)
	if err != nil {
		return Renewed{}, fmt.Errorf("renewing %s certificate: %w", s.Name, err)
	}
	return r, nil
}

func (s Spec) renew(dir string, p Params) (Renewed, error) {
	ca, ok := Lookup(p.Cluster, s.CA)
	if !ok || !ca.IsCA {
		return Renewed{}, fmt.Errorf("spec %s names CA %q, which is not a CA of the table", s.Name, s.CA)
	}
	cp, kp := s.CertPath(dir), s.KeyPath(dir)
	keyPEM, err := os.ReadFile(kp)
	if err != nil {
		return Renewed{}, fmt.Errorf("reading the key to renew for (create the pair with 'kforge init phase certs/%s'): %w", s.Name, err)
	}
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		return Renewed{}, fmt.Errorf("reading private key %s: %w", kp, err)
	}
	caCert, err := readCert(ca.CertPath(dir))
	if err != nil {
		return Renewed{}, fmt.Errorf("loading CA %s: %w", ca.Name, err)
	}
	if haveKey, err := exists(ca.KeyPath(dir)); err != nil {
		return Renewed{}, err
	} else if !haveKey {
		return Renewed{}, fmt.Errorf("CA %s is external (%s has no %s): renew %s with it yourself: %w",
			ca.Name, ca.CertPath(dir), ca.KeyPath(dir), cp, ErrExternalCA)
	}
	now := p.now()
	if err := CheckCAOutlives(ca.Name, ca.CertPath(dir), caCert, now, s.Validity(p.Cluster)); err != nil {
		return Renewed{}, err
	}
	var sans AltNames
	if s.SANs != nil {
		if sans, err = s.SANs(p); err != nil {
			return Renewed{}, fmt.Errorf("computing subject alternative names: %w", err)
		}
	}
	cn, org := s.Subject(p)
	if cn == "" {
		return Renewed{}, fmt.Errorf("the common name is empty: %w", errNoNodeName)
	}
	certPEM, err := s.sign(dir, p, ca, caCert, request{cn: cn, org: org, sans: sans, key: key, keyPEM: keyPEM}, now)
	if err != nil {
		return Renewed{}, err
	}
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return Renewed{}, err
	}
	if _, err := fileutil.WriteAtomic(cp, certPEM, CertMode, DirMode); err != nil {
		return Renewed{}, err
	}
	return Renewed{Path: cp, NotAfter: cert.NotAfter}, nil
}

// CheckCAOutlives reports a CA (named name, its certificate at path) that cannot sign a
// certificate of the given validity at now: one that has expired, or that expires before
// such a certificate would. The error says how long the CA has left and what to do; kforge
// never makes a new CA on its own.
func CheckCAOutlives(name, path string, caCert *x509.Certificate, now time.Time, validity time.Duration) error {
	left := caCert.NotAfter.Sub(now)
	want := now.Add(validity)
	switch {
	case left <= 0:
		return fmt.Errorf("CA %s (%s) expired on %s, %s ago: it cannot sign certificates any more; kforge never replaces a CA on its own: "+
			"rotate the CA by hand (a new CA, every certificate and kubeconfig signed again, every node given the new CA)",
			name, path, caCert.NotAfter.UTC().Format(time.RFC3339), RoundDuration(-left))
	case caCert.NotAfter.Before(want):
		return fmt.Errorf("CA %s (%s) expires on %s, in %s, before a certificate signed now would (%s, after certificates.cert_validity %s): "+
			"kforge never replaces a CA on its own: lower certificates.cert_validity below %s to renew until then, and rotate the CA by hand before it expires",
			name, path, caCert.NotAfter.UTC().Format(time.RFC3339), RoundDuration(left), want.UTC().Format(time.RFC3339), validity, RoundDuration(left))
	}
	return nil
}

// RoundDuration renders d in days and hours ("364d 23h"), or in minutes below an hour:
// the residual time of a certificate, for humans.
func RoundDuration(d time.Duration) string {
	switch {
	case d >= 24*time.Hour:
		days := d / (24 * time.Hour)
		return fmt.Sprintf("%dd %dh", days, (d-days*24*time.Hour)/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh %dm", d/time.Hour, (d%time.Hour)/time.Minute)
	}
	return fmt.Sprintf("%dm", d/time.Minute)
}
