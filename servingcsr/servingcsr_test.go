package servingcsr

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"net"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// request is what a test CSR asks for.
type request struct {
	cn     string
	org    []string
	ou     []string
	dns    []string
	ips    []string
	emails []string
	uris   []string
}

// kubeletRequest is what the kubelet of node w1 asks for.
func kubeletRequest() request {
	return request{cn: "system:node:w1", org: []string{"system:nodes"}, dns: []string{"w1"}, ips: []string{"10.0.0.21"}}
}

func pemRequest(t *testing.T, r request) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: r.cn, Organization: r.org, OrganizationalUnit: r.ou},
		DNSNames:       r.dns,
		EmailAddresses: r.emails,
	}
	for _, ip := range r.ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	for _, u := range r.uris {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func servingCSR(t *testing.T, user string, r request) *certificatesv1.CertificateSigningRequest {
	t.Helper()
	return &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "csr-1"},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    pemRequest(t, r),
			SignerName: certificatesv1.KubeletServingSignerName,
			Username:   user,
			Groups:     []string{"system:nodes", "system:authenticated"},
			Usages:     []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth},
		},
	}
}

func node(name string, addrs ...corev1.NodeAddress) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Addresses: addrs}}
}

func testNodes() map[string]*corev1.Node {
	return map[string]*corev1.Node{
		"w1": node("w1",
			corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.0.0.21"},
			corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "203.0.113.21"},
			corev1.NodeAddress{Type: corev1.NodeHostName, Address: "w1"},
			corev1.NodeAddress{Type: corev1.NodeInternalDNS, Address: "w1.internal.example"}),
		"w2": node("w2",
			corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.0.0.22"},
			corev1.NodeAddress{Type: corev1.NodeHostName, Address: "w2"}),
	}
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name string
		// edit changes the kubelet's own CSR of w1 (nil: leave it).
		edit        func(t *testing.T, c *certificatesv1.CertificateSigningRequest)
		wantVerdict Verdict
		wantReason  string // a substring of the reason
	}{
		{name: "the kubelet's own request", wantVerdict: Approve, wantReason: "Node w1's own names"},
		{
			name: "key encipherment too (an RSA key, an older kubelet)",
			edit: func(_ *testing.T, c *certificatesv1.CertificateSigningRequest) {
				c.Spec.Usages = []certificatesv1.KeyUsage{certificatesv1.UsageServerAuth, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageDigitalSignature}
			},
			wantVerdict: Approve,
		},
		{
			name: "a subset: the external IP alone",
			edit: func(t *testing.T, c *certificatesv1.CertificateSigningRequest) {
				r := kubeletRequest()
				r.dns, r.ips = nil, []string{"203.0.113.21"}
				c.Spec.Request = pemRequest(t, r)
			},
			wantVerdict: Approve,
		},
		{
			name: "forged: w1 asks for w2's name",
			edit: func(t *testing.T, c *certificatesv1.CertificateSigningRequest) {
				r := kubeletRequest()
				r.dns = []string{"w1", "w2"}
				c.Spec.Request = pemRequest(t, r)
			},
			wantVerdict: Pending, wantReason: `DNS name "w2" is not one of Node w1's host names`,
		},
		{
			name: "forged: w1 asks for w2's IP",
			edit: func(t *testing.T, c *certificatesv1.CertificateSigningRequest) {
				r := kubeletRequest()
				r.ips = []string{"10.0.0.21", "10.0.0.22"}
				c.Spec.Request = pemRequest(t, r)
			},
			wantVerdict: Pending, wantReason: "IP 10.0.0.22 is not one of Node w1's addresses",
		},
		{
			name: "forged: w1 asks for a subject of w2",
			edit: func(t *testing.T, c *certificatesv1.CertificateSigningRequest) {
				r := kubeletRequest()
				r.cn = "system:node:w2"
				c.Spec.Request = pemRequest(t, r)
			},
			wantVerdict: Pending, wantReason: `subject CN is "system:node:w2", want "system:node:w1"`,
		},
		{
			name: "an extra SAN: the API's name",
			edit: func(t *testing.T, c *certificatesv1.CertificateSigningRequest) {
				r := kubeletRequest()
				r.dns = append(r.dns, "kubernetes.default.svc")
				c.Spec.Request = pemRequest(t, r)
			},
			wantVerdict: Pending, wantReason: `DNS name "kubernetes.default.svc"`,
		},
		{
			name: "an InternalDNS name is not one of the names kforge approves",
			edit: func(t *testing.T, c *certificatesv1.CertificateSigningRequest) {
				r := kubeletRequest()
				r.dns = append(r.dns, "w1.internal.example")
				c.Spec.Request = pemRequest(t, r)
			},
			wantVerdict: Pending, wantReason: `DNS name "w1.internal.example"`,
		},
		{
			name: "an email SAN",
			edit: func(t *testing.T, c *certificatesv1.CertificateSigningRequest) {
				r := kubeletRequest()
				r.emails = []string{"root@w1"}
				c.Spec.Request = pemRequest(t, r)
			},
			wantVerdict: Pending, wantReason: "email or URI",
		},
		{
			name: "a URI SAN",
			edit: func(t *testing.T, c *certificatesv1.CertificateSigningRequest) {
				r := kubeletRequest()
				r.uris = []string{"spiffe://cluster/w1"}
				c.Spec.Request = pemRequest(t, r)
			},
			wantVerdict: Pending, wantReason: "email or URI",
		},
		{
			name: "no SAN at all",
			edit: func(t *testing.T, c *certificatesv1.CertificateSigningRequest) {
				r := kubeletRequest()
				r.dns, r.ips = nil, nil
				c.Spec.Request = pemRequest(t, r)
			},
			wantVerdict: Pending, wantReason: "no DNS name and no IP",
		},
		{
			name: "wrong usages: client auth",
			edit: func(_ *testing.T, c *certificatesv1.CertificateSigningRequest) {
				c.Spec.Usages = append(c.Spec.Usages, certificatesv1.UsageClientAuth)
			},
			wantVerdict: Pending, wantReason: "usages are",
		},
		{
			name: "wrong usages: server auth alone",
			edit: func(_ *testing.T, c *certificatesv1.CertificateSigningRequest) {
				c.Spec.Usages = []certificatesv1.KeyUsage{certificatesv1.UsageServerAuth}
			},
			wantVerdict: Pending, wantReason: "usages are",
		},
		{
			name: "wrong usages: a usage twice",
			edit: func(_ *testing.T, c *certificatesv1.CertificateSigningRequest) {
				c.Spec.Usages = append(c.Spec.Usages, certificatesv1.UsageServerAuth)
			},
			wantVerdict: Pending, wantReason: "usages are",
		},
		{
			name: "wrong requester: another node asks for w1's certificate",
			edit: func(_ *testing.T, c *certificatesv1.CertificateSigningRequest) {
				c.Spec.Username = "system:node:w2"
			},
			wantVerdict: Pending, wantReason: `subject CN is "system:node:w1", want "system:node:w2"`,
		},
		{
			name: "wrong requester: an admin",
			edit: func(_ *testing.T, c *certificatesv1.CertificateSigningRequest) {
				c.Spec.Username, c.Spec.Groups = "kubernetes-admin", []string{"kubeadm:cluster-admins"}
			},
			wantVerdict: Pending, wantReason: "not by a node",
		},
		{
			name: "wrong requester: a node's name without the nodes group",
			edit: func(_ *testing.T, c *certificatesv1.CertificateSigningRequest) {
				c.Spec.Groups = []string{"system:authenticated"}
			},
			wantVerdict: Pending, wantReason: "not in group system:nodes",
		},
		{
			name: "a node with no Node object",
			edit: func(t *testing.T, c *certificatesv1.CertificateSigningRequest) {
				r := kubeletRequest()
				r.cn = "system:node:w9"
				c.Spec.Username, c.Spec.Request = "system:node:w9", pemRequest(t, r)
			},
			wantVerdict: Pending, wantReason: "no Node w9",
		},
		{
			name: "wrong organization",
			edit: func(t *testing.T, c *certificatesv1.CertificateSigningRequest) {
				r := kubeletRequest()
				r.org = []string{"system:nodes", "system:masters"}
				c.Spec.Request = pemRequest(t, r)
			},
			wantVerdict: Pending, wantReason: "subject O",
		},
		{
			name: "an organizational unit",
			edit: func(t *testing.T, c *certificatesv1.CertificateSigningRequest) {
				r := kubeletRequest()
				r.ou = []string{"ops"}
				c.Spec.Request = pemRequest(t, r)
			},
			wantVerdict: Pending, wantReason: "subject has attribute 2.5.4.11",
		},
		{
			name: "another signer",
			edit: func(_ *testing.T, c *certificatesv1.CertificateSigningRequest) {
				c.Spec.SignerName = certificatesv1.KubeAPIServerClientKubeletSignerName
			},
			wantVerdict: Pending, wantReason: "signer is",
		},
		{
			name: "a request that is not PEM",
			edit: func(_ *testing.T, c *certificatesv1.CertificateSigningRequest) {
				c.Spec.Request = []byte("hello")
			},
			wantVerdict: Deny, wantReason: "not a PEM CERTIFICATE REQUEST",
		},
		{
			name: "a request whose signature does not verify",
			edit: func(t *testing.T, c *certificatesv1.CertificateSigningRequest) {
				block, _ := pem.Decode(c.Spec.Request)
				block.Bytes[len(block.Bytes)-1] ^= 0xff
				c.Spec.Request = pem.EncodeToMemory(block)
			},
			wantVerdict: Deny,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := servingCSR(t, "system:node:w1", kubeletRequest())
			if tc.edit != nil {
				tc.edit(t, c)
			}
			got := Decide(c, testNodes())
			if got.Verdict != tc.wantVerdict || !strings.Contains(got.Reason, tc.wantReason) {
				t.Errorf("Decide = %s (%s), want %s with a reason containing %q", got.Verdict, got.Reason, tc.wantVerdict, tc.wantReason)
			}
		})
	}
}

func TestUndecided(t *testing.T) {
	tests := []struct {
		name       string
		conditions []certificatesv1.CertificateSigningRequestCondition
		want       bool
	}{
		{name: "new", want: true},
		{name: "approved", conditions: []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateApproved}}},
		{name: "denied", conditions: []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateDenied}}},
		{name: "failed", conditions: []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateFailed}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &certificatesv1.CertificateSigningRequest{Status: certificatesv1.CertificateSigningRequestStatus{Conditions: tc.conditions}}
			if got := Undecided(c); got != tc.want {
				t.Errorf("Undecided = %t, want %t", got, tc.want)
			}
		})
	}
}

func TestAddresses(t *testing.T) {
	n := node("w1",
		corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.0.0.21"},
		corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.0.0.21"},
		corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "fd00::21"},
		corev1.NodeAddress{Type: corev1.NodeHostName, Address: "w1"},
		corev1.NodeAddress{Type: corev1.NodeExternalDNS, Address: "w1.example"},
		corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "not-an-ip"})
	dns, ips := Addresses(n)
	got := []string{}
	for _, ip := range ips {
		got = append(got, ip.String())
	}
	if diff := cmp.Diff([]string{"w1"}, dns); diff != "" {
		t.Errorf("DNS names (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"10.0.0.21", "fd00::21"}, got); diff != "" {
		t.Errorf("IPs (-want +got):\n%s", diff)
	}
}

// The OIDs this package compares subjects with are those crypto/x509 writes.
func TestSubjectOIDs(t *testing.T) {
	req, err := parseRequest(pemRequest(t, kubeletRequest()))
	if err != nil {
		t.Fatal(err)
	}
	var got []asn1.ObjectIdentifier
	for _, a := range req.Subject.Names {
		got = append(got, a.Type)
	}
	if diff := cmp.Diff([]asn1.ObjectIdentifier{oidOrganization, oidCommonName}, got); diff != "" {
		t.Errorf("subject attributes (-want +got):\n%s", diff)
	}
}
