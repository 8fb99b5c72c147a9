package kubeconfig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/kforge/kforge/internal/testutil"
)

// testNow is the clock every test certificate is valid around.
var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

type testCA struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
}

func newTestCA(t *testing.T, cn string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             testNow.Add(-time.Hour),
		NotAfter:              testNow.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// leafOpts shapes a client certificate; the zero value is a valid client certificate.
type leafOpts struct {
	cn        string
	orgs      []string
	notBefore time.Time
	notAfter  time.Time
	usages    []x509.ExtKeyUsage
	rsaKey    bool   // RSA key written as PKCS#1 instead of ECDSA
	keyType   string // PEM type override: "PRIVATE KEY" writes PKCS#8
}

// issue returns PEM certificate and key signed by ca.
func (ca *testCA) issue(t *testing.T, o leafOpts) (certPEM, keyPEM []byte) {
	t.Helper()
	if o.notBefore.IsZero() {
		o.notBefore = testNow.Add(-time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = testNow.Add(365 * 24 * time.Hour)
	}
	if o.usages == nil {
		o.usages = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	var (
		key    crypto.Signer
		keyDER []byte
		err    error
	)
	keyType := o.keyType
	if o.rsaKey {
		rk, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		key, keyDER = rk, x509.MarshalPKCS1PrivateKey(rk)
		if keyType == "" {
			keyType = "RSA PRIVATE KEY"
		}
	} else {
		ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key = ek
		if keyDER, err = x509.MarshalECPrivateKey(ek); err != nil {
			t.Fatal(err)
		}
		if keyType == "" {
			keyType = "EC PRIVATE KEY"
		}
	}
	if keyType == "PRIVATE KEY" {
		if keyDER, err = x509.MarshalPKCS8PrivateKey(key); err != nil {
			t.Fatal(err)
		}
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: o.cn, Organization: o.orgs},
		NotBefore:    o.notBefore,
		NotAfter:     o.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  o.usages,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: keyType, Bytes: keyDER})
}

// checkGolden compares got with testdata/name (UPDATE_GOLDEN=1 rewrites it).
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	testutil.Golden(t, name, got)
}
