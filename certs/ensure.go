package certs

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kforge/kforge/internal/fileutil"
)

// File and directory modes of the PKI.
const (
	KeyMode  = 0o600
	CertMode = 0o644
	DirMode  = 0o700 // directories that hold keys: pki/ and pki/etcd/
)

// Outcome says what Ensure found or did.
type Outcome int

// Ensure outcomes.
const (
	// Created: there was no pair, so a new one was minted and written.
	Created Outcome = iota + 1
	// Reused: a valid pair was already there and was left untouched.
	Reused
	// External: a CA certificate is present without its key (external CA mode). Only CAs
	// have this outcome; a leaf signed by an external CA that checks out is Reused.
	External
	// Reissued: a leaf lacked subject alternative names (Params.ReissueSANs), and was
	// signed again with them, for the key it had.
	Reissued
)

func (o Outcome) String() string {
	switch o {
	case Created:
		return "created"
	case Reused:
		return "reused"
	case External:
		return "external"
	case Reissued:
		return "reissued"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// MismatchError says that an existing certificate (or key pair) does not match what kforge
// would create. kforge never replaces it on its own: the operator decides.
type MismatchError struct {
	// Path is the certificate (or public key) file.
	Path string
	// Problems lists each thing that is wrong, for humans.
	Problems []string

	fix string // what to do about it; a default is used when empty
}

func (e *MismatchError) Error() string {
	fix := e.fix
	if fix == "" {
		fix = "remove the file to regenerate it"
	}
	return fmt.Sprintf("existing %s does not match the configuration: %s; %s",
		e.Path, strings.Join(e.Problems, "; "), fix)
}

// Ensure makes sure the pair of s exists under dir and matches p, minting it if it is
// missing. The spec's CA must have been ensured first.
//
// An existing valid pair is reused and never rewritten. An existing pair that does not
// match (wrong names, usages or signer, a key that is not the certificate's, expired) is
// left alone and reported as a *MismatchError. Half a pair (a key without its certificate,
// a certificate without its key, or a key that is not the certificate's), which a killed
// run leaves, is minted again where that is safe: a leaf whose CA key kforge holds, and a
// CA key without its certificate when no certificate it signed exists. Otherwise it is an
// error that says which file to restore or remove. A CA certificate without its key is an
// external CA: the CA returns External, and its leaves must already exist and check out.
func (s Spec) Ensure(dir string, p Params) (Outcome, error) {
	if p.Cluster == nil {
		return 0, fmt.Errorf("ensuring %s certificate: no cluster configuration", s.Name)
	}
	var (
		o   Outcome
		err error
	)
	if s.IsCA {
		o, err = s.ensureCA(dir, p)
	} else {
		o, err = s.ensureLeaf(dir, p)
	}
	if err != nil {
		var me *MismatchError
		if errors.As(err, &me) {
			return 0, err // already says which file and what to do
		}
		return 0, fmt.Errorf("ensuring %s certificate: %w", s.Name, err)
	}
	return o, nil
}

// pairState reads which halves of a pair exist.
func pairState(cp, kp string) (haveCert, haveKey bool, err error) {
	if haveCert, err = exists(cp); err != nil {
		return false, false, err
	}
	if haveKey, err = exists(kp); err != nil {
		return false, false, err
	}
	return haveCert, haveKey, nil
}

// readPair reads and parses an existing certificate and its key.
func readPair(certPath, keyPath string) (*x509.Certificate, crypto.Signer, error) {
	cert, err := readCert(certPath)
	if err != nil {
		return nil, nil, err
	}
	key, err := readKey(keyPath)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func (s Spec) ensureCA(dir string, p Params) (Outcome, error) {
	cp, kp := s.CertPath(dir), s.KeyPath(dir)
	haveCert, haveKey, err := pairState(cp, kp)
	if err != nil {
		return 0, err
	}
	now := p.now()
	switch {
	case haveCert && haveKey:
		cert, key, err := readPair(cp, kp)
		if err != nil {
			return 0, err
		}
		problems := checkCA(cert, now)
		if err := CheckPair(cert, key); err != nil {
			problems = append(problems, fmt.Sprintf("%s is not the key of this certificate", kp))
		}
		if len(problems) > 0 {
			return 0, &MismatchError{Path: cp, Problems: problems, fix: fmt.Sprintf(
				"a CA is never replaced automatically: to start over, remove %s and %s and every certificate it signed, then run again", cp, kp)}
		}
		return Reused, nil
	case haveCert:
		cert, err := readCert(cp)
		if err != nil {
			return 0, err
		}
		if problems := checkCA(cert, now); len(problems) > 0 {
			return 0, &MismatchError{Path: cp, Problems: problems, fix: fmt.Sprintf(
				"%s is an external CA (there is no %s): replace it with a valid CA certificate", cp, kp)}
		}
		return External, nil
	case haveKey:
		// A key alone is what a run killed while minting the CA leaves. Nothing can trust
		// a CA without its certificate, so a new CA is safe as long as nothing it signed
		// exists: what holds such a certificate would not trust the new CA.
		signed, err := s.signedFiles(dir, p)
		if err != nil {
			return 0, err
		}
		if len(signed) > 0 {
			return 0, fmt.Errorf("found %s but not %s, and %s was signed by it: restore %s (from another control-plane host or a backup); "+
				"a new CA would not be trusted by what holds the old one. To start over instead, remove %s and %s",
				kp, cp, strings.Join(signed, ", "), cp, kp, strings.Join(signed, ", "))
		}
	}
	certPEM, keyPEM, err := mintCA(request{
		cn:       s.CommonName,
		org:      s.Organization,
		isCA:     true,
		validity: s.Validity(p.Cluster),
		keyAlg:   p.Cluster.Certificates.KeyAlgorithm,
		now:      now,
	})
	if err != nil {
		return 0, err
	}
	if err := writePair(dir, cp, kp, certPEM, keyPEM); err != nil {
		return 0, err
	}
	return Created, nil
}

func (s Spec) ensureLeaf(dir string, p Params) (Outcome, error) {
	ca, ok := Lookup(p.Cluster, s.CA)
	if !ok || !ca.IsCA {
		return 0, fmt.Errorf("spec %s names CA %q, which is not a CA of the table", s.Name, s.CA)
	}
	caCertPath, caKeyPath := ca.CertPath(dir), ca.KeyPath(dir)
	caCert, err := readCert(caCertPath)
	if err != nil {
		return 0, fmt.Errorf("loading CA %s (ensure it first): %w", ca.Name, err)
	}
	external, err := exists(caKeyPath)
	if err != nil {
		return 0, err
	}
	external = !external

	var sans AltNames
	if s.SANs != nil {
		if sans, err = s.SANs(p); err != nil {
			return 0, fmt.Errorf("computing subject alternative names: %w", err)
		}
	}
	cn, org := s.Subject(p)
	if cn == "" {
		return 0, fmt.Errorf("the common name is empty: %w", errNoNodeName)
	}

	cp, kp := s.CertPath(dir), s.KeyPath(dir)
	haveCert, haveKey, err := pairState(cp, kp)
	if err != nil {
		return 0, err
	}
	now := p.now()
	// Half a pair (one file, or a key that is not the certificate's) is what a run killed
	// between writing the key and the certificate leaves: kforge signs a new pair if it
	// holds the CA's key, which is all a leaf needs.
	half := ""
	switch {
	case haveCert && haveKey:
		cert, key, err := readPair(cp, kp)
		if err != nil {
			return 0, err
		}
		if CheckPair(cert, key) != nil {
			half = fmt.Sprintf("%s is not the key of %s", kp, cp)
			break
		}
		problems := s.checkLeaf(cert, key, kp, cn, org, sans, caCert, caCertPath, now)
		if len(problems) == 0 {
			return Reused, nil
		}
		if p.ReissueSANs && !external && len(problems) == 1 && len(missingSANs(cert, sans)) > 0 {
			keyPEM, err := os.ReadFile(kp)
			if err != nil {
				return 0, err
			}
			certPEM, err := s.sign(dir, p, ca, caCert, request{cn: cn, org: org, sans: sans, key: key, keyPEM: keyPEM}, now)
			if err != nil {
				return 0, err
			}
			if _, err := fileutil.WriteAtomic(cp, certPEM, CertMode, DirMode); err != nil {
				return 0, err
			}
			return Reissued, nil
		}
		fix := fmt.Sprintf("remove the file and %s to regenerate them", kp)
		if external {
			fix = fmt.Sprintf("the CA %s is external (no %s): replace the pair with one signed by it", caCertPath, caKeyPath)
		}
		return 0, &MismatchError{Path: cp, Problems: problems, fix: fix}
	case haveCert:
		half = fmt.Sprintf("found %s but not its key %s", cp, kp)
	case haveKey:
		half = fmt.Sprintf("found %s but not its certificate %s", kp, cp)
	}
	if half != "" && external {
		missing := kp
		if !haveCert {
			missing = cp
		}
		return 0, fmt.Errorf("%s, and kforge cannot sign a new pair: the CA %s is external (there is no %s): restore %s, or provide both files: %w",
			half, caCertPath, caKeyPath, missing, ErrExternalCA)
	}
	if external {
		return 0, fmt.Errorf("%s and %s must be provided: CA %s is external (%s has no %s), so kforge cannot sign them: %w",
			cp, kp, ca.Name, caCertPath, caKeyPath, ErrExternalCA)
	}
	r := request{cn: cn, org: org, sans: sans}
	caKey, err := s.loadCAKey(dir, ca, caCert, now)
	if err != nil {
		return 0, err
	}
	r = s.leafRequest(p, r, now)
	certPEM, keyPEM, err := mintLeaf(caCert, caKey, r)
	if err != nil {
		return 0, err
	}
	if err := writePair(dir, cp, kp, certPEM, keyPEM); err != nil {
		return 0, err
	}
	return Created, nil
}

// leafRequest completes r (subject, names and, for a reissue, the key) with s's usages,
// validity and key algorithm.
func (s Spec) leafRequest(p Params, r request, now time.Time) request {
	r.server, r.client = s.Server, s.Client
	r.validity = s.Validity(p.Cluster)
	r.keyAlg = p.Cluster.Certificates.KeyAlgorithm
	r.now = now
	return r
}

// loadCAKey reads the key of ca, which signs s, and checks that it can sign now.
func (s Spec) loadCAKey(dir string, ca Spec, caCert *x509.Certificate, now time.Time) (crypto.Signer, error) {
	caCertPath, caKeyPath := ca.CertPath(dir), ca.KeyPath(dir)
	caKey, err := readKey(caKeyPath)
	if err != nil {
		return nil, fmt.Errorf("loading CA %s: %w", ca.Name, err)
	}
	if err := CheckPair(caCert, caKey); err != nil {
		return nil, fmt.Errorf("loading CA %s: %s and %s: %w", ca.Name, caCertPath, caKeyPath, err)
	}
	if now.After(caCert.NotAfter) {
		return nil, fmt.Errorf("CA %s (%s) expired on %s: it cannot sign new certificates",
			ca.Name, caCertPath, caCert.NotAfter.Format(time.RFC3339))
	}
	return caKey, nil
}

// sign signs a certificate for r with ca's key: a reissue for r's existing key.
func (s Spec) sign(dir string, p Params, ca Spec, caCert *x509.Certificate, r request, now time.Time) ([]byte, error) {
	caKey, err := s.loadCAKey(dir, ca, caCert, now)
	if err != nil {
		return nil, err
	}
	certPEM, _, err := mintLeaf(caCert, caKey, s.leafRequest(p, r, now))
	return certPEM, err
}

// signedFiles lists the certificates of the table under dir that s, a CA, signs.
func (s Spec) signedFiles(dir string, p Params) ([]string, error) {
	var signed []string
	for _, leaf := range Table(p.Cluster) {
		if leaf.IsCA || leaf.CA != s.Name {
			continue
		}
		ok, err := exists(leaf.CertPath(dir))
		if err != nil {
			return nil, err
		}
		if ok {
			signed = append(signed, leaf.CertPath(dir))
		}
	}
	return signed, nil
}

// writePair writes the key, then the certificate, creating their directories 0700. The key
// goes first: a crash in between leaves a key without a certificate, which is reported,
// rather than a certificate without a key, which would look like an external CA.
func writePair(root, cp, kp string, certPEM, keyPEM []byte) error {
	for _, d := range []string{root, filepath.Dir(kp)} {
		if err := fileutil.EnsureDir(d, DirMode); err != nil {
			return err
		}
	}
	if _, err := fileutil.WriteAtomic(kp, keyPEM, KeyMode, DirMode); err != nil {
		return err
	}
	if _, err := fileutil.WriteAtomic(cp, certPEM, CertMode, DirMode); err != nil {
		return err
	}
	return nil
}

// checkValidity reports a certificate that is expired or not valid yet at now.
func checkValidity(cert *x509.Certificate, now time.Time) []string {
	switch {
	case now.After(cert.NotAfter):
		return []string{fmt.Sprintf("it expired on %s", cert.NotAfter.Format(time.RFC3339))}
	case now.Before(cert.NotBefore):
		return []string{fmt.Sprintf("it is not valid before %s (check the clock)", cert.NotBefore.Format(time.RFC3339))}
	}
	return nil
}

// checkCA lists what makes cert unfit as a CA. The subject is not checked: an operator may
// bring a CA with any name.
func checkCA(cert *x509.Certificate, now time.Time) []string {
	var problems []string
	if !cert.BasicConstraintsValid || !cert.IsCA {
		problems = append(problems, "it is not a CA certificate (basic constraints CA:TRUE missing)")
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		problems = append(problems, "its key usage does not include certificate signing")
	}
	return append(problems, checkValidity(cert, now)...)
}

// checkLeaf lists every way the existing pair differs from what s would mint.
func (s Spec) checkLeaf(cert *x509.Certificate, key crypto.Signer, kp, cn string, org []string, sans AltNames,
	caCert *x509.Certificate, caPath string, now time.Time) []string {
	var problems []string
	if cert.Subject.CommonName != cn {
		problems = append(problems, fmt.Sprintf("its common name is %q, want %q", cert.Subject.CommonName, cn))
	}
	if !sameSet(cert.Subject.Organization, org) {
		problems = append(problems, fmt.Sprintf("its organization is %q, want %q", cert.Subject.Organization, org))
	}
	if missing := missingSANs(cert, sans); len(missing) > 0 {
		problems = append(problems, "it lacks the subject alternative names "+strings.Join(missing, ", "))
	}
	if s.Server && !hasEKU(cert, x509.ExtKeyUsageServerAuth) {
		problems = append(problems, "its extended key usage lacks server auth")
	}
	if s.Client && !hasEKU(cert, x509.ExtKeyUsageClientAuth) {
		problems = append(problems, "its extended key usage lacks client auth")
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		problems = append(problems, "its key usage lacks digital signature")
	}
	if cert.IsCA {
		problems = append(problems, "it is a CA certificate, want a leaf")
	}
	if !bytes.Equal(cert.RawIssuer, caCert.RawSubject) || cert.CheckSignatureFrom(caCert) != nil {
		problems = append(problems, fmt.Sprintf("it is not signed by the CA %s", caPath))
	}
	problems = append(problems, checkValidity(cert, now)...)
	if err := CheckPair(cert, key); err != nil {
		problems = append(problems, fmt.Sprintf("%s is not the key of this certificate", kp))
	}
	return problems
}

func hasEKU(cert *x509.Certificate, want x509.ExtKeyUsage) bool {
	return slices.Contains(cert.ExtKeyUsage, want) || slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageAny)
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// missingSANs lists the wanted names the certificate does not carry. Extra names are fine:
// an operator-provided certificate may well have more.
func missingSANs(cert *x509.Certificate, want AltNames) []string {
	var missing []string
	for _, d := range want.DNSNames {
		if !slices.ContainsFunc(cert.DNSNames, func(s string) bool { return strings.EqualFold(s, d) }) {
			missing = append(missing, "DNS:"+d)
		}
	}
	for _, ip := range want.IPs {
		if !slices.ContainsFunc(cert.IPAddresses, func(x net.IP) bool { return x.Equal(ip) }) {
			missing = append(missing, "IP:"+ip.String())
		}
	}
	return missing
}
