package kubeconfig

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/client-go/tools/clientcmd"
)

// TestWithClientCertKeepsTheRest replaces the client certificate of a kubeconfig and
// checks that only it changed: server, CA, user, contexts and key are kept.
func TestWithClientCertKeepsTheRest(t *testing.T) {
	ca := newTestCA(t, "kubernetes")
	certPEM, keyPEM := ca.issue(t, leafOpts{cn: AdminUser, orgs: []string{AdminGroup}})
	data, err := Build("prod", "https://lb.example.com:6443", ca.certPEM, AdminUser, certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	gotCert, gotKey, err := ClientCert(data)
	if err != nil {
		t.Fatal(err)
	}
	if string(gotCert) != string(certPEM) || string(gotKey) != string(keyPEM) {
		t.Fatal("ClientCert did not return the embedded certificate and key")
	}
	newPEM, _ := ca.issue(t, leafOpts{cn: AdminUser, orgs: []string{AdminGroup}})
	out, err := WithClientCert(data, newPEM)
	if err != nil {
		t.Fatal(err)
	}
	before, err := clientcmd.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	after, err := clientcmd.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(after.AuthInfos[AdminUser].ClientCertificateData) != string(newPEM) {
		t.Error("the client certificate was not replaced")
	}
	before.AuthInfos[AdminUser].ClientCertificateData = newPEM
	if d := cmp.Diff(before, after); d != "" {
		t.Errorf("something besides the client certificate changed (-want +got):\n%s", d)
	}
}

func TestClientCertNeedsAnEmbeddedCert(t *testing.T) {
	ca := newTestCA(t, "kubernetes")
	data, err := BuildWithToken("prod", "https://lb.example.com:6443", ca.certPEM, BootstrapUser, "abcdef.0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ClientCert(data); !errors.Is(err, ErrNoEmbeddedCert) {
		t.Errorf("ClientCert of a token kubeconfig = %v, want ErrNoEmbeddedCert", err)
	}
	if _, err := WithClientCert(data, []byte("x")); !errors.Is(err, ErrNoEmbeddedCert) {
		t.Errorf("WithClientCert of a token kubeconfig = %v, want ErrNoEmbeddedCert", err)
	}
}
