package certs

import (
	"fmt"
	"os"
	"time"

	"github.com/kforge/kforge/config"
)

// ExpiryRow is one certificate of the table as found on disk, for `certs check-expiration`.
type ExpiryRow struct {
	// Name is the spec name, "apiserver".
	Name string `json:"name"`
	// Path is the certificate file.
	Path string `json:"path"`
	// Missing says the certificate file does not exist; the other fields are then empty.
	Missing bool `json:"missing,omitempty"`
	// NotAfter is when the certificate expires.
	NotAfter time.Time `json:"not_after,omitzero"`
	// ResidualSeconds is how long the certificate has left when the report was made, in
	// seconds: negative once it has expired. Expiration leaves it zero; the report sets it.
	ResidualSeconds int64 `json:"residual_seconds,omitempty"`
	// Signer is the Name of the signing CA's spec; empty for a CA.
	Signer string `json:"signer,omitempty"`
	// External says the certificate is, or is signed by, a CA whose key is absent: kforge
	// cannot renew it.
	External bool `json:"external"`
}

// ExpiryReport is what `certs check-expiration -o json` prints: every certificate of the
// table, in table order, then the client certificates of the kubeconfigs `certs renew`
// renews (named by file name, "admin.conf", signed by "ca").
type ExpiryReport struct {
	Certificates []ExpiryRow `json:"certificates"`
}

// Earliest is the certificate that expires first, among those that exist; false when none
// does.
func Earliest(rows []ExpiryRow) (ExpiryRow, bool) {
	var first ExpiryRow
	found := false
	for _, r := range rows {
		if !r.Missing && (!found || r.NotAfter.Before(first.NotAfter)) {
			first, found = r, true
		}
	}
	return first, found
}

// Expiration reads every certificate of Table(c) under dir. A dir that does not exist, or
// is not a directory, is an error: a mistyped --cert-dir is not a host without certificates.
func Expiration(dir string, c *config.Cluster) ([]ExpiryRow, error) {
	info, err := os.Stat(dir)
	switch {
	case err != nil:
		return nil, fmt.Errorf("reading certificate expiration: certificate directory: %w", err)
	case !info.IsDir():
		return nil, fmt.Errorf("reading certificate expiration: certificate directory %s is not a directory", dir)
	}
	table := Table(c)
	external := map[string]bool{} // CA name -> key absent
	for _, s := range table {
		if !s.IsCA {
			continue
		}
		haveKey, err := exists(s.KeyPath(dir))
		if err != nil {
			return nil, fmt.Errorf("reading certificate expiration: %w", err)
		}
		external[s.Name] = !haveKey
	}
	var rows []ExpiryRow
	for _, s := range table {
		row := ExpiryRow{Name: s.Name, Path: s.CertPath(dir), Signer: s.CA}
		ok, err := exists(row.Path)
		if err != nil {
			return nil, fmt.Errorf("reading certificate expiration: %w", err)
		}
		if !ok {
			row.Missing = true
			rows = append(rows, row)
			continue
		}
		cert, err := readCert(row.Path)
		if err != nil {
			return nil, fmt.Errorf("reading certificate expiration: %w", err)
		}
		row.NotAfter = cert.NotAfter
		if s.IsCA {
			row.External = external[s.Name]
		} else {
			row.External = external[s.CA]
		}
		rows = append(rows, row)
	}
	return rows, nil
}
