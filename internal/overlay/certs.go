package overlay

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"time"
)

// describeCerts renders PEM certificates as text that reads in a diff: subject, issuer,
// serial, validity and names, one field a line. ok is false when b holds anything but
// certificates, which is then diffed as it is.
func describeCerts(b []byte) (text []byte, ok bool) {
	var out bytes.Buffer
	rest := bytes.TrimSpace(b)
	for len(rest) > 0 {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil || block.Type != "CERTIFICATE" {
			return nil, false
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, false
		}
		if out.Len() > 0 {
			out.WriteString("\n")
		}
		fmt.Fprintf(&out, "certificate %s\n", c.Subject)
		fmt.Fprintf(&out, "  issuer: %s\n", c.Issuer)
		fmt.Fprintf(&out, "  serial: %x\n", c.SerialNumber)
		fmt.Fprintf(&out, "  not before: %s\n", c.NotBefore.UTC().Format(time.RFC3339))
		fmt.Fprintf(&out, "  not after: %s\n", c.NotAfter.UTC().Format(time.RFC3339))
		for _, n := range c.DNSNames {
			fmt.Fprintf(&out, "  DNS: %s\n", n)
		}
		for _, ip := range c.IPAddresses {
			fmt.Fprintf(&out, "  IP: %s\n", ip)
		}
		if c.IsCA {
			out.WriteString("  CA: true\n")
		}
		rest = bytes.TrimSpace(rest)
	}
	if out.Len() == 0 {
		return nil, false
	}
	return []byte(strings.TrimSuffix(out.String(), "\n") + "\n"), true
}
