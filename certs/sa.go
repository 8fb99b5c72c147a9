package certs

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kforge/kforge/internal/fileutil"
)

// ServiceAccountKeyPaths returns the paths of sa.key and sa.pub under dir.
func ServiceAccountKeyPaths(dir string) (keyFile, pubFile string) {
	return filepath.Join(dir, ServiceAccountBaseName+".key"), filepath.Join(dir, ServiceAccountBaseName+".pub")
}

// EnsureServiceAccountKeys makes sure dir holds the service-account signing key sa.key
// (0600) and its public key sa.pub (0644, PEM "PUBLIC KEY"). alg is one of
// config.KeyAlgorithms. An existing matching pair is Reused untouched. A missing sa.pub is
// derived from sa.key (nothing is lost); a missing sa.key beside sa.pub is an error, and a
// sa.pub that is not sa.key's public key is a *MismatchError.
func EnsureServiceAccountKeys(dir string, alg string) (Outcome, error) {
	kp, pp := ServiceAccountKeyPaths(dir)
	havePub, haveKey, err := pairState(pp, kp)
	if err != nil {
		return 0, fmt.Errorf("ensuring service account keys: %w", err)
	}
	switch {
	case haveKey:
		key, err := readKey(kp)
		if err != nil {
			return 0, fmt.Errorf("ensuring service account keys: %w", err)
		}
		if havePub {
			pub, err := readPublicKey(pp)
			if err != nil {
				return 0, fmt.Errorf("ensuring service account keys: %w", err)
			}
			if !publicKeysEqual(key.Public(), pub) {
				return 0, &MismatchError{Path: pp, Problems: []string{fmt.Sprintf("it is not the public key of %s", kp)},
					fix: fmt.Sprintf("remove the file to derive it again from %s", kp)}
			}
			return Reused, nil
		}
		pubPEM, err := encodePublicKey(key.Public())
		if err != nil {
			return 0, fmt.Errorf("ensuring service account keys: %w", err)
		}
		if _, err := fileutil.WriteAtomic(pp, pubPEM, CertMode, DirMode); err != nil {
			return 0, fmt.Errorf("ensuring service account keys: %w", err)
		}
		return Created, nil
	case havePub:
		return 0, fmt.Errorf("ensuring service account keys: found %s but not %s: restore the key, or remove %s to "+
			"generate a new pair (tokens signed by the old key then stop being valid)", pp, kp, pp)
	}
	key, keyPEM, err := newKey(alg)
	if err != nil {
		return 0, fmt.Errorf("ensuring service account keys: %w", err)
	}
	pubPEM, err := encodePublicKey(key.Public())
	if err != nil {
		return 0, fmt.Errorf("ensuring service account keys: %w", err)
	}
	if err := fileutil.EnsureDir(dir, DirMode); err != nil {
		return 0, fmt.Errorf("ensuring service account keys: %w", err)
	}
	if _, err := fileutil.WriteAtomic(kp, keyPEM, KeyMode, DirMode); err != nil {
		return 0, fmt.Errorf("ensuring service account keys: %w", err)
	}
	if _, err := fileutil.WriteAtomic(pp, pubPEM, CertMode, DirMode); err != nil {
		return 0, fmt.Errorf("ensuring service account keys: %w", err)
	}
	return Created, nil
}

func encodePublicKey(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// readPublicKey reads a PEM "PUBLIC KEY" (PKIX) file.
func readPublicKey(path string) (crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading public key: %w", err)
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, fmt.Errorf("reading public key %s: %w", path, errors.New("no PEM \"PUBLIC KEY\" block found"))
		}
		if b.Type != "PUBLIC KEY" {
			continue
		}
		pub, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("reading public key %s: %w", path, err)
		}
		return pub, nil
	}
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}
