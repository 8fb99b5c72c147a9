package kubeconfig

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// MismatchError says that an existing kubeconfig file does not match what kforge would
// write. Problems lists every difference found, in a fixed order; none of them carries key
// material.
type MismatchError struct {
	// File is the file's base name, "admin.conf".
	File string
	// Problems are short lowercase sentences, "server is \"https://a:6443\", want ...".
	Problems []string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("existing kubeconfig %s does not match the cluster: %s", e.File, strings.Join(e.Problems, "; "))
}

// ReadFileFunc reads a file a kubeconfig refers to by path (client-certificate,
// client-key, certificate-authority). Paths are passed exactly as written in the file.
type ReadFileFunc func(path string) ([]byte, error)

// Verify checks that data, an existing kubeconfig, still matches spec: it parses; its
// current context's cluster is named clusterName, points at server and embeds the CA in
// caPEM; its user's client certificate is signed by that CA, has the spec's CN and O, is
// valid at now and is usable for client authentication; and its key matches the
// certificate. Every problem found is returned at once in a *MismatchError; nil means the
// file can be reused as is. Certificates and keys referred to by path count as problems;
// use VerifyWithFiles to follow them. Any other error means caPEM itself is unusable.
func Verify(data []byte, clusterName, server string, caPEM []byte, spec Spec, now time.Time) error {
	return VerifyWithFiles(data, clusterName, server, caPEM, spec, now, nil)
}

// VerifyWithFiles is Verify, but certificates and keys the kubeconfig refers to by path are
// read through readFile. kubelet.conf needs it once the kubelet rotates its own client
// certificate (client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem, which
// holds both the certificate and the key). A nil readFile treats such references as problems.
func VerifyWithFiles(data []byte, clusterName, server string, caPEM []byte, spec Spec, now time.Time, readFile ReadFileFunc) error {
	cas, err := parseCerts(caPEM)
	if err != nil {
		return fmt.Errorf("parsing the cluster CA certificate: %w", err)
	}
	v := verifier{readFile: readFile}
	v.check(data, clusterName, server, cas, spec, now)
	if len(v.problems) == 0 {
		return nil
	}
	return &MismatchError{File: spec.FileName, Problems: v.problems}
}

type verifier struct {
	readFile ReadFileFunc
	problems []string
}

func (v *verifier) addf(format string, args ...any) {
	v.problems = append(v.problems, fmt.Sprintf(format, args...))
}

func (v *verifier) check(data []byte, clusterName, server string, cas []*x509.Certificate, spec Spec, now time.Time) {
	cfg, err := clientcmd.Load(data)
	if err != nil {
		v.addf("cannot be parsed: %v", err)
		return
	}
	if _, err := currentContext(cfg); err != nil {
		v.addf("%v", err)
		return
	}
	v.checkCluster(cfg, clusterName, server, cas)
	v.checkUser(cfg, cas, spec, now)
}

func (v *verifier) checkCluster(cfg *clientcmdapi.Config, clusterName, server string, cas []*x509.Certificate) {
	name, cluster, err := currentCluster(cfg)
	if err != nil {
		v.addf("%v", err)
		return
	}
	if name != clusterName {
		v.addf("cluster is named %q, want %q", name, clusterName)
	}
	if cluster.Server != server {
		v.addf("server is %q, want %q", cluster.Server, server)
	}
	caData, ok := v.data("certificate authority", cluster.CertificateAuthorityData, cluster.CertificateAuthority)
	if !ok {
		return
	}
	got, err := parseCerts(caData)
	if err != nil {
		v.addf("certificate authority cannot be parsed: %v", err)
		return
	}
	if !sameCerts(got, cas) {
		v.addf("certificate authority is not the cluster CA")
	}
}

func (v *verifier) checkUser(cfg *clientcmdapi.Config, cas []*x509.Certificate, spec Spec, now time.Time) {
	_, user, err := CurrentUser(cfg)
	if err != nil {
		v.addf("%v", err)
		return
	}
	certData, ok := v.data("client certificate", user.ClientCertificateData, user.ClientCertificate)
	if !ok {
		return
	}
	certs, err := parseCerts(certData)
	if err != nil {
		v.addf("client certificate cannot be parsed: %v", err)
		return
	}
	cert := certs[0]

	if !signedByAny(cert, cas) {
		v.addf("client certificate is not signed by the cluster CA")
	}
	if cert.Subject.CommonName != spec.CommonName {
		v.addf("client certificate common name is %q, want %q", cert.Subject.CommonName, spec.CommonName)
	}
	if got, want := sortedSet(cert.Subject.Organization), sortedSet(spec.Organization); !slices.Equal(got, want) {
		v.addf("client certificate organizations are %q, want %q", got, want)
	}
	if now.After(cert.NotAfter) {
		v.addf("client certificate expired at %s", cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(cert.NotBefore) {
		v.addf("client certificate is not valid before %s", cert.NotBefore.UTC().Format(time.RFC3339))
	}
	if !clientAuth(cert) {
		v.addf("client certificate is not valid for client authentication")
	}

	keyData, ok := v.data("client key", user.ClientKeyData, user.ClientKey)
	if !ok {
		return
	}
	key, err := parseKey(keyData)
	if err != nil {
		v.addf("client key cannot be parsed: %v", err)
		return
	}
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		v.addf("client key does not match the client certificate")
	}
}

// data returns embedded data, or the content of the file path refers to when readFile is
// set. It records a problem and returns false when there is neither.
func (v *verifier) data(what string, embedded []byte, path string) ([]byte, bool) {
	switch {
	case len(embedded) > 0:
		return embedded, true
	case path == "":
		v.addf("has no %s", what)
		return nil, false
	case v.readFile == nil:
		v.addf("%s is read from %s, want it embedded", what, path)
		return nil, false
	}
	b, err := v.readFile(path)
	if err != nil {
		v.addf("reading %s from %s: %v", what, path, err)
		return nil, false
	}
	return b, true
}

// parseCerts returns every CERTIFICATE block of data; it fails when there is none.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}

// parseKey returns the first private key block of data in PKCS#1, SEC 1 or PKCS#8 form.
func parseKey(data []byte) (crypto.Signer, error) {
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM private key found")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", strings.ToLower(block.Type), err)
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported private key type %T", key)
		}
		return s, nil
	}
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	switch a := a.(type) {
	case *rsa.PublicKey:
		return a.Equal(b)
	case *ecdsa.PublicKey:
		return a.Equal(b)
	case ed25519.PublicKey:
		return a.Equal(b)
	}
	return false
}

func sameCerts(a, b []*x509.Certificate) bool {
	return slices.EqualFunc(a, b, func(x, y *x509.Certificate) bool { return bytes.Equal(x.Raw, y.Raw) })
}

func signedByAny(cert *x509.Certificate, cas []*x509.Certificate) bool {
	for _, ca := range cas {
		if cert.CheckSignatureFrom(ca) == nil {
			return true
		}
	}
	return false
}

func clientAuth(cert *x509.Certificate) bool {
	if len(cert.ExtKeyUsage) == 0 {
		return true
	}
	return slices.ContainsFunc(cert.ExtKeyUsage, func(u x509.ExtKeyUsage) bool {
		return u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny
	})
}

func sortedSet(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}
