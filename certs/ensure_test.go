package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kforge/kforge/config"
)

// wantCert is what the reference table says a certificate must look like.
type wantCert struct {
	CN     string
	O      []string
	DNS    []string
	IPs    []string
	EKU    []x509.ExtKeyUsage
	IsCA   bool
	Signer string // base name of the CA
}

// referenceCerts is REFERENCE.md's certificate table for testCluster and testParams,
// written out by hand so that a change in Table shows up here.
var referenceCerts = map[string]wantCert{
	"ca": {CN: "kubernetes", IsCA: true},
	"apiserver": {
		CN: "kube-apiserver", Signer: "ca",
		DNS: []string{"cp-1", "extra.example.com", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local", "lb.example.com"},
		IPs: []string{"10.0.0.100", "10.96.0.1", "192.168.1.10"},
		EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	},
	"apiserver-kubelet-client": {
		CN: "kube-apiserver-kubelet-client", O: []string{"kubeadm:cluster-admins"}, Signer: "ca",
		EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	},
	"front-proxy-ca":     {CN: "front-proxy-ca", IsCA: true},
	"front-proxy-client": {CN: "front-proxy-client", Signer: "front-proxy-ca", EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
	"etcd/ca":            {CN: "etcd-ca", IsCA: true},
	"etcd/server": {
		CN: "cp-1", Signer: "etcd/ca",
		DNS: []string{"cp-1", "etcd.example.com", "localhost"},
		IPs: []string{"127.0.0.1", "192.168.1.10", "::1"},
		EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	},
	"etcd/peer": {
		CN: "cp-1", Signer: "etcd/ca",
		DNS: []string{"cp-1", "localhost"},
		IPs: []string{"127.0.0.1", "192.168.1.10", "192.168.50.5", "::1"},
		EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	},
	"etcd/healthcheck-client": {CN: "kube-etcd-healthcheck-client", Signer: "etcd/ca", EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
	"apiserver-etcd-client":   {CN: "kube-apiserver-etcd-client", Signer: "etcd/ca", EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestEnsureCreatesReferencePKI(t *testing.T) {
	for _, alg := range []string{config.KeyECDSAP256, config.KeyRSA2048} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			c := testCluster(t, alg)
			dir := filepath.Join(t.TempDir(), "pki")
			p := testParams(c)

			got := ensureAll(t, dir, p)
			want := map[string]Outcome{}
			for _, s := range Table(c) {
				want[s.Name] = Created
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Fatalf("first Ensure outcomes (-want +got):\n%s", d)
			}
			if len(got) != len(referenceCerts) {
				t.Fatalf("table has %d certificates, reference has %d", len(got), len(referenceCerts))
			}

			for base, w := range referenceCerts {
				t.Run(base, func(t *testing.T) {
					checkReferenceCert(t, dir, base, w, alg)
				})
			}
			for _, d := range []string{dir, filepath.Join(dir, "etcd")} {
				st, err := os.Stat(d)
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm() != 0o700 {
					t.Errorf("%s has mode %v, want 0700", d, st.Mode().Perm())
				}
			}
		})
	}
}

func checkReferenceCert(t *testing.T, dir, base string, w wantCert, alg string) {
	t.Helper()
	cp, kp := certPath(dir, base), keyPath(dir, base)
	cert, key := mustReadCert(t, cp), mustReadKey(t, kp)

	type view struct {
		CN   string
		O    []string
		DNS  []string
		IPs  []string
		EKU  []x509.ExtKeyUsage
		IsCA bool
	}
	var ips []string
	for _, ip := range cert.IPAddresses {
		ips = append(ips, ip.String())
	}
	gotView := view{cert.Subject.CommonName, cert.Subject.Organization, sorted(cert.DNSNames), sorted(ips), cert.ExtKeyUsage, cert.IsCA}
	wantView := view{w.CN, w.O, w.DNS, w.IPs, w.EKU, w.IsCA}
	if d := cmp.Diff(wantView, gotView); d != "" {
		t.Errorf("%s (-want +got):\n%s", cp, d)
	}

	// Key usages.
	wantKU := x509.KeyUsageDigitalSignature
	if alg != config.KeyECDSAP256 {
		wantKU |= x509.KeyUsageKeyEncipherment
	}
	if w.IsCA {
		wantKU = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	}
	if cert.KeyUsage != wantKU {
		t.Errorf("key usage %b, want %b", cert.KeyUsage, wantKU)
	}
	if !cert.BasicConstraintsValid {
		t.Error("basic constraints are missing")
	}

	// Key type and pair.
	if err := CheckPair(cert, key); err != nil {
		t.Error(err)
	}
	switch alg {
	case config.KeyECDSAP256:
		if k, ok := key.(*ecdsa.PrivateKey); !ok || k.Curve != elliptic.P256() {
			t.Errorf("key is %T, want ECDSA P-256", key)
		}
	case config.KeyRSA2048:
		if k, ok := key.(*rsa.PrivateKey); !ok || k.N.BitLen() != 2048 {
			t.Errorf("key is %T, want RSA 2048", key)
		}
	}
	keyPEM, _ := os.ReadFile(kp)
	wantType := map[string]string{config.KeyECDSAP256: "EC PRIVATE KEY", config.KeyRSA2048: "RSA PRIVATE KEY"}[alg]
	if b, _ := pem.Decode(keyPEM); b == nil || b.Type != wantType {
		t.Errorf("%s is not a PEM %q block", kp, wantType)
	}

	// Validity: backdated five minutes, lifetime from the configuration.
	validity := 365 * 24 * time.Hour
	if w.IsCA {
		validity = 10 * 365 * 24 * time.Hour
	}
	if !cert.NotBefore.Equal(testNow.Add(-5*time.Minute)) || !cert.NotAfter.Equal(testNow.Add(validity)) {
		t.Errorf("validity %s to %s, want %s to %s", cert.NotBefore, cert.NotAfter, testNow.Add(-5*time.Minute), testNow.Add(validity))
	}

	// Chain.
	signer := base
	if !w.IsCA {
		signer = w.Signer
	}
	roots := x509.NewCertPool()
	roots.AddCert(mustReadCert(t, certPath(dir, signer)))
	for _, eku := range append([]x509.ExtKeyUsage{}, w.EKU...) {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{eku}}); err != nil {
			t.Errorf("verifying %s against %s for usage %v: %v", cp, signer, eku, err)
		}
	}
	if w.IsCA {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: testNow}); err != nil {
			t.Errorf("verifying self-signed %s: %v", cp, err)
		}
	}
	// A leaf must not verify against another CA.
	if !w.IsCA {
		other := "front-proxy-ca"
		if signer == other {
			other = "ca"
		}
		pool := x509.NewCertPool()
		pool.AddCert(mustReadCert(t, certPath(dir, other)))
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
			t.Errorf("%s verifies against %s too", cp, other)
		}
	}

	// Modes.
	for path, mode := range map[string]fs.FileMode{cp: 0o644, kp: 0o600} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != mode {
			t.Errorf("%s has mode %v, want %v", path, st.Mode(), mode)
		}
	}
}

func TestEnsureConverges(t *testing.T) {
	for _, alg := range []string{config.KeyECDSAP256, config.KeyRSA2048} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			c := testCluster(t, alg)
			dir := newPKI(t, c)
			ageFiles(t, dir)
			before := snapshot(t, dir)

			// A second run, even a day later, reuses everything and touches nothing.
			p := testParams(c)
			p.Now = func() time.Time { return testNow.Add(24 * time.Hour) }
			got := ensureAll(t, dir, p)
			for name, o := range got {
				if o != Reused {
					t.Errorf("second Ensure(%s) = %v, want reused", name, o)
				}
			}
			if o, err := EnsureServiceAccountKeys(dir, alg); err != nil || o != Reused {
				t.Errorf("second EnsureServiceAccountKeys = %v, %v; want reused", o, err)
			}
			requireUnchanged(t, dir, before)

			// Deleting one leaf regenerates that leaf only.
			removeFiles(t, certPath(dir, "etcd/peer"), keyPath(dir, "etcd/peer"))
			got = ensureAll(t, dir, p)
			for name, o := range got {
				want := Reused
				if name == NameEtcdPeer {
					want = Created
				}
				if o != want {
					t.Errorf("Ensure(%s) after deleting etcd/peer = %v, want %v", name, o, want)
				}
			}
			after := snapshot(t, dir)
			for path, st := range before {
				if strings.HasPrefix(path, filepath.Join("etcd", "peer")) {
					if after[path] == st {
						t.Errorf("%s was not regenerated", path)
					}
					continue
				}
				if d := cmp.Diff(st, after[path]); d != "" {
					t.Errorf("%s changed (-before +after):\n%s", path, d)
				}
			}
			peer := mustReadCert(t, certPath(dir, "etcd/peer"))
			etcdCA := mustReadCert(t, certPath(dir, "etcd/ca"))
			if err := peer.CheckSignatureFrom(etcdCA); err != nil {
				t.Errorf("regenerated etcd/peer is not signed by etcd/ca: %v", err)
			}
		})
	}
}

func TestEnsureReportsMismatch(t *testing.T) {
	c := testCluster(t, config.KeyECDSAP256)
	base := newPKI(t, c)

	// replacePair mints a client pair with the CA at caBase and writes it over target's.
	replacePair := func(target, caBase, cn string, org ...string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			t.Helper()
			caCert, caKey := mustLoadCA(t, dir, caBase)
			crt, key, err := NewClientCert(caCert, caKey, ClientRequest{
				CommonName: cn, Organization: org, Validity: time.Hour, KeyAlgorithm: config.KeyECDSAP256,
				Now: func() time.Time { return testNow },
			})
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, certPath(dir, target), crt, 0o644)
			writeFile(t, keyPath(dir, target), key, 0o600)
		}
	}
	copyFile := func(from, to string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			t.Helper()
			b, err := os.ReadFile(filepath.Join(dir, from))
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, to), b, 0o600)
		}
	}

	tests := []struct {
		name     string
		spec     string
		setup    func(t *testing.T, dir string)
		params   func(p *Params)
		path     string // certificate reported, relative to dir
		problems []string
		fix      string
	}{
		{
			name:     "missing SANs after the advertise address changed",
			spec:     NameAPIServer,
			params:   func(p *Params) { p.AdvertiseAddress = []byte{192, 168, 1, 99} },
			path:     "apiserver.crt",
			problems: []string{"it lacks the subject alternative names IP:192.168.1.99"},
			fix:      "remove the file and",
		},
		{
			name:     "missing extra SAN",
			spec:     NameEtcdServer,
			params:   func(p *Params) { p.Cluster.Etcd.Local.ServerCertSANs = []string{"etcd.example.com", "new.example.com"} },
			path:     "etcd/server.crt",
			problems: []string{"it lacks the subject alternative names DNS:new.example.com"},
		},
		{
			name:     "wrong common name",
			spec:     NameFrontProxyClient,
			setup:    replacePair("front-proxy-client", "front-proxy-ca", "someone-else"),
			path:     "front-proxy-client.crt",
			problems: []string{`its common name is "someone-else", want "front-proxy-client"`},
		},
		{
			name:     "wrong organization",
			spec:     NameAPIServerKubeletClient,
			setup:    replacePair("apiserver-kubelet-client", "ca", "kube-apiserver-kubelet-client", "system:masters"),
			path:     "apiserver-kubelet-client.crt",
			problems: []string{`its organization is ["system:masters"], want ["kubeadm:cluster-admins"]`},
		},
		{
			name:     "wrong signer",
			spec:     NameAPIServerKubeletClient,
			setup:    replacePair("apiserver-kubelet-client", "front-proxy-ca", "kube-apiserver-kubelet-client", "kubeadm:cluster-admins"),
			path:     "apiserver-kubelet-client.crt",
			problems: []string{"it is not signed by the CA " + "ca.crt"},
		},
		{
			name:     "leaf expired",
			spec:     NameEtcdHealthcheckClient,
			params:   func(p *Params) { p.Now = func() time.Time { return testNow.AddDate(2, 0, 0) } },
			path:     "etcd/healthcheck-client.crt",
			problems: []string{"it expired on 2027-03-01T12:00:00Z"},
		},
		{
			name:     "not valid yet",
			spec:     NameEtcdHealthcheckClient,
			params:   func(p *Params) { p.Now = func() time.Time { return testNow.Add(-time.Hour) } },
			path:     "etcd/healthcheck-client.crt",
			problems: []string{"it is not valid before 2026-03-01T11:55:00Z (check the clock)"},
		},
		{
			name:  "wrong usages",
			spec:  NameEtcdServer,
			setup: replacePair("etcd/server", "etcd/ca", "cp-1"),
			path:  "etcd/server.crt",
			problems: []string{
				"it lacks the subject alternative names DNS:cp-1, DNS:localhost, DNS:etcd.example.com, IP:192.168.1.10, IP:127.0.0.1, IP:::1",
				"its extended key usage lacks server auth",
			},
		},
		{
			name: "CA is not a CA",
			spec: NameCA,
			setup: func(t *testing.T, dir string) {
				copyFile("apiserver.crt", "ca.crt")(t, dir)
				copyFile("apiserver.key", "ca.key")(t, dir)
			},
			path: "ca.crt",
			problems: []string{
				"it is not a CA certificate (basic constraints CA:TRUE missing)",
				"its key usage does not include certificate signing",
			},
			fix: "a CA is never replaced automatically",
		},
		{
			name:     "CA key does not match",
			spec:     NameFrontProxyCA,
			setup:    copyFile("ca.key", "front-proxy-ca.key"),
			path:     "front-proxy-ca.crt",
			problems: []string{"front-proxy-ca.key is not the key of this certificate"},
			fix:      "a CA is never replaced automatically: to start over, remove",
		},
		{
			name:     "CA expired",
			spec:     NameEtcdCA,
			params:   func(p *Params) { p.Now = func() time.Time { return testNow.AddDate(11, 0, 0) } },
			path:     "etcd/ca.crt",
			problems: []string{"it expired on 2036-02-27T12:00:00Z"},
			fix:      "a CA is never replaced automatically",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, base)
			c := testCluster(t, config.KeyECDSAP256)
			p := testParams(c)
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			if tc.params != nil {
				tc.params(&p)
			}
			ageFiles(t, dir)
			before := snapshot(t, dir)

			s, ok := Lookup(c, tc.spec)
			if !ok {
				t.Fatalf("no spec %s", tc.spec)
			}
			o, err := s.Ensure(dir, p)
			if err == nil {
				t.Fatalf("Ensure = %v, want a mismatch error", o)
			}
			me := asMismatch(t, err)
			if want := filepath.Join(dir, tc.path); me.Path != want {
				t.Errorf("Path = %s, want %s", me.Path, want)
			}
			// Problems name absolute paths; compare them relative to dir.
			var got []string
			for _, pr := range me.Problems {
				got = append(got, strings.ReplaceAll(pr, dir+string(filepath.Separator), ""))
			}
			if d := cmp.Diff(tc.problems, got); d != "" {
				t.Errorf("problems (-want +got):\n%s", d)
			}
			fix := tc.fix
			if fix == "" {
				fix = "remove the file"
			}
			if !strings.Contains(err.Error(), fix) || !strings.Contains(err.Error(), me.Path) {
				t.Errorf("error %q does not name the file and say %q", err, fix)
			}
			requireUnchanged(t, dir, before)
		})
	}
}

func TestMismatchErrorMessage(t *testing.T) {
	err := &MismatchError{Path: "/pki/apiserver.crt", Problems: []string{"it expired on X", "it lacks Y"}}
	want := "existing /pki/apiserver.crt does not match the configuration: it expired on X; it lacks Y; remove the file to regenerate it"
	if err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
}

// TestEnsureHalfPair: half a pair, as a run killed between writing a key and its
// certificate leaves it, is made whole by the next run where kforge can sign a new pair,
// and is otherwise an error that says which file to restore or remove.
func TestEnsureHalfPair(t *testing.T) {
	c := testCluster(t, config.KeyECDSAP256)
	base := newPKI(t, c)
	tests := []struct {
		name   string
		spec   string
		remove []string
		setup  func(t *testing.T, dir string)
		want   string // the error; empty: regenerated
	}{
		{name: "leaf key missing: regenerated", spec: NameAPIServer, remove: []string{"apiserver.key"}},
		{name: "leaf certificate missing: regenerated", spec: NameEtcdPeer, remove: []string{"etcd/peer.crt"}},
		{name: "leaf key not the certificate's: regenerated", spec: NameAPIServer, setup: func(t *testing.T, dir string) {
			b, err := os.ReadFile(keyPath(dir, "front-proxy-client"))
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, keyPath(dir, "apiserver"), b, 0o600)
		}},
		{name: "CA key alone, nothing signed by it: regenerated", spec: NameFrontProxyCA,
			remove: []string{"front-proxy-ca.crt", "front-proxy-client.crt", "front-proxy-client.key"}},
		{name: "CA key alone, with certificates it signed: refused", spec: NameFrontProxyCA, remove: []string{"front-proxy-ca.crt"},
			want: "found DIR/front-proxy-ca.key but not DIR/front-proxy-ca.crt, and DIR/front-proxy-client.crt was signed by it: " +
				"restore DIR/front-proxy-ca.crt (from another control-plane host or a backup); a new CA would not be trusted by what holds the old one"},
		{name: "leaf key missing, CA external: refused", spec: NameAPIServer, remove: []string{"apiserver.key", "ca.key"},
			want: "found DIR/apiserver.crt but not its key DIR/apiserver.key, and kforge cannot sign a new pair: the CA DIR/ca.crt is external (there is no DIR/ca.key): restore DIR/apiserver.key, or provide both files"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, base)
			for _, f := range tc.remove {
				removeFiles(t, filepath.Join(dir, f))
			}
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			ageFiles(t, dir)
			before := snapshot(t, dir)
			s, _ := Lookup(c, tc.spec)
			o, err := s.Ensure(dir, testParams(c))
			if tc.want != "" {
				if err == nil {
					t.Fatal("Ensure succeeded")
				}
				if want := strings.ReplaceAll(tc.want, "DIR", dir); !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
				requireUnchanged(t, dir, before)
				return
			}
			if err != nil || o != Created {
				t.Fatalf("Ensure = %v, %v; want the pair created again", o, err)
			}
			cert, key, err := readPair(s.CertPath(dir), s.KeyPath(dir))
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckPair(cert, key); err != nil {
				t.Errorf("the new pair does not match: %v", err)
			}
			if !s.IsCA {
				caSpec, _ := Lookup(c, s.CA)
				caCert, _ := mustLoadCA(t, dir, caSpec.BaseName)
				if err := cert.CheckSignatureFrom(caCert); err != nil {
					t.Errorf("the new certificate is not signed by the CA: %v", err)
				}
			}
			// Nothing else changed.
			after := snapshot(t, dir)
			for _, f := range []string{s.CertPath(dir), s.KeyPath(dir)} {
				rel, _ := filepath.Rel(dir, f)
				delete(before, rel)
				delete(after, rel)
			}
			if d := cmp.Diff(before, after); d != "" {
				t.Errorf("other files changed (-before +after):\n%s", d)
			}
			// And a re-run reuses it.
			if o, err := s.Ensure(dir, testParams(c)); err != nil || o != Reused {
				t.Errorf("second Ensure = %v, %v; want reused", o, err)
			}
		})
	}
}

func TestEnsureExternalCA(t *testing.T) {
	c := testCluster(t, config.KeyECDSAP256)
	dir := newPKI(t, c)
	removeFiles(t, keyPath(dir, "ca"))
	ageFiles(t, dir)
	before := snapshot(t, dir)
	p := testParams(c)

	got := ensureAll(t, dir, p)
	want := map[string]Outcome{}
	for _, s := range Table(c) {
		want[s.Name] = Reused
	}
	want[NameCA] = External
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("outcomes with an external CA (-want +got):\n%s", d)
	}
	requireUnchanged(t, dir, before)

	if _, _, err := LoadCA(dir, "ca"); !errors.Is(err, ErrExternalCA) {
		t.Errorf("LoadCA of an external CA: %v, want ErrExternalCA", err)
	}

	// A missing leaf of the external CA is not minted: it must be provided.
	removeFiles(t, certPath(dir, "apiserver"), keyPath(dir, "apiserver"))
	before = snapshot(t, dir)
	s, _ := Lookup(c, NameAPIServer)
	_, err := s.Ensure(dir, p)
	if !errors.Is(err, ErrExternalCA) || !strings.Contains(err.Error(), "must be provided") {
		t.Errorf("Ensure(apiserver) with an external CA and no pair: %v, want an error saying it must be provided", err)
	}
	requireUnchanged(t, dir, before)

	// A leaf that does not verify against the external CA is a mismatch with advice.
	crt, err := os.ReadFile(certPath(dir, "front-proxy-client"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(keyPath(dir, "front-proxy-client"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, certPath(dir, "apiserver-kubelet-client"), crt, 0o644)
	writeFile(t, keyPath(dir, "apiserver-kubelet-client"), key, 0o600)
	s, _ = Lookup(c, NameAPIServerKubeletClient)
	_, err = s.Ensure(dir, p)
	me := asMismatch(t, err)
	if !strings.Contains(me.Error(), "is external") || !slices.Contains(me.Problems, "it is not signed by the CA "+certPath(dir, "ca")) {
		t.Errorf("mismatch with an external CA: %v", me)
	}

	// An external CA that is not a CA is reported too.
	writeFile(t, certPath(dir, "ca"), crt, 0o644)
	caSpec, _ := Lookup(c, NameCA)
	if _, err := caSpec.Ensure(dir, p); err == nil {
		t.Error("a non-CA ca.crt without key was accepted as an external CA")
	} else {
		asMismatch(t, err)
	}
}

func TestLeafNeverOutlivesCA(t *testing.T) {
	c := testCluster(t, config.KeyECDSAP256)
	c.Certificates.CAValidity.Duration = 2 * time.Hour
	dir := newPKI(t, c)
	for _, s := range Table(c) {
		if s.IsCA {
			continue
		}
		leaf := mustReadCert(t, s.CertPath(dir))
		ca, _ := Lookup(c, s.CA)
		caCert := mustReadCert(t, ca.CertPath(dir))
		if !leaf.NotAfter.Equal(caCert.NotAfter) {
			t.Errorf("%s NotAfter %s, want the CA's %s", s.Name, leaf.NotAfter, caCert.NotAfter)
		}
	}

	// Once the CA has expired, no leaf is minted with it.
	removeFiles(t, certPath(dir, "apiserver"), keyPath(dir, "apiserver"))
	s, _ := Lookup(c, NameAPIServer)
	p := testParams(c)
	p.Now = func() time.Time { return testNow.Add(3 * time.Hour) }
	if _, err := s.Ensure(dir, p); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("Ensure with an expired CA: %v, want an error saying the CA expired", err)
	}
	if _, err := os.Stat(certPath(dir, "apiserver")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a leaf was written with an expired CA: %v", err)
	}
}

func TestKeyAlgorithms(t *testing.T) {
	tests := []struct {
		alg     string
		pemType string
		check   func(k any) bool
	}{
		{config.KeyECDSAP256, "EC PRIVATE KEY", func(k any) bool {
			e, ok := k.(*ecdsa.PrivateKey)
			return ok && e.Curve == elliptic.P256()
		}},
		{config.KeyRSA2048, "RSA PRIVATE KEY", func(k any) bool { r, ok := k.(*rsa.PrivateKey); return ok && r.N.BitLen() == 2048 }},
		{config.KeyRSA3072, "RSA PRIVATE KEY", func(k any) bool { r, ok := k.(*rsa.PrivateKey); return ok && r.N.BitLen() == 3072 }},
		{config.KeyRSA4096, "RSA PRIVATE KEY", func(k any) bool { r, ok := k.(*rsa.PrivateKey); return ok && r.N.BitLen() == 4096 }},
	}
	for _, tc := range tests {
		t.Run(tc.alg, func(t *testing.T) {
			t.Parallel()
			c := testCluster(t, tc.alg)
			dir := filepath.Join(t.TempDir(), "pki")
			p := testParams(c)
			// A CA and a leaf, so that both minting paths use the algorithm.
			for _, name := range []string{NameFrontProxyCA, NameFrontProxyClient} {
				s, _ := Lookup(c, name)
				if o, err := s.Ensure(dir, p); err != nil || o != Created {
					t.Fatalf("Ensure(%s) = %v, %v", name, o, err)
				}
				b, _ := os.ReadFile(s.KeyPath(dir))
				if blk, _ := pem.Decode(b); blk == nil || blk.Type != tc.pemType {
					t.Errorf("%s is not a PEM %q block", s.KeyPath(dir), tc.pemType)
				}
				if k := mustReadKey(t, s.KeyPath(dir)); !tc.check(k) {
					t.Errorf("%s holds a %T of the wrong size", s.KeyPath(dir), k)
				}
			}
			if _, err := EnsureServiceAccountKeys(dir, tc.alg); err != nil {
				t.Fatal(err)
			}
			kp, _ := ServiceAccountKeyPaths(dir)
			if k := mustReadKey(t, kp); !tc.check(k) {
				t.Errorf("sa.key is a %T of the wrong size", k)
			}
		})
	}
}

func TestEnsureInputErrors(t *testing.T) {
	tests := []struct {
		name string
		spec string
		mod  func(p *Params)
		want string
	}{
		{"no cluster", NameCA, func(p *Params) { p.Cluster = nil }, "ensuring ca certificate: no cluster configuration"},
		{"unknown key algorithm", NameCA, func(p *Params) { p.Cluster.Certificates.KeyAlgorithm = "dsa-1024" }, `unsupported key algorithm "dsa-1024"`},
		{"no node name", NameAPIServer, func(p *Params) { p.NodeName = "" }, "the node name is not set"},
		{"no advertise address", NameEtcdPeer, func(p *Params) { p.AdvertiseAddress = nil }, "the advertise address is not set"},
		{"CA not ensured", NameAPIServer, nil, "loading CA ca (ensure it first)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testCluster(t, config.KeyECDSAP256)
			dir := filepath.Join(t.TempDir(), "pki")
			p := testParams(c)
			if tc.spec != NameCA && tc.name != "CA not ensured" {
				ensureAll(t, dir, p)
				s, _ := Lookup(c, tc.spec)
				removeFiles(t, s.CertPath(dir), s.KeyPath(dir))
			}
			s, _ := Lookup(c, tc.spec)
			if tc.mod != nil {
				tc.mod(&p)
			}
			_, err := s.Ensure(dir, p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Ensure: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestServiceAccountKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	o, err := EnsureServiceAccountKeys(dir, config.KeyRSA2048)
	if err != nil || o != Created {
		t.Fatalf("EnsureServiceAccountKeys = %v, %v", o, err)
	}
	kp, pp := ServiceAccountKeyPaths(dir)
	key := mustReadKey(t, kp)
	pub, err := readPublicKey(pp)
	if err != nil {
		t.Fatal(err)
	}
	if !publicKeysEqual(key.Public(), pub) {
		t.Error("sa.pub is not the public key of sa.key")
	}
	for path, mode := range map[string]fs.FileMode{kp: 0o600, pp: 0o644, dir: fs.ModeDir | 0o700} {
		if st, err := os.Stat(path); err != nil || st.Mode() != mode {
			t.Errorf("%s: mode %v (%v), want %v", path, st.Mode(), err, mode)
		}
	}
	ageFiles(t, dir)
	before := snapshot(t, dir)
	if o, err := EnsureServiceAccountKeys(dir, config.KeyRSA2048); err != nil || o != Reused {
		t.Errorf("second run = %v, %v; want reused", o, err)
	}
	requireUnchanged(t, dir, before)

	// A lost sa.pub is derived again from sa.key, byte for byte.
	removeFiles(t, pp)
	if o, err := EnsureServiceAccountKeys(dir, config.KeyRSA2048); err != nil || o != Created {
		t.Errorf("run without sa.pub = %v, %v; want created", o, err)
	}
	if b, _ := os.ReadFile(pp); string(b) != before["sa.pub"].Data {
		t.Error("the derived sa.pub differs from the original")
	}

	// A sa.pub of another key is a mismatch, left alone.
	other := filepath.Join(t.TempDir(), "other")
	if _, err := EnsureServiceAccountKeys(other, config.KeyECDSAP256); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(other, "sa.pub"))
	writeFile(t, pp, b, 0o644)
	before = snapshot(t, dir)
	_, err = EnsureServiceAccountKeys(dir, config.KeyRSA2048)
	if me := asMismatch(t, err); me.Path != pp {
		t.Errorf("mismatch path %s, want %s", me.Path, pp)
	}
	requireUnchanged(t, dir, before)

	// sa.pub without sa.key is an error, not a new pair.
	removeFiles(t, kp)
	if _, err := EnsureServiceAccountKeys(dir, config.KeyRSA2048); err == nil || !strings.Contains(err.Error(), "but not "+kp) {
		t.Errorf("sa.pub without sa.key: %v", err)
	}
	if _, err := os.Stat(kp); !errors.Is(err, fs.ErrNotExist) {
		t.Error("sa.key was created beside an existing sa.pub")
	}
}

// TestEnsureReissuesSANs: with ReissueSANs, a leaf whose only problem is a name the file
// added is signed again for the key it had, and only that leaf; any other problem is
// still the operator's to decide.
func TestEnsureReissuesSANs(t *testing.T) {
	c := testCluster(t, config.KeyECDSAP256)
	dir := newPKI(t, c)
	before := snapshot(t, dir)
	keyBefore, err := os.ReadFile(keyPath(dir, "apiserver"))
	if err != nil {
		t.Fatal(err)
	}
	p := testParams(c)
	p.Cluster.APIServer.CertSANs = append(p.Cluster.APIServer.CertSANs, "new-api.example.com")
	api, _ := Lookup(p.Cluster, NameAPIServer)

	var me *MismatchError
	if _, err := api.Ensure(dir, p); !errors.As(err, &me) {
		t.Fatalf("without ReissueSANs: %v, want a MismatchError", err)
	}
	p.ReissueSANs = true
	got := ensureAll(t, dir, p)
	for name, o := range got {
		want := Reused
		if name == NameAPIServer {
			want = Reissued
		}
		if o != want {
			t.Errorf("Ensure(%s) = %v, want %v", name, o, want)
		}
	}
	cert := mustReadCert(t, certPath(dir, "apiserver"))
	if !slices.Contains(cert.DNSNames, "new-api.example.com") {
		t.Errorf("the reissued certificate's names: %v", cert.DNSNames)
	}
	if keyAfter, _ := os.ReadFile(keyPath(dir, "apiserver")); !bytes.Equal(keyAfter, keyBefore) {
		t.Error("the key changed: a reissue keeps it")
	}
	if err := cert.CheckSignatureFrom(mustReadCert(t, certPath(dir, "ca"))); err != nil {
		t.Errorf("the reissued certificate is not signed by the CA: %v", err)
	}
	after := snapshot(t, dir)
	for path, st := range before {
		if path != "apiserver.crt" && after[path] != st {
			t.Errorf("%s changed", path)
		}
	}
	if got := ensureAll(t, dir, p)[NameAPIServer]; got != Reused {
		t.Errorf("a second run: %v, want reused", got)
	}

	// Another problem beside the names (the certificate expired): still refused.
	p.Now = func() time.Time { return testNow.Add(2 * 365 * 24 * time.Hour) }
	p.Cluster.APIServer.CertSANs = append(p.Cluster.APIServer.CertSANs, "newer.example.com")
	if _, err := api.Ensure(dir, p); !errors.As(err, &me) {
		t.Errorf("a reissue with another problem: %v, want a MismatchError", err)
	}
}
