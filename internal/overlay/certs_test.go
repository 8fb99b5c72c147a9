package overlay

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kforge/kforge/internal/testutil"
)

// TestCertificateChangesDiffWhatTheySay: a certificate signed again with a new name shows
// the name and the serial in its diff, not lines of base64.
func TestCertificateChangesDiffWhatTheySay(t *testing.T) {
	ca := testutil.NewCA(t, "kubernetes", time.Hour)
	before, _ := ca.Leaf("kube-apiserver", net.IPv4(10, 0, 0, 1))
	after, _ := ca.Leaf("kube-apiserver", net.IPv4(10, 0, 0, 1), net.IPv4(10, 0, 0, 9))
	base, scratch := t.TempDir(), t.TempDir()
	write(t, base+"/pki/apiserver.crt", string(before), 0o644)
	o := New(base, scratch)
	write(t, o.Path("/pki/apiserver.crt"), string(after), 0o644)
	changes, err := o.Changes()
	if err != nil || len(changes) != 1 {
		t.Fatalf("changes = %+v, %v", changes, err)
	}
	d := changes[0].Diff
	for _, want := range []string{"+  IP: 10.0.0.9", "-  serial: 2", "+  serial: 3", "   IP: 10.0.0.1", " certificate CN=kube-apiserver"} {
		if !strings.Contains(d, want) {
			t.Errorf("the diff lacks %q:\n%s", want, d)
		}
	}
	if strings.Contains(d, "BEGIN CERTIFICATE") {
		t.Errorf("the diff shows PEM:\n%s", d)
	}
	if _, ok := describeCerts([]byte("apiVersion: v1\n")); ok {
		t.Error("a YAML file was taken for a certificate")
	}
}
