package certs

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrExternalCA is returned, wrapped, when a CA certificate is present without its key:
// the CA is external and kforge cannot sign with it.
var ErrExternalCA = errors.New("the CA key is not present (external CA mode)")

func certPath(dir, base string) string { return filepath.Join(dir, filepath.FromSlash(base)+".crt") }
func keyPath(dir, base string) string  { return filepath.Join(dir, filepath.FromSlash(base)+".key") }

// ParseCertPEM returns the first certificate of PEM data.
func ParseCertPEM(data []byte) (*x509.Certificate, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM \"CERTIFICATE\" block found")
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing certificate: %w", err)
		}
		return c, nil
	}
}

// ParseKeyPEM returns the first private key of PEM data: PKCS#1 ("RSA PRIVATE KEY"),
// SEC 1 ("EC PRIVATE KEY") or PKCS#8 ("PRIVATE KEY"). Other blocks, such as openssl's
// "EC PARAMETERS", are skipped. Encrypted keys are not supported.
func ParseKeyPEM(data []byte) (crypto.Signer, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM private key block found")
		}
		var (
			k   any
			err error
		)
		switch b.Type {
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("the private key is encrypted; kforge needs it unencrypted")
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", strings.ToLower(b.Type), err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported private key type %T", k)
		}
		return s, nil
	}
}

// CheckPair reports whether key is the private key of cert.
func CheckPair(cert *x509.Certificate, key crypto.Signer) error {
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		return errors.New("the private key does not match the certificate's public key")
	}
	return nil
}

// readCert reads and parses a certificate file.
func readCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading certificate: %w", err)
	}
	c, err := ParseCertPEM(data)
	if err != nil {
		return nil, fmt.Errorf("reading certificate %s: %w", path, err)
	}
	return c, nil
}

// readKey reads and parses a private key file.
func readKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading private key: %w", err)
	}
	k, err := ParseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("reading private key %s: %w", path, err)
	}
	return k, nil
}

// exists reports whether path exists; errors other than "does not exist" are returned.
func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("checking %s: %w", path, err)
}

// LoadCA reads the CA pair <dir>/<baseName>.crt and .key, and checks that the certificate
// is a CA and that the key is its own. A missing certificate gives an error wrapping
// fs.ErrNotExist; a certificate without its key, one wrapping ErrExternalCA.
func LoadCA(dir, baseName string) (*x509.Certificate, crypto.Signer, error) {
	cp, kp := certPath(dir, baseName), keyPath(dir, baseName)
	cert, err := readCert(cp)
	if err != nil {
		return nil, nil, fmt.Errorf("loading CA %s: %w", baseName, err)
	}
	if !cert.IsCA {
		return nil, nil, fmt.Errorf("loading CA %s: %s is not a CA certificate", baseName, cp)
	}
	ok, err := exists(kp)
	if err != nil {
		return nil, nil, fmt.Errorf("loading CA %s: %w", baseName, err)
	}
	if !ok {
		return nil, nil, fmt.Errorf("loading CA %s: %s has no %s: %w", baseName, cp, kp, ErrExternalCA)
	}
	key, err := readKey(kp)
	if err != nil {
		return nil, nil, fmt.Errorf("loading CA %s: %w", baseName, err)
	}
	if err := CheckPair(cert, key); err != nil {
		return nil, nil, fmt.Errorf("loading CA %s: %s and %s: %w", baseName, cp, kp, err)
	}
	return cert, key, nil
}
