package certs

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io/fs"
	"log"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kforge/kforge/config"
)

func TestTable(t *testing.T) {
	local := testCluster(t, config.KeyECDSAP256)
	external := testCluster(t, config.KeyECDSAP256)
	external.Etcd.Local = nil
	external.Etcd.External = &config.ExternalEtcd{Endpoints: []string{"https://etcd:2379"}}

	tests := []struct {
		name string
		c    *config.Cluster
		want []string // name=basename<-ca
	}{
		{"local etcd", local, []string{
			"ca=ca", "apiserver=apiserver<-ca", "apiserver-kubelet-client=apiserver-kubelet-client<-ca",
			"front-proxy-ca=front-proxy-ca", "front-proxy-client=front-proxy-client<-front-proxy-ca",
			"etcd-ca=etcd/ca", "etcd-server=etcd/server<-etcd-ca", "etcd-peer=etcd/peer<-etcd-ca",
			"etcd-healthcheck-client=etcd/healthcheck-client<-etcd-ca", "apiserver-etcd-client=apiserver-etcd-client<-etcd-ca",
		}},
		{"external etcd", external, []string{
			"ca=ca", "apiserver=apiserver<-ca", "apiserver-kubelet-client=apiserver-kubelet-client<-ca",
			"front-proxy-ca=front-proxy-ca", "front-proxy-client=front-proxy-client<-front-proxy-ca",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			table := Table(tc.c)
			var got []string
			seen := map[string]bool{}
			for _, s := range table {
				e := s.Name + "=" + s.BaseName
				if s.CA != "" {
					e += "<-" + s.CA
				}
				got = append(got, e)
				if s.IsCA != (s.CA == "") {
					t.Errorf("%s: IsCA %v with CA %q", s.Name, s.IsCA, s.CA)
				}
				if s.CA != "" && !seen[s.CA] {
					t.Errorf("%s comes before its CA %s", s.Name, s.CA)
				}
				seen[s.Name] = true
				if s.Desc == "" || !strings.HasPrefix(s.Desc, "Generate ") || strings.HasSuffix(s.Desc, ".") {
					t.Errorf("%s: description %q is not one imperative line", s.Name, s.Desc)
				}
				if !s.IsCA && !s.Server && !s.Client {
					t.Errorf("%s has no usage", s.Name)
				}
				if (s.CommonName == "") != s.NodeNameCN {
					t.Errorf("%s: CommonName %q with NodeNameCN %v", s.Name, s.CommonName, s.NodeNameCN)
				}
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("table (-want +got):\n%s", d)
			}
		})
	}
}

func TestSANs(t *testing.T) {
	ips := func(s ...string) []net.IP {
		var out []net.IP
		for _, x := range s {
			out = append(out, net.ParseIP(x))
		}
		return out
	}
	tests := []struct {
		name string
		spec string
		mod  func(c *config.Cluster)
		want AltNames
	}{
		{
			name: "apiserver with a DNS endpoint and extra SANs",
			spec: NameAPIServer,
			want: AltNames{
				DNSNames: []string{"cp-1", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
					"kubernetes.default.svc.cluster.local", "lb.example.com", "extra.example.com"},
				IPs: ips("10.96.0.1", "192.168.1.10", "10.0.0.100"),
			},
		},
		{
			name: "apiserver with an IP endpoint, custom domain and service CIDR",
			spec: NameAPIServer,
			mod: func(c *config.Cluster) {
				c.ControlPlaneEndpoint = "[2001:db8::1]:443"
				c.Networking.DNSDomain = "corp.internal"
				c.Networking.ServiceCIDR = "172.20.0.0/16"
				c.APIServer.CertSANs = []string{"192.168.1.10", "KUBERNETES"} // duplicates are dropped
			},
			want: AltNames{
				DNSNames: []string{"cp-1", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
					"kubernetes.default.svc.corp.internal"},
				IPs: ips("172.20.0.1", "192.168.1.10", "2001:db8::1"),
			},
		},
		{
			name: "etcd server",
			spec: NameEtcdServer,
			want: AltNames{DNSNames: []string{"cp-1", "localhost", "etcd.example.com"}, IPs: ips("192.168.1.10", "127.0.0.1", "::1")},
		},
		{
			name: "etcd peer",
			spec: NameEtcdPeer,
			want: AltNames{DNSNames: []string{"cp-1", "localhost"}, IPs: ips("192.168.1.10", "127.0.0.1", "::1", "192.168.50.5")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testCluster(t, config.KeyECDSAP256)
			if tc.mod != nil {
				tc.mod(c)
			}
			s, _ := Lookup(c, tc.spec)
			got, err := s.SANs(testParams(c))
			if err != nil {
				t.Fatal(err)
			}
			ipEqual := cmp.Comparer(func(a, b net.IP) bool { return a.Equal(b) })
			if d := cmp.Diff(tc.want, got, ipEqual); d != "" {
				t.Errorf("SANs (-want +got):\n%s", d)
			}
		})
	}
}

func TestPinHash(t *testing.T) {
	for _, alg := range []string{config.KeyECDSAP256, config.KeyRSA2048} {
		t.Run(alg, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "pki")
			c := testCluster(t, alg)
			s, _ := Lookup(c, NameCA)
			if _, err := s.Ensure(dir, testParams(c)); err != nil {
				t.Fatal(err)
			}
			cert := mustReadCert(t, s.CertPath(dir))
			got := PinHash(cert)

			// Independently: re-encode the public key as SubjectPublicKeyInfo and hash it.
			der, err := x509.MarshalPKIXPublicKey(cert.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(der)
			if want := "sha256:" + hex.EncodeToString(sum[:]); got != want {
				t.Errorf("PinHash = %s, want %s", got, want)
			}
			b, err := ParsePin(got)
			if err != nil || !bytes.Equal(b, sum[:]) {
				t.Errorf("ParsePin(PinHash) = %x, %v; want %x", b, err, sum)
			}

			if _, err := exec.LookPath("openssl"); err != nil {
				t.Skip("openssl is not installed, so the pin is not cross-checked with it")
			}
			// openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256sum
			pub, err := exec.Command("openssl", "x509", "-in", s.CertPath(dir), "-noout", "-pubkey").Output()
			if err != nil {
				t.Fatalf("openssl x509 -pubkey: %v", err)
			}
			cmd := exec.Command("openssl", "pkey", "-pubin", "-outform", "der")
			cmd.Stdin = bytes.NewReader(pub)
			pubDER, err := cmd.Output()
			if err != nil {
				t.Fatalf("openssl pkey: %v", err)
			}
			osum := sha256.Sum256(pubDER)
			if want := "sha256:" + hex.EncodeToString(osum[:]); got != want {
				t.Errorf("PinHash = %s, openssl gives %s", got, want)
			}
		})
	}
}

func TestParsePin(t *testing.T) {
	const h = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	want, _ := hex.DecodeString(h)
	tests := []struct {
		in      string
		want    []byte
		wantErr string
	}{
		{in: "sha256:" + h, want: want},
		{in: "sha256:" + strings.ToUpper(h), want: want},
		{in: h, wantErr: `has no hash type: want "sha256:" followed by 64 hex digits`},
		{in: "", wantErr: "has no hash type"},
		{in: "SHA256:" + h, wantErr: `uses hash type "SHA256": only "sha256" is supported`},
		{in: "sha1:0123456789abcdef0123456789abcdef01234567", wantErr: `uses hash type "sha1"`},
		{in: "sha256:" + h[:62], wantErr: `has 62 characters after "sha256:": want 64 hex digits`},
		{in: "sha256:" + h + "00", wantErr: "has 66 characters"},
		{in: "sha256: " + h[1:], wantErr: `is not hex after "sha256:"`},
		{in: "sha256:" + h[:63] + "g", wantErr: "is not hex"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePin(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParsePin(%q) = %x, %v; want an error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("ParsePin (-want +got):\n%s", d)
			}
		})
	}
}

func FuzzParsePin(f *testing.F) {
	for _, s := range []string{
		"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
		"sha256:", "sha256", ":", "", "md5:00", "sha256:zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParsePin(s)
		if err != nil {
			if b != nil {
				t.Errorf("ParsePin(%q) returned bytes with an error", s)
			}
			if err.Error() == "" {
				t.Errorf("empty error for %q", s)
			}
			return
		}
		if len(b) != sha256.Size {
			t.Fatalf("ParsePin(%q) = %d bytes, want %d", s, len(b), sha256.Size)
		}
		canon := "sha256:" + hex.EncodeToString(b)
		if canon != strings.ToLower(s) || !strings.HasPrefix(s, "sha256:") {
			t.Fatalf("ParsePin(%q) accepted a pin whose canonical form is %q", s, canon)
		}
		b2, err := ParsePin(canon)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("round trip of %q: %x, %v", canon, b2, err)
		}
	})
}

func TestLoadCAAndNewClientCert(t *testing.T) {
	c := testCluster(t, config.KeyECDSAP256)
	dir := newPKI(t, c)

	if _, _, err := LoadCA(dir, "no-such-ca"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadCA of a missing CA: %v, want fs.ErrNotExist", err)
	}
	if _, _, err := LoadCA(dir, "apiserver"); err == nil || !strings.Contains(err.Error(), "is not a CA certificate") {
		t.Errorf("LoadCA of a leaf: %v", err)
	}
	caCert, caKey := mustLoadCA(t, dir, "ca")

	certPEM, keyPEM, err := NewClientCert(caCert, caKey, ClientRequest{
		CommonName:   "kubernetes-admin",
		Organization: []string{"kubeadm:cluster-admins"},
		Validity:     365 * 24 * time.Hour,
		KeyAlgorithm: config.KeyRSA2048,
		Now:          func() time.Time { return testNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckPair(cert, key); err != nil {
		t.Error(err)
	}
	type view struct {
		CN, O     string
		EKU       []x509.ExtKeyUsage
		SANs      int
		IsCA      bool
		NotBefore time.Time
		NotAfter  time.Time
	}
	got := view{cert.Subject.CommonName, strings.Join(cert.Subject.Organization, ","), cert.ExtKeyUsage,
		len(cert.DNSNames) + len(cert.IPAddresses), cert.IsCA, cert.NotBefore, cert.NotAfter}
	want := view{"kubernetes-admin", "kubeadm:cluster-admins", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		0, false, testNow.Add(-5 * time.Minute), testNow.Add(365 * 24 * time.Hour)}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("client certificate (-want +got):\n%s", d)
	}
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate does not verify: %v", err)
	}

	// Clamped to the CA's expiry.
	certPEM, _, err = NewClientCert(caCert, caKey, ClientRequest{
		CommonName: "system:node:cp-1", Organization: []string{"system:nodes"},
		Validity: 100 * 365 * 24 * time.Hour, KeyAlgorithm: config.KeyECDSAP256,
	})
	if err != nil {
		t.Fatal(err)
	}
	if cert, _ := ParseCertPEM(certPEM); !cert.NotAfter.Equal(caCert.NotAfter) {
		t.Errorf("NotAfter %s, want the CA's %s", cert.NotAfter, caCert.NotAfter)
	}

	for name, req := range map[string]ClientRequest{
		"no common name": {Validity: time.Hour, KeyAlgorithm: config.KeyECDSAP256},
		"no validity":    {CommonName: "x", KeyAlgorithm: config.KeyECDSAP256},
		"bad algorithm":  {CommonName: "x", Validity: time.Hour, KeyAlgorithm: "ed448"},
	} {
		if _, _, err := NewClientCert(caCert, caKey, req); err == nil {
			t.Errorf("%s: NewClientCert succeeded", name)
		}
	}
}

func TestParsePEM(t *testing.T) {
	c := testCluster(t, config.KeyECDSAP256)
	dir := newPKI(t, c)
	certPEM, _ := os.ReadFile(certPath(dir, "ca"))
	keyPEM, _ := os.ReadFile(keyPath(dir, "ca"))

	// Keys in PKCS#8 and with openssl's EC PARAMETERS block first parse too.
	k := mustReadKey(t, keyPath(dir, "ca"))
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8 := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	params := "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"

	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"sec1": string(keyPEM), "pkcs8": pkcs8, "with ec parameters": params + string(keyPEM)} {
		key, err := ParseKeyPEM([]byte(data))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if err := CheckPair(cert, key); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, data := range map[string]string{"empty": "", "cert as key": string(certPEM), "garbage": "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"} {
		if _, err := ParseKeyPEM([]byte(data)); err == nil {
			t.Errorf("ParseKeyPEM(%s) succeeded", name)
		}
	}
	if _, err := ParseCertPEM(keyPEM); err == nil {
		t.Error("ParseCertPEM of a key succeeded")
	}
	other := mustReadKey(t, keyPath(dir, "front-proxy-ca"))
	if err := CheckPair(cert, other); err == nil {
		t.Error("CheckPair accepted another CA's key")
	}
}

func TestExpiration(t *testing.T) {
	c := testCluster(t, config.KeyECDSAP256)
	dir := newPKI(t, c)
	removeFiles(t, keyPath(dir, "front-proxy-ca"), certPath(dir, "etcd/peer"), keyPath(dir, "etcd/peer"))
	rows, err := Expiration(dir, c)
	if err != nil {
		t.Fatal(err)
	}
	leaf, ca := testNow.Add(365*24*time.Hour), testNow.Add(10*365*24*time.Hour)
	p := func(base string) string { return certPath(dir, base) }
	want := []ExpiryRow{
		{Name: "ca", Path: p("ca"), NotAfter: ca},
		{Name: "apiserver", Path: p("apiserver"), NotAfter: leaf, Signer: "ca"},
		{Name: "apiserver-kubelet-client", Path: p("apiserver-kubelet-client"), NotAfter: leaf, Signer: "ca"},
		{Name: "front-proxy-ca", Path: p("front-proxy-ca"), NotAfter: ca, External: true},
		{Name: "front-proxy-client", Path: p("front-proxy-client"), NotAfter: leaf, Signer: "front-proxy-ca", External: true},
		{Name: "etcd-ca", Path: p("etcd/ca"), NotAfter: ca},
		{Name: "etcd-server", Path: p("etcd/server"), NotAfter: leaf, Signer: "etcd-ca"},
		{Name: "etcd-peer", Path: p("etcd/peer"), Signer: "etcd-ca", Missing: true},
		{Name: "etcd-healthcheck-client", Path: p("etcd/healthcheck-client"), NotAfter: leaf, Signer: "etcd-ca"},
		{Name: "apiserver-etcd-client", Path: p("apiserver-etcd-client"), NotAfter: leaf, Signer: "etcd-ca"},
	}
	if d := cmp.Diff(want, rows); d != "" {
		t.Errorf("Expiration (-want +got):\n%s", d)
	}
}

// TestOpenSSLVerify checks the generated chains with a second, independent implementation.
func TestOpenSSLVerify(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed, so the chains are not cross-checked with it")
	}
	for _, alg := range []string{config.KeyECDSAP256, config.KeyRSA2048} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			c := testCluster(t, alg)
			p := testParams(c)
			p.Now = nil // openssl checks validity against the real clock
			dir := filepath.Join(t.TempDir(), "pki")
			ensureAll(t, dir, p)
			for _, s := range Table(c) {
				ca := s
				if !s.IsCA {
					ca, _ = Lookup(c, s.CA)
				}
				var purposes []string
				if s.Server {
					purposes = append(purposes, "sslserver")
				}
				if s.Client {
					purposes = append(purposes, "sslclient")
				}
				if s.IsCA {
					purposes = append(purposes, "any")
				}
				for _, purpose := range purposes {
					out, err := exec.Command("openssl", "verify", "-purpose", purpose, "-CAfile", ca.CertPath(dir), s.CertPath(dir)).CombinedOutput()
					if err != nil {
						t.Errorf("openssl verify -purpose %s %s: %v\n%s", purpose, s.Name, err, out)
					}
				}
				// And against the wrong CA it must fail.
				if !s.IsCA {
					wrong, _ := Lookup(c, NameFrontProxyCA)
					if s.CA == NameFrontProxyCA {
						wrong, _ = Lookup(c, NameCA)
					}
					if out, err := exec.Command("openssl", "verify", "-CAfile", wrong.CertPath(dir), s.CertPath(dir)).CombinedOutput(); err == nil {
						t.Errorf("openssl verifies %s against %s:\n%s", s.Name, wrong.Name, out)
					}
				}
			}
		})
	}
}

// TestNothingLogged checks that minting writes nothing to the standard logger (cfssl's
// default output) and that no key material reaches slog.
func TestNothingLogged(t *testing.T) {
	var std, structured bytes.Buffer
	log.SetOutput(&std)
	defer log.SetOutput(os.Stderr)
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&structured, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(prev)

	c := testCluster(t, config.KeyECDSAP256)
	dir := newPKI(t, c)
	// Provoke errors inside cfssl too.
	caCert, caKey := mustLoadCA(t, dir, "ca")
	_, _, _ = NewClientCert(caCert, caKey, ClientRequest{CommonName: "x", Validity: time.Hour, KeyAlgorithm: "rsa-1"})

	if std.Len() > 0 {
		t.Errorf("the standard logger got:\n%s", std.String())
	}
	if strings.Contains(structured.String(), "PRIVATE KEY") {
		t.Errorf("slog got key material:\n%s", structured.String())
	}
}

func TestOutcomeString(t *testing.T) {
	got := []string{Created.String(), Reused.String(), External.String(), Outcome(0).String()}
	want := []string{"created", "reused", "external", "Outcome(0)"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// TestEarliest: the certificate that expires first, missing ones left out.
func TestEarliest(t *testing.T) {
	day := func(n int) time.Time { return testNow.Add(time.Duration(n) * 24 * time.Hour) }
	for _, tc := range []struct {
		name   string
		rows   []ExpiryRow
		want   string
		wantOK bool
	}{
		{name: "none"},
		{name: "only missing", rows: []ExpiryRow{{Name: "ca", Missing: true}}},
		{name: "first of several", wantOK: true, want: "apiserver", rows: []ExpiryRow{
			{Name: "ca", NotAfter: day(3650)}, {Name: "etcd-peer", Missing: true},
			{Name: "apiserver", NotAfter: day(30)}, {Name: "front-proxy-client", NotAfter: day(31)},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Earliest(tc.rows)
			if ok != tc.wantOK || got.Name != tc.want {
				t.Errorf("Earliest = %q, %v; want %q, %v", got.Name, ok, tc.want, tc.wantOK)
			}
		})
	}
}
