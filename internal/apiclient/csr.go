package apiclient

import (
	"context"
	"fmt"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DecideCSR approves (approve) or denies CertificateSigningRequest name, with reason (a
// CamelCase word) and message, through its approval subresource. It reads the CSR first
// and leaves one that is already approved, denied or failed as it is, reporting false: a
// decision made meanwhile, by an operator or another run, wins. A Conflict (the CSR
// changed between the read and the write) reads it again (see Retry).
func DecideCSR(ctx context.Context, cs kubernetes.Interface, name string, approve bool, reason, message string) (bool, error) {
	csrs := cs.CertificatesV1().CertificateSigningRequests()
	cond := certificatesv1.CertificateDenied
	if approve {
		cond = certificatesv1.CertificateApproved
	}
	decided := false
	err := Retry(ctx, func(ctx context.Context) error {
		csr, err := csrs.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading CertificateSigningRequest %s: %w", name, err)
		}
		for _, c := range csr.Status.Conditions {
			switch c.Type {
			case certificatesv1.CertificateApproved, certificatesv1.CertificateDenied, certificatesv1.CertificateFailed:
				decided = false
				return nil
			}
		}
		csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type:           cond,
			Status:         corev1.ConditionTrue,
			Reason:         reason,
			Message:        message,
			LastUpdateTime: metav1.Now(),
		})
		if _, err := csrs.UpdateApproval(ctx, name, csr, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("writing the %s condition of CertificateSigningRequest %s: %w", cond, name, err)
		}
		decided = true
		return nil
	})
	return decided, err
}
