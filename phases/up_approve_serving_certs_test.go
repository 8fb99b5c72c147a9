package phases

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kforge/kforge/fleet"
	"github.com/kforge/kforge/host"
	"github.com/kforge/kforge/internal/testutil"
	"github.com/kforge/kforge/kubeconfig"
)

// kubeletServer serves TLS handshakes with cert on 127.0.0.1, as a kubelet's :10250 would;
// it returns the port.
func kubeletServer(t *testing.T, certPEM, keyPEM []byte) int32 {
	t.Helper()
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake()
			}()
		}
	}()
	return int32(l.Addr().(*net.TCPAddr).Port)
}

// servingNode is a Node at 127.0.0.1 whose kubelet listens on port.
func servingNode(name string, port int32) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	n.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "127.0.0.1"},
		{Type: corev1.NodeHostName, Address: name},
	}
	n.Status.DaemonEndpoints.KubeletEndpoint.Port = port
	return n
}

// kubeletCSR is a serving CSR filed by node user asking for dns names and 127.0.0.1.
func kubeletCSR(t *testing.T, name, user string, dns ...string) *certificatesv1.CertificateSigningRequest {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: user, Organization: []string{"system:nodes"}},
		DNSNames:    dns,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			SignerName: certificatesv1.KubeletServingSignerName,
			Username:   user,
			Groups:     []string{"system:nodes", "system:authenticated"},
			Usages:     []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth},
		},
	}
}

// servingLab is an up lab of an existing cluster with server_tls_bootstrap on, whose
// admin.conf trusts ca, and whose kubelets serve what certFor gives each node. The
// control-plane hosts answer `test -e` for the marker from what was uploaded to them.
func servingLab(t *testing.T, ca *testutil.CA, certFor func(node string) (certPEM, keyPEM []byte)) *upLab {
	t.Helper()
	c := testutil.Cluster(t)
	c.Kubelet.ServerTLSBootstrap = true
	var nodes []*corev1.Node
	for _, h := range c.Hosts {
		cert, key := certFor(h.Name)
		nodes = append(nodes, servingNode(h.Name, kubeletServer(t, cert, key)))
	}
	l := newUpLabOf(t, c, true, nodes...)
	admin, err := kubeconfig.Build("kubernetes", "https://192.0.2.10:6443", ca.PEM, "kubernetes-admin", []byte("cert"), []byte("key"))
	if err != nil {
		t.Fatal(err)
	}
	l.admin = admin
	for _, fh := range l.hosts {
		fh.Rules = append([]testutil.Rule{{
			Match: regexp.MustCompile(`^test -e ` + regexp.QuoteMeta(fleet.KubeletServingMarker) + `$`),
			Reply: func(string) (string, error) {
				if _, ok := fh.File(fleet.KubeletServingMarker); ok {
					return "", nil
				}
				return "", &host.ExitError{Host: fh.HostName, Cmd: "test -e", Code: 1}
			},
		}}, fh.Rules...)
	}
	return l
}

func csrConditions(t *testing.T, l *upLab) map[string][]certificatesv1.RequestConditionType {
	t.Helper()
	list, err := l.cs.CertificatesV1().CertificateSigningRequests().List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]certificatesv1.RequestConditionType{}
	for _, c := range list.Items {
		out[c.Name] = nil
		for _, cond := range c.Status.Conditions {
			out[c.Name] = append(out[c.Name], cond.Type)
		}
	}
	return out
}

// markerRuns lists, in order, the marker uploads and the reconfigure runs that are not
// dry runs, as "<host>: marker" and "<host>: reconfigure".
func markerRuns(l *upLab, from int) []string {
	var out []string
	for _, e := range l.journal.Events()[from:] {
		host, what, _ := strings.Cut(e, ": ")
		switch {
		case what == "upload "+fleet.KubeletServingMarker:
			out = append(out, host+": marker")
		case strings.HasPrefix(what, "kforge reconfigure ") && !strings.Contains(what, "--dry-run"):
			out = append(out, host+": reconfigure")
		}
	}
	return out
}

func TestUpApproveServingCerts(t *testing.T) {
	ca := testutil.NewCA(t, "kubernetes", time.Hour)
	other := testutil.NewCA(t, "w2 itself", time.Hour)
	signed := func(string) ([]byte, []byte) { return ca.Leaf("kubelet", net.ParseIP("127.0.0.1")) }
	csrGR := schema.GroupResource{Group: "certificates.k8s.io", Resource: "certificatesigningrequests"}
	approved := []certificatesv1.RequestConditionType{certificatesv1.CertificateApproved}
	tests := []struct {
		name    string
		dryRun  bool
		certFor func(node string) ([]byte, []byte)
		// markers are the control planes that already hold fleet.KubeletServingMarker.
		markers []string
		// conflicts makes the first approval of each CSR fail with a Conflict.
		conflicts      bool
		wantConditions map[string][]certificatesv1.RequestConditionType
		wantRuns       []string
		wantVerify     bool
		wantOut        []string
	}{
		{
			name:    "every kubelet serves a CA-signed certificate: approve, then turn the flag on, one control plane at a time",
			certFor: signed,
			wantConditions: map[string][]certificatesv1.RequestConditionType{
				"csr-w1": approved, "csr-forged": nil, "csr-admin": nil,
			},
			wantRuns:   []string{"cp1: marker", "cp1: reconfigure", "cp2: marker", "cp2: reconfigure"},
			wantVerify: true,
			wantOut: []string{
				"approved csr-w1 (w1): serving certificate for Node w1's own names",
				`left pending csr-forged (w2): DNS name "cp1" is not one of Node w2's host names`,
				`left pending csr-admin (not a node): requested by "kubernetes-admin"`,
				"[cp1] the apiserver verifies kubelets with the cluster CA now",
			},
		},
		{
			name:      "a Conflict on the approval reads the CSR again",
			certFor:   signed,
			conflicts: true,
			wantConditions: map[string][]certificatesv1.RequestConditionType{
				"csr-w1": approved, "csr-forged": nil, "csr-admin": nil,
			},
			wantRuns:   []string{"cp1: marker", "cp1: reconfigure", "cp2: marker", "cp2: reconfigure"},
			wantVerify: true,
		},
		{
			name: "a kubelet that signs its own certificate keeps the flag off",
			certFor: func(n string) ([]byte, []byte) {
				if n == "w2" {
					return other.Leaf("w2", net.ParseIP("127.0.0.1"))
				}
				return signed(n)
			},
			wantConditions: map[string][]certificatesv1.RequestConditionType{
				"csr-w1": approved, "csr-forged": nil, "csr-admin": nil,
			},
			wantOut: []string{
				"WARNING: not turning on --kubelet-certificate-authority",
				"1 of 4 kubelets do not serve a certificate the cluster CA signed: w2 (no certificate signed by the cluster CA for 127.0.0.1",
			},
		},
		{
			name:     "the flag is on everywhere already: nothing to reconfigure",
			certFor:  signed,
			markers:  []string{"cp1", "cp2"},
			wantRuns: []string{},
			wantConditions: map[string][]certificatesv1.RequestConditionType{
				"csr-w1": approved, "csr-forged": nil, "csr-admin": nil,
			},
			wantVerify: true,
			wantOut:    []string{"every apiserver already verifies kubelets"},
		},
		{
			name:    "dry run: says what it would approve and that it would turn the flag on, writes nothing",
			dryRun:  true,
			certFor: signed,
			wantConditions: map[string][]certificatesv1.RequestConditionType{
				"csr-w1": nil, "csr-forged": nil, "csr-admin": nil,
			},
			wantVerify: true,
			wantOut: []string{
				"would approve csr-w1 (w1)",
				"left pending csr-forged (w2)",
				"[cp1] would add --kubelet-certificate-authority to the apiserver",
				"[cp2] would add --kubelet-certificate-authority to the apiserver",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := servingLab(t, ca, tc.certFor)
			for _, n := range tc.markers {
				if _, err := l.hosts[n].Upload(t.Context(), host.BytesFile(fleet.KubeletServingMarker, []byte("verified\n"), 0o644)); err != nil {
					t.Fatal(err)
				}
			}
			csrs := []*certificatesv1.CertificateSigningRequest{
				kubeletCSR(t, "csr-w1", "system:node:w1", "w1"),
				kubeletCSR(t, "csr-forged", "system:node:w2", "w2", "cp1"),
				kubeletCSR(t, "csr-admin", "kubernetes-admin", "w1"),
			}
			csrs[2].Spec.Groups = []string{"kubeadm:cluster-admins"}
			for _, c := range csrs {
				if _, err := l.cs.CertificatesV1().CertificateSigningRequests().Create(t.Context(), c, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			conflicted := map[string]bool{}
			l.cs.PrependReactor("update", "certificatesigningrequests", func(a k8stesting.Action) (bool, runtime.Object, error) {
				name := a.(k8stesting.UpdateAction).GetObject().(*certificatesv1.CertificateSigningRequest).Name
				if a.GetSubresource() == "approval" && tc.conflicts && !conflicted[name] {
					conflicted[name] = true
					return true, nil, apierrors.NewConflict(csrGR, name, errors.New("the object has been modified"))
				}
				return false, nil, nil
			})
			from := len(l.journal.Events())
			d := l.data(tc.dryRun)
			d.Up.Options.Timeout = 300 * time.Millisecond
			rep, err := l.run(d, "approve-serving-certs")
			if err != nil {
				t.Fatalf("%v\n%s", err, l.out.String())
			}
			if diff := cmp.Diff(tc.wantConditions, csrConditions(t, l)); diff != "" {
				t.Errorf("CSR conditions (-want +got):\n%s\n%s", diff, l.out.String())
			}
			if tc.wantRuns != nil || !tc.wantVerify || tc.dryRun {
				got := markerRuns(l, from)
				if got == nil {
					got = []string{}
				}
				want := tc.wantRuns
				if want == nil {
					want = []string{}
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("marker uploads and reconfigure runs (-want +got):\n%s", diff)
				}
			}
			if rep.ServingCerts == nil {
				t.Fatalf("the report has no serving_certs\n%s", l.out.String())
			}
			if rep.ServingCerts.VerifyKubelets != tc.wantVerify {
				t.Errorf("serving_certs.verify_kubelets = %t, want %t (note %q)", rep.ServingCerts.VerifyKubelets, tc.wantVerify, rep.ServingCerts.Note)
			}
			for _, want := range tc.wantOut {
				if !strings.Contains(l.out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, l.out.String())
				}
			}
			var verdicts []string
			for _, c := range rep.ServingCerts.CSRs {
				verdicts = append(verdicts, c.Name+"="+string(c.Verdict)+"/done="+strconv.FormatBool(c.Done))
			}
			wantVerdicts := []string{"csr-admin=pending/done=false", "csr-forged=pending/done=false", "csr-w1=approve/done=" + strconv.FormatBool(!tc.dryRun)}
			if diff := cmp.Diff(wantVerdicts, verdicts); diff != "" {
				t.Errorf("serving_certs.csrs (-want +got):\n%s", diff)
			}
		})
	}
}

// With the option off the phase is skipped and says why: nothing is approved.
func TestUpApproveServingCertsOff(t *testing.T) {
	l := newUpLab(t, true)
	c := kubeletCSR(t, "csr-w1", "system:node:w1", "w1")
	if _, err := l.cs.CertificatesV1().CertificateSigningRequests().Create(t.Context(), c, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rep, err := l.run(l.data(false), "approve-serving-certs")
	if err != nil {
		t.Fatal(err)
	}
	if got := csrConditions(t, l)["csr-w1"]; got != nil {
		t.Errorf("CSR conditions %v, want none: the option is off", got)
	}
	if rep != nil && rep.ServingCerts != nil {
		t.Errorf("the report has serving_certs %+v with the option off", rep.ServingCerts)
	}
	if !strings.Contains(l.out.String(), "kubelet.server_tls_bootstrap is off") {
		t.Errorf("output does not say why the phase was skipped:\n%s", l.out.String())
	}
}
