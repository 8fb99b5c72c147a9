package certs

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"strings"
	"time"

	cfconfig "github.com/cloudflare/cfssl/config"
	"github.com/cloudflare/cfssl/csr"
	"github.com/cloudflare/cfssl/initca"
	cflog "github.com/cloudflare/cfssl/log"
	"github.com/cloudflare/cfssl/signer"
	"github.com/cloudflare/cfssl/signer/local"

	"github.com/kforge/kforge/config"
)

// Backdate is how far before the minting time a new certificate's NotBefore is set, so
// that hosts whose clocks lag a little accept it.
const Backdate = 5 * time.Minute

func init() {
	// cfssl logs every key it generates at info level to the standard logger. Its messages
	// are diagnostics at best (the errors it returns carry the same), so send them to slog
	// at debug level, and only from warnings up.
	cflog.Level = cflog.LevelWarning
	cflog.SetLogger(slogWriter{})
}

// slogWriter adapts cfssl's logger interface to slog's default logger.
type slogWriter struct{}

func (slogWriter) log(level, msg string) {
	slog.Default().Log(context.Background(), slog.LevelDebug, msg, "component", "cfssl", "cfssl_level", level)
}
func (w slogWriter) Debug(m string)   { w.log("debug", m) }
func (w slogWriter) Info(m string)    { w.log("info", m) }
func (w slogWriter) Warning(m string) { w.log("warning", m) }
func (w slogWriter) Err(m string)     { w.log("error", m) }
func (w slogWriter) Crit(m string)    { w.log("critical", m) }
func (w slogWriter) Emerg(m string)   { w.log("emergency", m) }

// keyRequest maps a config key algorithm to cfssl's key request.
func keyRequest(alg string) (*csr.KeyRequest, error) {
	switch alg {
	case config.KeyECDSAP256:
		return &csr.KeyRequest{A: "ecdsa", S: 256}, nil
	case config.KeyRSA2048:
		return &csr.KeyRequest{A: "rsa", S: 2048}, nil
	case config.KeyRSA3072:
		return &csr.KeyRequest{A: "rsa", S: 3072}, nil
	case config.KeyRSA4096:
		return &csr.KeyRequest{A: "rsa", S: 4096}, nil
	}
	return nil, fmt.Errorf("unsupported key algorithm %q: want one of %s", alg, strings.Join(config.KeyAlgorithms, ", "))
}

// newKey generates a private key with cfssl and returns it with its PEM encoding: PKCS#1
// "RSA PRIVATE KEY" or SEC 1 "EC PRIVATE KEY", as cfssl writes them.
func newKey(alg string) (crypto.Signer, []byte, error) {
	kr, err := keyRequest(alg)
	if err != nil {
		return nil, nil, err
	}
	k, err := kr.Generate()
	if err != nil {
		return nil, nil, fmt.Errorf("generating %s key: %w", alg, err)
	}
	var block *pem.Block
	switch k := k.(type) {
	case *rsa.PrivateKey:
		block = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, nil, fmt.Errorf("encoding %s key: %w", alg, err)
		}
		block = &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
	default:
		return nil, nil, fmt.Errorf("generating %s key: unexpected key type %T", alg, k)
	}
	return k.(crypto.Signer), pem.EncodeToMemory(block), nil
}

// request is what a new certificate is minted from.
type request struct {
	cn             string
	org            []string
	sans           AltNames
	server, client bool
	isCA           bool
	validity       time.Duration
	keyAlg         string
	now            time.Time
	// key and keyPEM, when set, are an existing key the certificate is for (a leaf signed
	// again with new names); otherwise a new key of keyAlg is made.
	key    crypto.Signer
	keyPEM []byte
}

func (r request) csr() *csr.CertificateRequest {
	cr := &csr.CertificateRequest{CN: r.cn, Hosts: r.sans.hosts()}
	for _, o := range r.org {
		cr.Names = append(cr.Names, csr.Name{O: o})
	}
	if r.isCA {
		cr.CA = &csr.CAConfig{}
	}
	return cr
}

// window is the validity of a new certificate: backdated by Backdate, and never past the
// signer's own NotAfter (a zero caNotAfter means self-signed).
func (r request) window(caNotAfter time.Time) (notBefore, notAfter time.Time, err error) {
	if r.validity <= 0 {
		return time.Time{}, time.Time{}, fmt.Errorf("validity %s is not positive", r.validity)
	}
	notBefore = r.now.Add(-Backdate).UTC()
	notAfter = r.now.Add(r.validity).UTC()
	if !caNotAfter.IsZero() && notAfter.After(caNotAfter) {
		notAfter = caNotAfter.UTC()
	}
	if !notAfter.After(r.now) {
		return time.Time{}, time.Time{}, fmt.Errorf("the signing CA expired on %s", caNotAfter.Format(time.RFC3339))
	}
	return notBefore, notAfter, nil
}

// mintCA creates a self-signed CA with cfssl: key and CSR from its csr package, signed
// under initca's CA policy by a local signer, with the validity window set explicitly so
// that the clock is injectable and NotBefore is backdated exactly.
func mintCA(r request) (certPEM, keyPEM []byte, err error) {
	key, keyPEM, err := newKey(r.keyAlg)
	if err != nil {
		return nil, nil, err
	}
	csrPEM, err := csr.Generate(key, r.csr())
	if err != nil {
		return nil, nil, fmt.Errorf("creating certificate request: %w", err)
	}
	policy := initca.CAPolicy()
	policy.Default.Expiry = r.validity
	policy.Default.ExpiryString = r.validity.String()
	s, err := local.NewSigner(key, nil, signer.DefaultSigAlgo(key), policy)
	if err != nil {
		return nil, nil, fmt.Errorf("creating CA signer: %w", err)
	}
	nb, na, err := r.window(time.Time{})
	if err != nil {
		return nil, nil, err
	}
	certPEM, err = s.Sign(signer.SignRequest{Request: string(csrPEM), NotBefore: nb, NotAfter: na})
	if err != nil {
		return nil, nil, fmt.Errorf("self-signing CA certificate: %w", err)
	}
	return certPEM, keyPEM, nil
}

// mintLeaf creates a key and a certificate signed by the CA with cfssl's local signer and
// a signing profile holding the usages and expiry.
func mintLeaf(caCert *x509.Certificate, caKey crypto.Signer, r request) (certPEM, keyPEM []byte, err error) {
	key, keyPEM := r.key, r.keyPEM
	if key == nil {
		if key, keyPEM, err = newKey(r.keyAlg); err != nil {
			return nil, nil, err
		}
	}
	csrPEM, err := csr.Generate(key, r.csr())
	if err != nil {
		return nil, nil, fmt.Errorf("creating certificate request: %w", err)
	}
	usage := []string{"digital signature"}
	if _, ok := key.(*rsa.PrivateKey); ok {
		usage = append(usage, "key encipherment")
	}
	if r.server {
		usage = append(usage, "server auth")
	}
	if r.client {
		usage = append(usage, "client auth")
	}
	policy := &cfconfig.Signing{Default: &cfconfig.SigningProfile{
		Usage:        usage,
		Expiry:       r.validity,
		ExpiryString: r.validity.String(),
	}}
	s, err := local.NewSigner(caKey, caCert, signer.DefaultSigAlgo(caKey), policy)
	if err != nil {
		return nil, nil, fmt.Errorf("creating signer for CA %q: %w", caCert.Subject.CommonName, err)
	}
	nb, na, err := r.window(caCert.NotAfter)
	if err != nil {
		return nil, nil, err
	}
	// A non-nil Hosts makes the certificate carry exactly these names.
	hosts := append([]string{}, r.sans.hosts()...)
	certPEM, err = s.Sign(signer.SignRequest{Request: string(csrPEM), Hosts: hosts, NotBefore: nb, NotAfter: na})
	if err != nil {
		return nil, nil, fmt.Errorf("signing certificate with CA %q: %w", caCert.Subject.CommonName, err)
	}
	return certPEM, keyPEM, nil
}

// ClientRequest describes a client certificate for NewClientCert.
type ClientRequest struct {
	CommonName   string
	Organization []string
	// Validity is the lifetime; it is cut short at the CA's own expiry.
	Validity time.Duration
	// KeyAlgorithm is one of config.KeyAlgorithms.
	KeyAlgorithm string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Key and KeyPEM, when set, are the existing key the certificate is for (a kubeconfig's
	// client certificate renewed); KeyAlgorithm is then unused and keyPEM is KeyPEM.
	Key    crypto.Signer
	KeyPEM []byte
}

// NewClientCert mints a client-auth certificate signed by the CA, and a new key unless req
// brings one, for kubeconfig files. It returns both PEM-encoded.
func NewClientCert(caCert *x509.Certificate, caKey crypto.Signer, req ClientRequest) (certPEM, keyPEM []byte, err error) {
	if req.CommonName == "" {
		return nil, nil, fmt.Errorf("creating client certificate: the common name is empty")
	}
	now := time.Now
	if req.Now != nil {
		now = req.Now
	}
	certPEM, keyPEM, err = mintLeaf(caCert, caKey, request{
		cn:       req.CommonName,
		org:      req.Organization,
		client:   true,
		validity: req.Validity,
		keyAlg:   req.KeyAlgorithm,
		now:      now(),
		key:      req.Key,
		keyPEM:   req.KeyPEM,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("creating client certificate for %q: %w", req.CommonName, err)
	}
	return certPEM, keyPEM, nil
}
