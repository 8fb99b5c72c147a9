package certs

import (
	"errors"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kforge/kforge/config"
)

// TestRenewKeepsKeysAndTakesNamesFromConfigNow renews every leaf a month later, after a
// name was added to apiserver.cert_sans: each certificate is new (serial, validity from
// now), for the key it had, with the names the configuration gives now; keys and CAs are
// untouched.
func TestRenewKeepsKeysAndTakesNamesFromConfigNow(t *testing.T) {
	for _, alg := range []string{config.KeyECDSAP256, config.KeyRSA2048} {
		t.Run(alg, func(t *testing.T) {
			c := testCluster(t, alg)
			dir := newPKI(t, c)
			before := snapshot(t, dir)
			c.APIServer.CertSANs = append(c.APIServer.CertSANs, "new.example.com", "10.9.9.9")
			p := testParams(c)
			later := testNow.Add(30 * 24 * time.Hour)
			p.Now = func() time.Time { return later }
			for _, s := range Table(c) {
				if s.IsCA {
					continue
				}
				old := mustReadCert(t, s.CertPath(dir))
				r, err := s.Renew(dir, p)
				if err != nil {
					t.Fatalf("Renew(%s): %v", s.Name, err)
				}
				got := mustReadCert(t, s.CertPath(dir))
				if got.SerialNumber.Cmp(old.SerialNumber) == 0 {
					t.Errorf("%s: serial unchanged", s.Name)
				}
				if want := later.Add(c.Certificates.CertValidity.Duration); !got.NotAfter.Equal(want) || !r.NotAfter.Equal(want) {
					t.Errorf("%s: NotAfter %s (reported %s), want %s", s.Name, got.NotAfter, r.NotAfter, want)
				}
				if err := CheckPair(got, mustReadKey(t, s.KeyPath(dir))); err != nil {
					t.Errorf("%s: renewed certificate is not for the key it had: %v", s.Name, err)
				}
				// What Ensure would accept: names, usages, signer, subject.
				if o, err := s.Ensure(dir, p); err != nil || o != Reused {
					t.Errorf("%s: Ensure after Renew = %v, %v; want reused", s.Name, o, err)
				}
				if s.Name == NameAPIServer {
					if !slices.Contains(got.DNSNames, "new.example.com") || !slices.ContainsFunc(got.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.ParseIP("10.9.9.9")) }) {
						t.Errorf("apiserver SANs %v %v lack the names added to the file", got.DNSNames, got.IPAddresses)
					}
				}
			}
			after := snapshot(t, dir)
			for path, st := range before {
				if strings.HasSuffix(path, ".crt") && !strings.HasSuffix(path, "ca.crt") {
					continue
				}
				if after[path].Data != st.Data {
					t.Errorf("%s changed; renewal writes only leaf certificates", path)
				}
			}
		})
	}
}

func TestRenewRefusesCAs(t *testing.T) {
	c := testCluster(t, config.KeyECDSAP256)
	dir := newPKI(t, c)
	before := snapshot(t, dir)
	for _, s := range Table(c) {
		if !s.IsCA {
			continue
		}
		_, err := s.Renew(dir, testParams(c))
		if !errors.Is(err, ErrCANotRenewed) {
			t.Errorf("Renew(%s) = %v, want ErrCANotRenewed", s.Name, err)
		}
	}
	requireUnchanged(t, dir, before)
}

// TestRenewRefusesAShortLivedCA: a CA that has expired, or expires before the renewed
// certificate would, stops the renewal with how long it has left; nothing is written.
func TestRenewRefusesAShortLivedCA(t *testing.T) {
	c := testCluster(t, config.KeyECDSAP256)
	dir := newPKI(t, c)
	caCert := mustReadCert(t, certPath(dir, "ca"))
	before := snapshot(t, dir)
	s, _ := Lookup(c, NameAPIServer)
	for _, tc := range []struct {
		name string
		now  time.Time
		want []string
	}{
		{"expired", caCert.NotAfter.Add(49 * time.Hour), []string{"expired on", "2d 1h ago", "never replaces a CA"}},
		{"expires first", caCert.NotAfter.Add(-100 * 24 * time.Hour), []string{"expires on", "in 100d 0h", "lower certificates.cert_validity below 100d 0h"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testParams(c)
			p.Now = func() time.Time { return tc.now }
			_, err := s.Renew(dir, p)
			if err == nil {
				t.Fatal("Renew succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			requireUnchanged(t, dir, before)
		})
	}
}

// TestRenewExternalCA: without ca.key, the leaves of the cluster CA are not renewed
// (ErrExternalCA) while those of the front-proxy and etcd CAs, whose keys are here, are.
func TestRenewExternalCA(t *testing.T) {
	c := testCluster(t, config.KeyECDSAP256)
	dir := newPKI(t, c)
	removeFiles(t, keyPath(dir, "ca"))
	for _, s := range Table(c) {
		if s.IsCA {
			continue
		}
		old, _ := os.ReadFile(s.CertPath(dir))
		_, err := s.Renew(dir, testParams(c))
		now, _ := os.ReadFile(s.CertPath(dir))
		if s.CA == NameCA {
			if !errors.Is(err, ErrExternalCA) {
				t.Errorf("Renew(%s) = %v, want ErrExternalCA", s.Name, err)
			}
			if string(old) != string(now) {
				t.Errorf("%s was written", s.Name)
			}
			continue
		}
		if err != nil {
			t.Errorf("Renew(%s): %v", s.Name, err)
		}
		if string(old) == string(now) {
			t.Errorf("%s was not renewed", s.Name)
		}
	}
}

// TestRenewHalfPair: a certificate whose file is gone (or is not the key's, as a killed
// init leaves it) is renewed for the key on disk, which makes the pair whole again; a
// missing key is an error that says how to create the pair.
func TestRenewHalfPair(t *testing.T) {
	c := testCluster(t, config.KeyECDSAP256)
	dir := newPKI(t, c)
	s, _ := Lookup(c, NameAPIServerKubeletClient)
	removeFiles(t, s.CertPath(dir))
	if _, err := s.Renew(dir, testParams(c)); err != nil {
		t.Fatalf("Renew with the certificate missing: %v", err)
	}
	if err := CheckPair(mustReadCert(t, s.CertPath(dir)), mustReadKey(t, s.KeyPath(dir))); err != nil {
		t.Errorf("pair after renewal: %v", err)
	}
	removeFiles(t, s.KeyPath(dir))
	if _, err := s.Renew(dir, testParams(c)); err == nil || !strings.Contains(err.Error(), "init phase certs/"+s.Name) {
		t.Errorf("Renew with the key missing = %v, want an error naming the init phase", err)
	}
}

func TestRoundDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		400*24*time.Hour + 3*time.Hour: "400d 3h",
		5*time.Hour + 7*time.Minute:    "5h 7m",
		42 * time.Minute:               "42m",
	} {
		if got := RoundDuration(d); got != want {
			t.Errorf("RoundDuration(%s) = %q, want %q", d, got, want)
		}
	}
}
