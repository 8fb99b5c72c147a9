package certs

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
)

// PinPrefix starts every CA pin: only SHA-256 pins exist.
const PinPrefix = "sha256:"

// PinHash is the CA pin joining nodes check: "sha256:" and the lowercase hex SHA-256 of
// the certificate's DER SubjectPublicKeyInfo.
func PinHash(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return PinPrefix + hex.EncodeToString(sum[:])
}

// ParsePin parses a CA pin, "sha256:" and 64 hex digits in either case, and returns the
// 32-byte digest. Compare it with the digest of a candidate CA's RawSubjectPublicKeyInfo.
func ParsePin(s string) ([]byte, error) {
	algo, digest, ok := strings.Cut(s, ":")
	if !ok {
		return nil, fmt.Errorf("CA pin %q has no hash type: want %q followed by 64 hex digits", clip(s), PinPrefix)
	}
	if algo != "sha256" {
		return nil, fmt.Errorf("CA pin %q uses hash type %q: only %q is supported", clip(s), clip(algo), "sha256")
	}
	if len(digest) != 2*sha256.Size {
		return nil, fmt.Errorf("CA pin %q has %d characters after %q: want 64 hex digits", clip(s), len(digest), PinPrefix)
	}
	b, err := hex.DecodeString(digest)
	if err != nil {
		return nil, fmt.Errorf("CA pin %q is not hex after %q: %w", clip(s), PinPrefix, err)
	}
	return b, nil
}

// clip shortens s for an error message.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
