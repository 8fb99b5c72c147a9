package phases

import (
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/tokens"
)

// BootstrapData is the part of Data the online bootstrap phases (upload-config,
// upload-certs, mark-control-plane, bootstrap-token, show-join-command) read and produce.
// Data embeds it.
type BootstrapData struct {
	// Token is the join token (--token). Zero means bootstrap-token generates one and sets
	// it here, so that show-join-command prints the same one.
	Token tokens.Token
	// TokenTTL is the join token's lifetime (--token-ttl). Zero means tokens.DefaultTTL;
	// a negative value makes a token that never expires (kubeadm's --token-ttl 0).
	TokenTTL time.Duration

	// UploadCerts makes upload-certs run (--upload-certs).
	UploadCerts bool
	// CertificateKey seals the shared certificates (--certificate-key). Zero means
	// upload-certs generates one and sets it here.
	CertificateKey bootstrap.CertificateKey

	// SuperAdminClient returns a client built from super-admin.conf (system:masters). The
	// online phases use it once, to create the ClusterRoleBinding kubeadm:cluster-admins
	// without which admin.conf (and so Client) can do nothing. Nil where there is no
	// super-admin.conf: the binding must then exist already.
	SuperAdminClient func() (kubernetes.Interface, error)

	// tokenExpires is when Token expires (zero: never), once bootstrap-token or
	// show-join-command has read or written its Secret.
	tokenExpires time.Time
	// clusterAdminsBound is set once kubeadm:cluster-admins is known to exist in this run.
	clusterAdminsBound bool
}
