package fleet

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/host"
	"github.com/kforge/kforge/kubeconfig"
	"github.com/kforge/kforge/kubelet"
	"github.com/kforge/kforge/manifests"
)

// HostCert is one certificate found on a host and when it expires.
type HostCert struct {
	// Name is the certificate's name in the table ("apiserver", "ca"), the kubeconfig
	// whose client certificate it is ("admin.conf"), or "kubelet-client".
	Name string `json:"name"`
	// Path is the file on the host.
	Path     string    `json:"path"`
	NotAfter time.Time `json:"not_after"`
	// Signer is the name of the CA that signs it ("ca"); empty for a CA and for the
	// kubelet's client certificate.
	Signer string `json:"signer,omitempty"`
	// External says the certificate is a CA whose key is not on the host, or is signed by
	// one: kforge cannot renew it there.
	External bool `json:"external,omitempty"`
}

// HostCerts is what readCerts found on a host: its clock, and the expiry of its
// certificates.
type HostCerts struct {
	// Now is the host's clock when it was asked: the clock its apiserver and kubelet judge
	// certificates by.
	Now time.Time
	// CAs are the control-plane host's CAs; Leaves its leaf certificates and the client
	// certificates embedded in its kubeconfigs (both empty on a worker).
	CAs, Leaves []HostCert
	// KubeletClient is the kubelet's client certificate (kubelet.ClientCertPath); nil when
	// the host has none.
	KubeletClient *HostCert
}

// Expired lists the certificates of list that have expired at now, the one that expired
// first first.
func Expired(list []HostCert, now time.Time) []HostCert {
	var out []HostCert
	for _, c := range list {
		if !now.Before(c.NotAfter) {
			out = append(out, c)
		}
	}
	slices.SortStableFunc(out, func(a, b HostCert) int { return a.NotAfter.Compare(b.NotAfter) })
	return out
}

// KubeletExpired reports whether the host's kubelet client certificate has expired.
func (h HostCerts) KubeletExpired() bool {
	return h.KubeletClient != nil && !h.Now.Before(h.KubeletClient.NotAfter)
}

// certFiles are the certificates readCerts reads on a host, by path: on a control-plane
// host the table's certificates and the kubeconfigs with an embedded client certificate,
// and everywhere the kubelet's client certificate. kind says which list each goes to.
type certFile struct {
	name, path, kind string // kind: "ca", "leaf", "kubeconfig", "kubelet"
	// signer is the CA that signs a leaf or kubeconfig; keyPath is a CA's private key.
	signer, keyPath string
}

func certFiles(c *config.Cluster, controlPlane bool) []certFile {
	var out []certFile
	if controlPlane {
		for _, s := range certs.Table(c) {
			f := certFile{name: s.Name, path: s.CertPath(manifests.DefaultCertDir), kind: "leaf", signer: s.CA}
			if s.IsCA {
				f.kind, f.signer, f.keyPath = "ca", "", s.KeyPath(manifests.DefaultCertDir)
			}
			out = append(out, f)
		}
		for _, k := range []string{kubeconfig.AdminFileName, kubeconfig.SuperAdminFileName, kubeconfig.ControllerManagerFileName, kubeconfig.SchedulerFileName} {
			out = append(out, certFile{name: k, path: path.Join(manifests.DefaultKubeconfigDir, k), kind: "kubeconfig", signer: certs.NameCA})
		}
	}
	return append(out, certFile{name: "kubelet-client", path: kubelet.ClientCertPath, kind: "kubelet"})
}

// certsScript prints the host's clock ("now <unix seconds>"), then for each file that
// exists "file <path>" and the certificate in it: the PEM certificate blocks only (a
// kubelet-client pem file holds the key too), or a kubeconfig's client-certificate-data
// line only; and "haskey <path>" for a CA whose key is there. No private key leaves the
// host.
func certsScript(files []certFile) string {
	var b strings.Builder
	b.WriteString("echo \"now $(date -u +%s)\"\n")
	for _, f := range files {
		q := host.ShellQuote(f.path)
		if f.keyPath != "" {
			fmt.Fprintf(&b, "if [ -f %s ]; then echo \"haskey \"%s; fi\n", host.ShellQuote(f.keyPath), q)
		}
		if f.kind == "kubeconfig" {
			fmt.Fprintf(&b, "if [ -f %s ]; then echo \"file \"%s; sed -n 's/^ *client-certificate-data: *//p' %s; fi\n", q, q, q)
			continue
		}
		fmt.Fprintf(&b, "if [ -f %s ]; then echo \"file \"%s; sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' %s; fi\n", q, q, q)
	}
	return b.String()
}

// parseCerts reads what certsScript printed: the host's clock, by path when the first
// certificate of each file expires, and the CAs (by certificate path) whose key is there.
func parseCerts(out []byte) (now time.Time, notAfter map[string]time.Time, hasKey map[string]bool, err error) {
	notAfter, hasKey = map[string]time.Time{}, map[string]bool{}
	var file string
	var block []string
	flush := func() error {
		if file == "" {
			return nil
		}
		data := []byte(strings.Join(block, "\n"))
		if !bytes.Contains(data, []byte("-----BEGIN")) {
			dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
			if err != nil {
				return fmt.Errorf("%s: client-certificate-data is not base64: %w", file, err)
			}
			data = dec
		}
		if blk, _ := pem.Decode(data); blk == nil {
			return fmt.Errorf("%s: no PEM certificate in it", file)
		}
		cert, err := certs.ParseCertPEM(data)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		notAfter[file] = cert.NotAfter
		return nil
	}
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "now "):
			secs, err := strconv.ParseInt(strings.TrimPrefix(line, "now "), 10, 64)
			if err != nil {
				return time.Time{}, nil, nil, fmt.Errorf("reading the host's clock: %q: %w", line, err)
			}
			now = time.Unix(secs, 0).UTC()
		case strings.HasPrefix(line, "haskey "):
			hasKey[strings.TrimPrefix(line, "haskey ")] = true
		case strings.HasPrefix(line, "file "):
			if err := flush(); err != nil {
				return time.Time{}, nil, nil, err
			}
			file, block = strings.TrimPrefix(line, "file "), nil
		case line != "":
			block = append(block, line)
		}
	}
	if err := flush(); err != nil {
		return time.Time{}, nil, nil, err
	}
	if now.IsZero() {
		return time.Time{}, nil, nil, fmt.Errorf("the host did not print its clock")
	}
	return now, notAfter, hasKey, nil
}

// hostCerts sorts what parseCerts found into a HostCerts.
func hostCerts(files []certFile, now time.Time, notAfter map[string]time.Time, hasKey map[string]bool) HostCerts {
	h := HostCerts{Now: now}
	external := map[string]bool{} // CA name -> its key is not here
	for _, f := range files {
		if f.kind == "ca" {
			external[f.name] = !hasKey[f.path]
		}
	}
	for _, f := range files {
		t, ok := notAfter[f.path]
		if !ok {
			continue
		}
		e := HostCert{Name: f.name, Path: f.path, NotAfter: t, Signer: f.signer, External: external[f.name] || external[f.signer]}
		switch f.kind {
		case "ca":
			h.CAs = append(h.CAs, e)
		case "kubelet":
			h.KubeletClient = &e
		default:
			h.Leaves = append(h.Leaves, e)
		}
	}
	return h
}

// readCerts asks every reachable host of the file, in one command each and in parallel,
// when its certificates expire (certsScript): the CAs, leaves and kubeconfig client
// certificates of a control-plane host, and every host's kubelet client certificate. A
// host that does not answer is left out: readState has already judged it.
func (f *Fleet) readCerts(ctx context.Context, o *Observed) {
	var conns []host.Host
	for _, h := range f.c.Hosts {
		if conn := f.conn(h.Name); conn != nil && !o.Unreachable[h.Name] {
			conns = append(conns, conn)
		}
	}
	var mu sync.Mutex
	_ = host.ForEach(ctx, conns, f.o.Concurrency, func(ctx context.Context, conn host.Host) error {
		h, _ := f.c.HostByName(conn.Name())
		files := certFiles(f.c, h.IsControlPlane())
		res, err := conn.Run(ctx, host.Cmd{Script: certsScript(files), Display: "check certificate expiry"})
		if err != nil {
			f.o.Log.Debug("checking certificate expiry", "host", conn.Name(), "err", err)
			return err
		}
		now, notAfter, hasKey, err := parseCerts(res.Stdout)
		if err != nil {
			f.out().Phase(conn.Name(), "WARNING: cannot read its certificates' expiry: %v", err)
			return err
		}
		mu.Lock()
		o.Certs[conn.Name()] = hostCerts(files, now, notAfter, hasKey)
		mu.Unlock()
		return nil
	})
}

// ExpiryRows is what `certs check-expiration` would report of the control plane's CAs,
// leaves and kubeconfig client certificates, for certs.CheckDue.
func (h HostCerts) ExpiryRows() []certs.ExpiryRow {
	var rows []certs.ExpiryRow
	for _, l := range [][]HostCert{h.CAs, h.Leaves} {
		for _, c := range l {
			rows = append(rows, certs.ExpiryRow{Name: c.Name, Path: c.Path, NotAfter: c.NotAfter, Signer: c.Signer, External: c.External})
		}
	}
	return rows
}

// expiredControlPlanes reports whether a reachable control-plane host has an expired
// leaf, kubeconfig or kubelet client certificate (or CA): the cluster's API is then not
// asked until they are renewed.
func expiredControlPlanes(c *config.Cluster, o Observed) bool {
	for _, h := range c.ControlPlaneHosts() {
		hc, ok := o.Certs[h.Name]
		if !ok {
			continue
		}
		if len(Expired(hc.CAs, hc.Now)) > 0 || len(Expired(hc.Leaves, hc.Now)) > 0 || hc.KubeletExpired() {
			return true
		}
	}
	return false
}

// certExpired reports whether err is a certificate that has expired (or is not yet
// valid), as a TLS client reports it.
func certExpired(err error) bool {
	var invalid x509.CertificateInvalidError
	return errors.As(err, &invalid) && invalid.Reason == x509.Expired
}
