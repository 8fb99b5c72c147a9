package bootstrap

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/tokens"
)

func testFiles() map[string][]byte {
	return map[string][]byte{
		"ca.crt":      []byte("-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n"),
		"ca.key":      []byte("-----BEGIN EC PRIVATE KEY-----\nkey\n-----END EC PRIVATE KEY-----\n"),
		"etcd-ca.crt": []byte("etcd ca"),
		"sa.pub":      {},
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	key, err := GenerateCertificateKey()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := SealCerts(key, testFiles())
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range sealed {
		if bytes.Contains(data, testFiles()[name]) && len(testFiles()[name]) > 0 {
			t.Errorf("sealed %s contains its plaintext", name)
		}
	}
	opened, err := OpenCerts(key, sealed)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(testFiles(), opened); diff != "" {
		t.Errorf("opened (-want +got):\n%s", diff)
	}
	again, err := SealCerts(key, testFiles())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(again["ca.crt"], sealed["ca.crt"]) {
		t.Error("sealing twice gave the same bytes: the nonce is not random")
	}
}

// TestSealFormat opens sealed data the way a stock kubeadm join does: AES-256-GCM with the
// hex-decoded key, the nonce first, no additional data.
func TestSealFormat(t *testing.T) {
	key, err := ParseCertificateKey(strings.Repeat("0f", 32))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := SealCerts(key, map[string][]byte{"ca.crt": []byte("hello")})
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(bytes.Repeat([]byte{0x0f}, 32))
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	data := sealed["ca.crt"]
	plain, err := gcm.Open(nil, data[:gcm.NonceSize()], data[gcm.NonceSize():], nil)
	if err != nil {
		t.Fatalf("opening as nonce||ciphertext: %v", err)
	}
	if string(plain) != "hello" {
		t.Errorf("opened %q, want %q", plain, "hello")
	}
}

func TestOpenCertsErrors(t *testing.T) {
	key, _ := GenerateCertificateKey()
	wrong, _ := GenerateCertificateKey()
	sealed, err := SealCerts(key, testFiles())
	if err != nil {
		t.Fatal(err)
	}
	tampered := map[string][]byte{}
	for k, v := range sealed {
		tampered[k] = bytes.Clone(v)
	}
	tampered["etcd-ca.crt"][len(tampered["etcd-ca.crt"])-1] ^= 1

	tests := []struct {
		name    string
		key     CertificateKey
		sealed  map[string][]byte
		wantIs  error
		wantErr string
	}{
		{name: "wrong key", key: wrong, sealed: sealed, wantIs: ErrWrongCertificateKey, wantErr: "opening ca.crt: the certificate key does not open it"},
		{name: "tampered data", key: key, sealed: tampered, wantIs: ErrWrongCertificateKey, wantErr: "opening etcd-ca.crt"},
		{name: "too short", key: key, sealed: map[string][]byte{"sa.key": []byte("short")}, wantErr: "opening sa.key: it is 5 bytes, too short"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := OpenCerts(tc.key, tc.sealed)
			if err == nil {
				t.Fatal("OpenCerts succeeded")
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error %q does not wrap %q", err, tc.wantIs)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not contain %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), tc.key.Reveal()) {
				t.Errorf("error %q contains the key", err)
			}
		})
	}
}

func TestParseCertificateKey(t *testing.T) {
	valid := strings.Repeat("a1", 32)
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{name: "valid", in: valid},
		{name: "uppercase hex", in: strings.ToUpper(valid)},
		{name: "too short", in: valid[:62], wantErr: "it has 62 characters, want 64 hex digits"},
		{name: "not hex", in: strings.Repeat("zz", 32), wantErr: "it is not all hex digits"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParseCertificateKey(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrInvalidCertificateKey) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), tc.in) {
					t.Errorf("error %q repeats the input", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.Reveal() != strings.ToLower(tc.in) {
				t.Errorf("Reveal() = %q, want %q", k.Reveal(), strings.ToLower(tc.in))
			}
		})
	}
}

func TestCertificateKeyNeverLogged(t *testing.T) {
	k, err := GenerateCertificateKey()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
		slog.New(h).Info("uploading", "key", k, "group", slog.GroupValue(slog.Any("key", k)))
	}
	fmt.Fprintf(&buf, "%#v", k)
	if strings.Contains(buf.String(), k.Reveal()) {
		t.Errorf("the certificate key reached the output:\n%s", buf.String())
	}
	if !strings.Contains(buf.String(), "<redacted>") {
		t.Errorf("no redaction marker in:\n%s", buf.String())
	}
}

func TestSharedCertFiles(t *testing.T) {
	keys := func(fs []SharedFile) []string {
		var out []string
		for _, f := range fs {
			s := f.Key + "=" + f.Path
			if f.Optional {
				s += " (optional)"
			}
			if f.Secret {
				s += fmt.Sprintf(" (secret, %o)", f.Mode())
			}
			out = append(out, s)
		}
		return out
	}
	common := []string{
		"ca.crt=/pki/ca.crt", "ca.key=/pki/ca.key (optional) (secret, 600)",
		"front-proxy-ca.crt=/pki/front-proxy-ca.crt", "front-proxy-ca.key=/pki/front-proxy-ca.key (optional) (secret, 600)",
		"sa.key=/pki/sa.key (secret, 600)", "sa.pub=/pki/sa.pub",
	}
	const enc = "encryption-config.yaml=/pki/encryption-config.yaml (secret, 600)"
	local := append(append([]string{}, common...), "etcd-ca.crt=/pki/etcd/ca.crt", "etcd-ca.key=/pki/etcd/ca.key (optional) (secret, 600)", enc)
	if diff := cmp.Diff(local, keys(SharedCertFiles(testCluster(nil), "/pki"))); diff != "" {
		t.Errorf("local etcd (-want +got):\n%s", diff)
	}
	ext := testCluster(func(c *config.Cluster) {
		c.Etcd.External = &config.ExternalEtcd{Endpoints: []string{"https://e:2379"}, CAFile: "/e/ca.pem", CertFile: "/e/client.pem", KeyFile: "/e/client-key.pem"}
	})
	external := append(append([]string{}, common...), enc, "external-etcd-ca.crt=/e/ca.pem", "external-etcd.crt=/e/client.pem", "external-etcd.key=/e/client-key.pem (secret, 600)")
	if diff := cmp.Diff(external, keys(SharedCertFiles(ext, "/pki"))); diff != "" {
		t.Errorf("external etcd (-want +got):\n%s", diff)
	}
	off := false
	plain := testCluster(func(c *config.Cluster) { c.Security.EncryptSecrets = &off })
	if got := keys(SharedCertFiles(plain, "/pki")); slices.Contains(got, enc) {
		t.Errorf("encrypt_secrets off, yet the encryption configuration is shared: %q", got)
	}
}

func TestCertsSecretAndOwnerToken(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	owner := tokens.Secret(tokens.Token{ID: "owner1", Secret: "0123456789abcdef"}, CertsTokenSpec(now))
	owner.UID = "uid-1"
	_, spec, err := tokens.FromSecret(owner)
	if err != nil {
		t.Fatal(err)
	}
	want := tokens.Spec{Expires: now.Add(2 * time.Hour), Description: CertsTokenDescription}
	if diff := cmp.Diff(want, spec); diff != "" {
		t.Errorf("owner token spec (-want +got):\n%s", diff)
	}
	sec := CertsSecret(map[string][]byte{"ca.crt": []byte("x")}, owner)
	if sec.Namespace != "kube-system" || sec.Name != "kubeadm-certs" {
		t.Errorf("Secret is %s/%s", sec.Namespace, sec.Name)
	}
	if len(sec.OwnerReferences) != 1 || sec.OwnerReferences[0].Name != "bootstrap-token-owner1" ||
		sec.OwnerReferences[0].UID != "uid-1" || sec.OwnerReferences[0].Kind != "Secret" {
		t.Errorf("owner references = %+v", sec.OwnerReferences)
	}
}

// TestCertificateKeyFormattingRedacted formats the key every way fmt and encoding/json can
// and checks the key never shows, as hex or as bytes.
func TestCertificateKeyFormattingRedacted(t *testing.T) {
	k, err := ParseCertificateKey(strings.Repeat("5a", 32))
	if err != nil {
		t.Fatal(err)
	}
	holder := struct{ Key CertificateKey }{k}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%o", "%T"} {
		for _, arg := range []any{k, &k, holder, &holder} {
			outs = append(outs, fmt.Sprintf(verb, arg))
		}
	}
	outs = append(outs, fmt.Sprint(k), k.String())
	for _, v := range []any{k, &k, holder} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, string(b))
	}
	for _, out := range outs {
		// The key's bytes are all 0x5a (90): any rendering of them repeats "5a", "90" or "132".
		for _, leak := range []string{"5a5a5a", "5A5A5A", "90 90 90", "132 132 132", "WlpaWlpa"} {
			if strings.Contains(out, leak) {
				t.Errorf("formatted key shows the key (%s): %s", leak, out)
			}
		}
	}
}
