package bootstrap

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/internal/redact"
	"github.com/kforge/kforge/manifests"
	"github.com/kforge/kforge/tokens"
)

// CertificateKey is the AES-256 key that seals the shared control-plane certificates in
// the kubeadm-certs Secret. It is never stored in the cluster and never logged or printed
// by mistake: String, fmt (every verb), encoders and slog all see "<redacted>". Reveal
// returns the hex form for where it must really be written.
type CertificateKey [32]byte

// GenerateCertificateKey returns a new random key (crypto/rand).
func GenerateCertificateKey() (CertificateKey, error) {
	var k CertificateKey
	if _, err := rand.Read(k[:]); err != nil {
		return CertificateKey{}, fmt.Errorf("generating certificate key: %w", err)
	}
	return k, nil
}

// ErrInvalidCertificateKey is wrapped by ParseCertificateKey's errors.
var ErrInvalidCertificateKey = errors.New("invalid certificate key")

// ParseCertificateKey reads a key in the form --certificate-key takes: 64 hex digits.
// Errors never repeat the input.
func ParseCertificateKey(s string) (CertificateKey, error) {
	var k CertificateKey
	if len(s) != 2*len(k) {
		return CertificateKey{}, fmt.Errorf("%w: it has %d characters, want %d hex digits", ErrInvalidCertificateKey, len(s), 2*len(k))
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		return CertificateKey{}, fmt.Errorf("%w: it is not all hex digits", ErrInvalidCertificateKey)
	}
	return k, nil
}

// Reveal is the key as hex, the form --certificate-key takes. Call it only where the key
// must really be written: stdin to kforge on a host, and a join command or upload-certs
// output the user asked to see.
func (k CertificateKey) Reveal() string { return hex.EncodeToString(k[:]) }

// redactedKey is what every printed form of a CertificateKey shows.
const redactedKey = "<redacted>"

// String returns "<redacted>"; use Reveal for the key itself.
func (k CertificateKey) String() string { return redactedKey }

// Format prints "<redacted>" for every verb (%x and %d included), and GoString for %#v.
func (k CertificateKey) Format(f fmt.State, verb rune) {
	redact.Format(f, verb, redactedKey, k.GoString())
}

// MarshalText makes encoders (encoding/json among them) write "<redacted>".
func (k CertificateKey) MarshalText() ([]byte, error) { return []byte(redactedKey), nil }

// IsZero reports whether k is unset.
func (k CertificateKey) IsZero() bool { return k == CertificateKey{} }

// LogValue makes slog log the key as "<redacted>".
func (k CertificateKey) LogValue() slog.Value { return slog.StringValue(redactedKey) }

// GoString keeps the key out of %#v.
func (k CertificateKey) GoString() string { return "bootstrap.CertificateKey(<redacted>)" }

// SharedFile is one file control-plane nodes share through the kubeadm-certs Secret.
type SharedFile struct {
	// Key is the file's key in the Secret: its path under the certificate directory with
	// "/" as "-" ("ca.crt", "etcd-ca.key"), or "external-etcd-ca.crt", "external-etcd.crt"
	// and "external-etcd.key" for an external etcd's client files.
	Key string
	// Path is where the file lives on every control-plane host.
	Path string
	// Optional files may be absent: the keys of an external CA, which kforge never holds.
	Optional bool
	// Secret files (private keys, encryption keys) are readable by root only. What a file
	// is decides this, never its name: an external etcd's key may be "client-key.pem".
	Secret bool
}

// Mode is the permission the file is written with: certs.KeyMode (0600) for a secret,
// certs.CertMode (0644) otherwise.
func (f SharedFile) Mode() fs.FileMode {
	if f.Secret {
		return certs.KeyMode
	}
	return certs.CertMode
}

// SharedCertFiles lists the files a joining control-plane node needs from the first one:
// the cluster, front-proxy and (local) etcd CAs, the service-account key pair, the
// encryption configuration of Secrets (security.encrypt_secrets), and the client files of
// an external etcd. certDir is the certificate directory as hosts see it.
func SharedCertFiles(c *config.Cluster, certDir string) []SharedFile {
	const (
		required = false
		optional = true
		public   = false
		secret   = true
	)
	under := func(rel string, optional, secret bool) SharedFile {
		return SharedFile{Key: strings.ReplaceAll(rel, "/", "-"), Path: path.Join(certDir, rel), Optional: optional, Secret: secret}
	}
	files := []SharedFile{
		under("ca.crt", required, public),
		under("ca.key", optional, secret),
		under("front-proxy-ca.crt", required, public),
		under("front-proxy-ca.key", optional, secret),
		under("sa.key", required, secret),
		under("sa.pub", required, public),
	}
	if c.Etcd.Local != nil {
		files = append(files, under("etcd/ca.crt", required, public), under("etcd/ca.key", optional, secret))
	}
	if c.Security.EncryptsSecrets() {
		// The key that encrypts Secrets in etcd: every apiserver needs the same one.
		files = append(files, under(manifests.EncryptionConfigFile, required, secret))
	}
	if e := c.Etcd.External; e != nil {
		for _, f := range []SharedFile{
			{Key: "external-etcd-ca.crt", Path: e.CAFile},
			{Key: "external-etcd.crt", Path: e.CertFile},
			{Key: "external-etcd.key", Path: e.KeyFile, Secret: true},
		} {
			if f.Path != "" {
				files = append(files, f)
			}
		}
	}
	return files
}

// ErrWrongCertificateKey means sealed data does not open with the key given: the key is
// not the one the certificates were uploaded with, or the data was altered.
var ErrWrongCertificateKey = errors.New("the certificate key does not open it (wrong key, or the data was altered)")

// SealCerts seals every file of files (Secret key to content) with AES-256-GCM under key,
// each as nonce||ciphertext, the form a stock `kubeadm join --control-plane` opens.
func SealCerts(key CertificateKey, files map[string][]byte) (map[string][]byte, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(files))
	for name, data := range files {
		nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(data)+aead.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return nil, fmt.Errorf("sealing %s: generating nonce: %w", name, err)
		}
		out[name] = aead.Seal(nonce, nonce, data, nil)
	}
	return out, nil
}

// OpenCerts opens what SealCerts sealed. A wrong key is an error wrapping
// ErrWrongCertificateKey that names the first file (in key order) that did not open.
func OpenCerts(key CertificateKey, sealed map[string][]byte) (map[string][]byte, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(sealed))
	for name := range sealed {
		names = append(names, name)
	}
	slices.Sort(names)
	out := make(map[string][]byte, len(sealed))
	for _, name := range names {
		data := sealed[name]
		if len(data) < aead.NonceSize()+aead.Overhead() {
			return nil, fmt.Errorf("opening %s: it is %d bytes, too short to be sealed data", name, len(data))
		}
		plain, err := aead.Open([]byte{}, data[:aead.NonceSize()], data[aead.NonceSize():], nil)
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", name, ErrWrongCertificateKey)
		}
		out[name] = plain
	}
	return out, nil
}

func newAEAD(key CertificateKey) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, fmt.Errorf("creating AES cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("creating AES-GCM: %w", err)
	}
	return aead, nil
}

// CertsTokenTTL is the lifetime of the token that owns kubeadm-certs: the sealed
// certificates are garbage-collected with it.
const CertsTokenTTL = 2 * time.Hour

// CertsTokenDescription says what the kubeadm-certs owner token is for.
const CertsTokenDescription = "kforge: owns Secret kube-system/kubeadm-certs so that the sealed certificates are deleted with this token; it cannot authenticate"

// CertsTokenSpec is the Spec of the token that owns kubeadm-certs: no usages (it can
// neither authenticate nor sign), expiring CertsTokenTTL after now.
func CertsTokenSpec(now time.Time) tokens.Spec {
	return tokens.Spec{Expires: now.Add(CertsTokenTTL), Description: CertsTokenDescription}
}

// CertsSecret returns the Secret kube-system/kubeadm-certs holding sealed (from SealCerts),
// owned by owner, the Secret of a token made with CertsTokenSpec.
func CertsSecret(sealed map[string][]byte, owner *corev1.Secret) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      CertsSecretName,
			Namespace: NamespaceSystem,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1",
				Kind:       "Secret",
				Name:       owner.Name,
				UID:        owner.UID,
			}},
		},
		Type: corev1.SecretTypeOpaque,
		Data: sealed,
	}
}

// JoinTokenDescription says what the default join token is for.
const JoinTokenDescription = "kforge: the default bootstrap token for joining nodes"

// JoinTokenSpec is the Spec of the default join token: it authenticates as the default node
// group and signs cluster-info. A zero expires makes a token that never expires.
func JoinTokenSpec(expires time.Time) tokens.Spec {
	return tokens.Spec{
		Expires:     expires,
		Usages:      []string{tokens.UsageAuthentication, tokens.UsageSigning},
		Groups:      []string{tokens.DefaultNodeGroup},
		Description: JoinTokenDescription,
	}
}
