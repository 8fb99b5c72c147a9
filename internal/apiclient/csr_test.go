package apiclient

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	certificatesv1 "k8s.io/api/certificates/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestDecideCSR(t *testing.T) {
	csrGR := schema.GroupResource{Group: "certificates.k8s.io", Resource: "certificatesigningrequests"}
	tests := []struct {
		name      string
		approve   bool
		existing  []certificatesv1.RequestConditionType
		conflicts int  // the first updates of the approval fail with a Conflict
		forbidden bool // every update is refused
		want      []certificatesv1.RequestConditionType
		wantDone  bool
		wantErr   bool
	}{
		{name: "approve", approve: true, want: []certificatesv1.RequestConditionType{certificatesv1.CertificateApproved}, wantDone: true},
		{name: "deny", want: []certificatesv1.RequestConditionType{certificatesv1.CertificateDenied}, wantDone: true},
		{name: "a conflict reads again", approve: true, conflicts: 2, want: []certificatesv1.RequestConditionType{certificatesv1.CertificateApproved}, wantDone: true},
		{
			name: "already denied: left as it is", approve: true,
			existing: []certificatesv1.RequestConditionType{certificatesv1.CertificateDenied},
			want:     []certificatesv1.RequestConditionType{certificatesv1.CertificateDenied},
		},
		{
			name: "already approved: left as it is", approve: true,
			existing: []certificatesv1.RequestConditionType{certificatesv1.CertificateApproved},
			want:     []certificatesv1.RequestConditionType{certificatesv1.CertificateApproved},
		},
		{name: "forbidden", approve: true, forbidden: true, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			csr := &certificatesv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{Name: "csr-1"}}
			for _, c := range tc.existing {
				csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{Type: c})
			}
			cs := fake.NewClientset(csr)
			updates := 0
			cs.PrependReactor("update", "certificatesigningrequests", func(a k8stesting.Action) (bool, runtime.Object, error) {
				if a.GetSubresource() != "approval" {
					return false, nil, nil
				}
				updates++
				switch {
				case tc.forbidden:
					return true, nil, apierrors.NewForbidden(csrGR, "csr-1", nil)
				case updates <= tc.conflicts:
					return true, nil, apierrors.NewConflict(csrGR, "csr-1", nil)
				}
				return false, nil, nil
			})
			done, err := DecideCSR(t.Context(), cs, "csr-1", tc.approve, "KforgeTest", "a test")
			if (err != nil) != tc.wantErr {
				t.Fatalf("DecideCSR error = %v, want error %t", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if done != tc.wantDone {
				t.Errorf("DecideCSR = %t, want %t", done, tc.wantDone)
			}
			got, err := cs.CertificatesV1().CertificateSigningRequests().Get(t.Context(), "csr-1", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var types []certificatesv1.RequestConditionType
			for _, c := range got.Status.Conditions {
				types = append(types, c.Type)
			}
			if diff := cmp.Diff(tc.want, types); diff != "" {
				t.Errorf("conditions (-want +got):\n%s", diff)
			}
			if tc.conflicts > 0 && updates != tc.conflicts+1 {
				t.Errorf("%d updates, want %d (each Conflict reads again and retries)", updates, tc.conflicts+1)
			}
		})
	}
}
