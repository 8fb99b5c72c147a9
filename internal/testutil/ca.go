package testutil

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"
)

// CA is a test CA that signs leaf certificates: a self-signed one (NewCA, ECDSA P-256) or
// a test cluster's own (UseCA).
type CA struct {
	t    testing.TB
	Cert *x509.Certificate
	key  crypto.Signer
	// PEM is the CA certificate, PEM-encoded.
	PEM    []byte
	serial int64
}

// NewCA returns a new CA named cn, valid from an hour ago for validity.
func NewCA(t testing.TB, cn string, validity time.Duration) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{t: t, Cert: cert, key: key, serial: 1, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// UseCA returns a CA that signs with an existing certificate and key, such as those of a
// cluster under test.
func UseCA(t testing.TB, cert *x509.Certificate, key crypto.Signer) *CA {
	return &CA{t: t, Cert: cert, key: key, serial: time.Now().UnixNano(),
		PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})}
}

// Leaf signs a certificate for cn, usable for both server and client authentication, with
// the given IP SANs. It returns the certificate and its key, PEM-encoded.
func (ca *CA) Leaf(cn string, ips ...net.IP) (certPEM, keyPEM []byte) {
	ca.t.Helper()
	return ca.Sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		NotBefore:   time.Now().Add(-time.Hour),
		NotAfter:    ca.Cert.NotAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: ips,
	})
}

// Sign signs tmpl, given the CA's next serial number, for a new key. It returns the
// certificate and its key, PEM-encoded.
func (ca *CA) Sign(tmpl *x509.Certificate) (certPEM, keyPEM []byte) {
	ca.t.Helper()
	key := newKey(ca.t)
	ca.serial++
	tmpl.SerialNumber = big.NewInt(ca.serial)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		ca.t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// CAPEM returns a new self-signed CA certificate, PEM, for tests that need a cluster CA
// (a kubeconfig's certificate-authority-data, a discovery pin).
func CAPEM(t testing.TB) []byte {
	t.Helper()
	return NewCA(t, "kubernetes", time.Hour).PEM
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}
