package phases

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/kubelet"
)

// TestCertsRenewKubeletClient: `certs renew` mints the kubelet a new client certificate
// from the CA only once the one it has expired, lays it out as the kubelet rotates it (a
// timestamped file and the link), restarts the kubelet, and then, run again, changes
// nothing.
func TestCertsRenewKubeletClient(t *testing.T) {
	issued := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	for _, tc := range []struct {
		name string
		now  time.Time // the clock of the renewal
		// renewed says a new certificate is expected.
		renewed bool
	}{
		{name: "valid: left to the kubelet's rotation", now: issued.Add(30 * time.Minute), renewed: false},
		{name: "expired a minute ago", now: issued.Add(time.Hour + time.Minute), renewed: true},
		{name: "expired a year ago", now: issued.Add(365 * 24 * time.Hour), renewed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			d := initHost(t)
			d.Out = NewPrinter(&out)
			caCert, caKey, err := certs.LoadCA(d.Path(d.CertDir), "ca")
			if err != nil {
				t.Fatal(err)
			}
			certPEM, keyPEM, err := certs.NewClientCert(caCert, caKey, certs.ClientRequest{CommonName: "system:node:cp1",
				Organization: []string{"system:nodes"}, Validity: time.Hour, KeyAlgorithm: d.Cluster.Certificates.KeyAlgorithm, Now: func() time.Time { return issued }})
			if err != nil {
				t.Fatal(err)
			}
			d.Now = func() time.Time { return tc.now }
			seed := func() ([]byte, error) { return append(certPEM, keyPEM...), nil }
			if err := layOutKubeletClientCert(d, seed); err != nil {
				t.Fatal(err)
			}
			oldTarget, _ := os.Readlink(d.Path(kubelet.ClientCertPath))
			out.Reset()
			if err := renew(t, d, KubeletClientTarget); err != nil {
				t.Fatal(err)
			}
			target, err := os.Readlink(d.Path(kubelet.ClientCertPath))
			if err != nil {
				t.Fatalf("%s is no longer a link: %v", kubelet.ClientCertPath, err)
			}
			if got := target != oldTarget; got != tc.renewed {
				t.Fatalf("link changed from %s to %s: renewed = %v, want %v\n%s", oldTarget, target, got, tc.renewed, out.String())
			}
			restarted := bytes.Contains(out.Bytes(), []byte("restarted the kubelet"))
			if restarted != tc.renewed {
				t.Errorf("kubelet restarted = %v, want %v\n%s", restarted, tc.renewed, out.String())
			}
			if !tc.renewed {
				return
			}
			pair, err := os.ReadFile(d.Path(filepath.Join(kubelet.CertDir, target)))
			if err != nil {
				t.Fatal(err)
			}
			cert, err := certs.ParseCertPEM(pair)
			if err != nil {
				t.Fatal(err)
			}
			key, err := certs.ParseKeyPEM(pair)
			if err != nil {
				t.Fatalf("the new file holds no key: %v", err)
			}
			if err := certs.CheckPair(cert, key); err != nil {
				t.Error(err)
			}
			got := struct {
				CN   string
				Org  []string
				Name string
			}{cert.Subject.CommonName, cert.Subject.Organization, target}
			want := struct {
				CN   string
				Org  []string
				Name string
			}{"system:node:cp1", []string{"system:nodes"}, kubelet.ClientCertFileName(cert.NotBefore)}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("new certificate (-want +got):\n%s", diff)
			}
			if !tc.now.Before(cert.NotAfter) {
				t.Errorf("the new certificate expires %s, not after the renewal's clock %s", cert.NotAfter, tc.now)
			}
			if _, err := os.Stat(d.Path(filepath.Join(kubelet.CertDir, oldTarget))); err != nil {
				t.Errorf("the expired file was removed: %v", err)
			}
			// Run again: the certificate is valid now, nothing changes.
			out.Reset()
			if err := renew(t, d, KubeletClientTarget); err != nil {
				t.Fatal(err)
			}
			if again, _ := os.Readlink(d.Path(kubelet.ClientCertPath)); again != target || len(d.Renew.Renewed) != 0 {
				t.Errorf("second run changed the link to %s or renewed %v", again, d.Renew.Renewed)
			}
		})
	}
}
