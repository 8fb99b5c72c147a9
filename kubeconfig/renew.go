package kubeconfig

import (
	"errors"
	"fmt"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ErrNoEmbeddedCert says that a kubeconfig's user has no embedded client certificate and
// key (it refers to files, or uses a token): there is nothing in the file to renew.
var ErrNoEmbeddedCert = errors.New("the current context's user has no embedded client certificate and key")

// ClientCert returns the client certificate and key embedded for the user of data's current
// context.
func ClientCert(data []byte) (certPEM, keyPEM []byte, err error) {
	_, auth, err := currentUser(data)
	if err != nil {
		return nil, nil, err
	}
	return auth.ClientCertificateData, auth.ClientKeyData, nil
}

// WithClientCert returns data with the client certificate of its current context's user
// replaced by certPEM, which must be for the same key: the server, the CA and everything
// else of the file are kept.
func WithClientCert(data, certPEM []byte) ([]byte, error) {
	if len(certPEM) == 0 {
		return nil, errors.New("replacing the client certificate: the new certificate is empty")
	}
	cfg, auth, err := currentUser(data)
	if err != nil {
		return nil, err
	}
	auth.ClientCertificateData = certPEM
	out, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("encoding kubeconfig: %w", err)
	}
	return out, nil
}

// currentUser parses data and returns it with the user of its current context, which must
// embed a client certificate and key.
func currentUser(data []byte) (*clientcmdapi.Config, *clientcmdapi.AuthInfo, error) {
	cfg, err := clientcmd.Load(data)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing kubeconfig: %w", err)
	}
	ctx, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok {
		return nil, nil, fmt.Errorf("the current context %q is not in the file", cfg.CurrentContext)
	}
	auth, ok := cfg.AuthInfos[ctx.AuthInfo]
	if !ok {
		return nil, nil, fmt.Errorf("the user %q of the current context is not in the file", ctx.AuthInfo)
	}
	if len(auth.ClientCertificateData) == 0 || len(auth.ClientKeyData) == 0 {
		return nil, nil, fmt.Errorf("user %q: %w", ctx.AuthInfo, ErrNoEmbeddedCert)
	}
	return cfg, auth, nil
}
