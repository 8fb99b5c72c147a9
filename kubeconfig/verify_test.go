package kubeconfig

import (
	"bytes"
	"crypto/x509"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const (
	testCluster = "kubernetes"
	testServer  = "https://10.0.0.10:6443"
	testUser    = "system:node:cp1"
	testContext = testUser + "@" + testCluster
)

var testSpec = Spec{
	Name:         "kubelet",
	FileName:     "kubelet.conf",
	CommonName:   "system:node:cp1",
	Organization: []string{"system:nodes"},
}

// edit loads data, applies f and writes it back.
func edit(t *testing.T, data []byte, f func(*clientcmdapi.Config)) []byte {
	t.Helper()
	cfg, err := clientcmd.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	f(cfg)
	out, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestVerify(t *testing.T) {
	ca := newTestCA(t, "kubernetes")
	otherCA := newTestCA(t, "kubernetes")
	good := leafOpts{cn: testSpec.CommonName, orgs: testSpec.Organization}

	// build returns a kubeconfig for a certificate shaped by o and signed by signer.
	build := func(t *testing.T, signer *testCA, o leafOpts) []byte {
		t.Helper()
		certPEM, keyPEM := signer.issue(t, o)
		data, err := Build(testCluster, testServer, ca.certPEM, testUser, certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	valid := build(t, ca, good)
	// A kubelet.conf after client certificate rotation: both in one file, referred to by path.
	rotCert, rotKey := ca.issue(t, good)
	rotated := edit(t, valid, func(c *clientcmdapi.Config) {
		u := c.AuthInfos[testUser]
		u.ClientCertificateData, u.ClientKeyData = nil, nil
		u.ClientCertificate = "/var/lib/kubelet/pki/kubelet-client-current.pem"
		u.ClientKey = "/var/lib/kubelet/pki/kubelet-client-current.pem"
	})
	files := map[string][]byte{"/var/lib/kubelet/pki/kubelet-client-current.pem": append(append([]byte{}, rotCert...), rotKey...)}
	readFile := func(path string) ([]byte, error) {
		if b, ok := files[path]; ok {
			return b, nil
		}
		return nil, fs.ErrNotExist
	}
	_, otherKey := ca.issue(t, good)

	tests := []struct {
		name     string
		data     []byte
		server   string // default testServer
		cluster  string // default testCluster
		readFile ReadFileFunc
		want     []string // nil: the file matches
	}{
		{name: "valid", data: valid},
		{name: "valid rsa pkcs1 key", data: build(t, ca, leafOpts{cn: good.cn, orgs: good.orgs, rsaKey: true})},
		{name: "valid pkcs8 key", data: build(t, ca, leafOpts{cn: good.cn, orgs: good.orgs, keyType: "PRIVATE KEY"})},
		{name: "valid no extended key usage", data: build(t, ca, leafOpts{cn: good.cn, orgs: good.orgs, usages: []x509.ExtKeyUsage{}})},
		{name: "valid rotated kubelet certificate", data: rotated, readFile: readFile},
		{
			name: "rotated kubelet certificate without a file reader",
			data: rotated,
			want: []string{"client certificate is read from /var/lib/kubelet/pki/kubelet-client-current.pem, want it embedded"},
		},
		{
			name: "referenced file missing",
			data: edit(t, rotated, func(c *clientcmdapi.Config) {
				c.AuthInfos[testUser].ClientCertificate = "/nonexistent.pem"
			}),
			readFile: readFile,
			want:     []string{"reading client certificate from /nonexistent.pem: file does not exist"},
		},
		{
			name: "no current context",
			data: edit(t, valid, func(c *clientcmdapi.Config) { c.CurrentContext = "" }),
			want: []string{"has no current context"},
		},
		{
			name: "current context not defined",
			data: edit(t, valid, func(c *clientcmdapi.Config) { c.CurrentContext = "other" }),
			want: []string{`current context "other" is not defined`},
		},
		{
			name: "context cluster not defined",
			data: edit(t, valid, func(c *clientcmdapi.Config) { c.Contexts[testContext].Cluster = "other" }),
			want: []string{`context "system:node:cp1@kubernetes" names cluster "other", which is not defined`},
		},
		{
			name:    "cluster name",
			data:    valid,
			cluster: "prod",
			want:    []string{`cluster is named "kubernetes", want "prod"`},
		},
		{
			name:   "server",
			data:   valid,
			server: "https://lb:6443",
			want:   []string{`server is "https://10.0.0.10:6443", want "https://lb:6443"`},
		},
		{
			name: "no certificate authority",
			data: edit(t, valid, func(c *clientcmdapi.Config) { c.Clusters[testCluster].CertificateAuthorityData = nil }),
			want: []string{"has no certificate authority"},
		},
		{
			name: "certificate authority by path",
			data: edit(t, valid, func(c *clientcmdapi.Config) {
				c.Clusters[testCluster].CertificateAuthorityData = nil
				c.Clusters[testCluster].CertificateAuthority = "/etc/kubernetes/pki/ca.crt"
			}),
			want: []string{"certificate authority is read from /etc/kubernetes/pki/ca.crt, want it embedded"},
		},
		{
			name: "certificate authority unparseable",
			data: edit(t, valid, func(c *clientcmdapi.Config) { c.Clusters[testCluster].CertificateAuthorityData = []byte("junk") }),
			want: []string{"certificate authority cannot be parsed: no PEM certificate found"},
		},
		{
			name: "other certificate authority",
			data: edit(t, valid, func(c *clientcmdapi.Config) { c.Clusters[testCluster].CertificateAuthorityData = otherCA.certPEM }),
			want: []string{"certificate authority is not the cluster CA"},
		},
		{
			name: "user not defined",
			data: edit(t, valid, func(c *clientcmdapi.Config) { c.Contexts[testContext].AuthInfo = "other" }),
			want: []string{`context "system:node:cp1@kubernetes" names user "other", which is not defined`},
		},
		{
			name: "token user",
			data: edit(t, valid, func(c *clientcmdapi.Config) {
				c.AuthInfos[testUser] = &clientcmdapi.AuthInfo{Token: "abcdef.0123456789abcdef"}
			}),
			want: []string{"has no client certificate"},
		},
		{
			name: "client certificate unparseable",
			data: edit(t, valid, func(c *clientcmdapi.Config) { c.AuthInfos[testUser].ClientCertificateData = []byte("junk") }),
			want: []string{"client certificate cannot be parsed: no PEM certificate found"},
		},
		{
			name: "signed by another CA",
			data: build(t, otherCA, good),
			want: []string{"client certificate is not signed by the cluster CA"},
		},
		{
			name: "common name",
			data: build(t, ca, leafOpts{cn: "system:node:cp2", orgs: good.orgs}),
			want: []string{`client certificate common name is "system:node:cp2", want "system:node:cp1"`},
		},
		{
			name: "organization",
			data: build(t, ca, leafOpts{cn: good.cn, orgs: []string{"system:masters", "system:nodes"}}),
			want: []string{`client certificate organizations are ["system:masters" "system:nodes"], want ["system:nodes"]`},
		},
		{
			name: "expired",
			data: build(t, ca, leafOpts{cn: good.cn, orgs: good.orgs, notBefore: testNow.Add(-48 * time.Hour), notAfter: testNow.Add(-time.Second)}),
			want: []string{"client certificate expired at 2030-01-02T03:04:04Z"},
		},
		{
			name: "not yet valid",
			data: build(t, ca, leafOpts{cn: good.cn, orgs: good.orgs, notBefore: testNow.Add(time.Hour)}),
			want: []string{"client certificate is not valid before 2030-01-02T04:04:05Z"},
		},
		{
			name: "server-only certificate",
			data: build(t, ca, leafOpts{cn: good.cn, orgs: good.orgs, usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}),
			want: []string{"client certificate is not valid for client authentication"},
		},
		{
			name: "no client key",
			data: edit(t, valid, func(c *clientcmdapi.Config) { c.AuthInfos[testUser].ClientKeyData = nil }),
			want: []string{"has no client key"},
		},
		{
			name: "client key unparseable",
			data: edit(t, valid, func(c *clientcmdapi.Config) { c.AuthInfos[testUser].ClientKeyData = []byte("junk") }),
			want: []string{"client key cannot be parsed: no PEM private key found"},
		},
		{
			name: "client key of another certificate",
			data: edit(t, valid, func(c *clientcmdapi.Config) { c.AuthInfos[testUser].ClientKeyData = otherKey }),
			want: []string{"client key does not match the client certificate"},
		},
		{
			name:   "every problem at once",
			data:   edit(t, build(t, otherCA, leafOpts{cn: "admin", notAfter: testNow.Add(-time.Second), notBefore: testNow.Add(-48 * time.Hour)}), func(c *clientcmdapi.Config) { c.AuthInfos[testUser].ClientKeyData = otherKey }),
			server: "https://lb:6443",
			want: []string{
				`server is "https://10.0.0.10:6443", want "https://lb:6443"`,
				"client certificate is not signed by the cluster CA",
				`client certificate common name is "admin", want "system:node:cp1"`,
				`client certificate organizations are [], want ["system:nodes"]`,
				"client certificate expired at 2030-01-02T03:04:04Z",
				"client key does not match the client certificate",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			server, cluster := tc.server, tc.cluster
			if server == "" {
				server = testServer
			}
			if cluster == "" {
				cluster = testCluster
			}
			err := VerifyWithFiles(tc.data, cluster, server, ca.certPEM, testSpec, testNow, tc.readFile)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify() = %v, want nil", err)
				}
				return
			}
			var me *MismatchError
			if !errors.As(err, &me) {
				t.Fatalf("Verify() = %v, want a *MismatchError", err)
			}
			if me.File != "kubelet.conf" {
				t.Errorf("File = %q, want kubelet.conf", me.File)
			}
			if diff := cmp.Diff(tc.want, me.Problems); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestVerifyUnparseable(t *testing.T) {
	ca := newTestCA(t, "kubernetes")
	err := Verify([]byte("apiVersion: v1\nkind: Config\nclusters: [[["), testCluster, testServer, ca.certPEM, testSpec, testNow)
	var me *MismatchError
	if !errors.As(err, &me) {
		t.Fatalf("Verify() = %v, want a *MismatchError", err)
	}
	if len(me.Problems) != 1 || !strings.HasPrefix(me.Problems[0], "cannot be parsed: ") {
		t.Errorf("problems = %q, want one starting with %q", me.Problems, "cannot be parsed: ")
	}
}

func TestVerifyBadCA(t *testing.T) {
	err := Verify(nil, testCluster, testServer, []byte("junk"), testSpec, testNow)
	var me *MismatchError
	if err == nil || errors.As(err, &me) {
		t.Fatalf("Verify() with an unusable CA = %v, want a plain error", err)
	}
}

// TestBuildVerify checks that Build and Verify agree for every spec.
func TestBuildVerify(t *testing.T) {
	ca := newTestCA(t, "kubernetes")
	for _, spec := range Specs("cp1") {
		t.Run(spec.Name, func(t *testing.T) {
			certPEM, keyPEM := ca.issue(t, leafOpts{cn: spec.CommonName, orgs: spec.Organization})
			data, err := Build(testCluster, testServer, ca.certPEM, spec.CommonName, certPEM, keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			if err := Verify(data, testCluster, testServer, ca.certPEM, spec, testNow); err != nil {
				t.Errorf("Verify(Build()) = %v", err)
			}
		})
	}
}

func TestMismatchErrorMessage(t *testing.T) {
	ca := newTestCA(t, "kubernetes")
	certPEM, keyPEM := ca.issue(t, leafOpts{cn: "x"})
	data, err := Build(testCluster, testServer, ca.certPEM, "x", certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	err = Verify(data, testCluster, "https://lb:6443", ca.certPEM, testSpec, testNow)
	if err == nil {
		t.Fatal("want a mismatch")
	}
	msg := err.Error()
	want := `existing kubeconfig kubelet.conf does not match the cluster: server is "https://10.0.0.10:6443", want "https://lb:6443"; client certificate common name is "x", want "system:node:cp1"; `
	if !strings.HasPrefix(msg, want) {
		t.Errorf("Error() = %q, want it to start with %q", msg, want)
	}
	// No key material may reach an error message.
	for _, secret := range [][]byte{keyPEM, certPEM} {
		for line := range bytes.Lines(secret) {
			l := strings.TrimSpace(string(line))
			if !strings.HasPrefix(l, "-----") && strings.Contains(msg, l) {
				t.Errorf("error message contains PEM data %q", l)
			}
		}
	}
}
