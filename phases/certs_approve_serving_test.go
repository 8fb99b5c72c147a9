package phases

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kforge/kforge/internal/testutil"
)

// TestApproveServing: certs approve-serving approves the init node's own CSR, leaves a
// forged one pending, and records that kubelets are verified only when every kubelet
// serves a certificate the cluster CA signed, and never on a dry run.
func TestApproveServing(t *testing.T) {
	ca := testutil.NewCA(t, "kubernetes", time.Hour)
	other := testutil.NewCA(t, "self-signed kubelet", time.Hour)
	tests := []struct {
		name         string
		dryRun       bool
		selfSigned   bool // w1's kubelet still serves a certificate of its own
		wantErr      string
		wantRecorded bool
		wantMarker   bool
		wantCP1      []certificatesv1.RequestConditionType
	}{
		{name: "every kubelet verified", wantRecorded: true, wantMarker: true, wantCP1: []certificatesv1.RequestConditionType{certificatesv1.CertificateApproved}},
		{name: "dry run", dryRun: true, wantRecorded: true},
		{
			name: "a kubelet not verified", selfSigned: true,
			wantErr: "the apiserver must not verify kubelets yet: after 200ms, 1 of 2 kubelets do not serve a certificate the cluster CA signed: w1",
			wantCP1: []certificatesv1.RequestConditionType{certificatesv1.CertificateApproved},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cp1Cert, cp1Key := ca.Leaf("cp1", net.ParseIP("127.0.0.1"))
			w1Cert, w1Key := ca.Leaf("w1", net.ParseIP("127.0.0.1"))
			if tc.selfSigned {
				w1Cert, w1Key = other.Leaf("w1", net.ParseIP("127.0.0.1"))
			}
			cs := fake.NewClientset([]runtime.Object{
				servingNode("cp1", kubeletServer(t, cp1Cert, cp1Key)),
				servingNode("w1", kubeletServer(t, w1Cert, w1Key)),
				kubeletCSR(t, "csr-cp1", "system:node:cp1", "cp1"),
				kubeletCSR(t, "csr-forged", "system:node:w1", "w1", "cp1"),
			}...)
			marker := filepath.Join(t.TempDir(), "var/lib/kforge/kubelet-serving-verified")
			var out bytes.Buffer
			rep, err := ApproveServing(t.Context(), ApproveServingSpec{
				Client: cs, CA: ca.PEM, Marker: marker, DryRun: tc.dryRun,
				Wait: 200 * time.Millisecond, Interval: 10 * time.Millisecond, Out: NewPrinter(&out),
			})
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("ApproveServing error = %v, want %q\n%s", err, tc.wantErr, out.String())
			}
			if got := rep.Recorded != ""; got != tc.wantRecorded {
				t.Errorf("recorded = %q, want it set: %t", rep.Recorded, tc.wantRecorded)
			}
			_, statErr := os.Stat(marker)
			if got := statErr == nil; got != tc.wantMarker {
				t.Errorf("marker written: %t, want %t\n%s", got, tc.wantMarker, out.String())
			}
			conds := map[string][]certificatesv1.RequestConditionType{}
			for _, name := range []string{"csr-cp1", "csr-forged"} {
				c, err := cs.CertificatesV1().CertificateSigningRequests().Get(t.Context(), name, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				conds[name] = nil
				for _, cond := range c.Status.Conditions {
					conds[name] = append(conds[name], cond.Type)
				}
			}
			want := map[string][]certificatesv1.RequestConditionType{"csr-cp1": tc.wantCP1, "csr-forged": nil}
			if diff := cmp.Diff(want, conds); diff != "" {
				t.Errorf("CSR conditions (-want +got):\n%s", diff)
			}
			if !strings.Contains(out.String(), `left pending csr-forged (w1): DNS name "cp1" is not one of Node w1's host names`) {
				t.Errorf("output does not say why the forged CSR is left pending:\n%s", out.String())
			}
		})
	}
}
