package kubeconfig

import (
	"errors"
	"fmt"
	"net"
	"net/url"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kforge/kforge/certs"
)

// ErrNoCurrentContext is wrapped when a kubeconfig has no current context, its current
// context is not defined, or it names no cluster or no user.
var ErrNoCurrentContext = errors.New("no usable current context")

// contextError is a problem with the current context itself; it is ErrNoCurrentContext.
type contextError string

func (e contextError) Error() string        { return string(e) }
func (e contextError) Is(target error) bool { return target == ErrNoCurrentContext }

// currentContext returns the current context of cfg.
func currentContext(cfg *clientcmdapi.Config) (*clientcmdapi.Context, error) {
	if cfg.CurrentContext == "" {
		return nil, contextError("has no current context")
	}
	ctx, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok {
		return nil, contextError(fmt.Sprintf("current context %q is not defined", cfg.CurrentContext))
	}
	return ctx, nil
}

// currentCluster returns the name and the entry of the cluster cfg's current context names.
func currentCluster(cfg *clientcmdapi.Config) (string, *clientcmdapi.Cluster, error) {
	return current(cfg, "cluster", func(c *clientcmdapi.Context) string { return c.Cluster }, cfg.Clusters)
}

// CurrentUser returns the name and the entry of the user cfg's current context names.
func CurrentUser(cfg *clientcmdapi.Config) (string, *clientcmdapi.AuthInfo, error) {
	return current(cfg, "user", func(c *clientcmdapi.Context) string { return c.AuthInfo }, cfg.AuthInfos)
}

// current returns the name and the entry of entries that cfg's current context names
// (name picks it); kind is "cluster" or "user", for errors.
func current[T any](cfg *clientcmdapi.Config, kind string, name func(*clientcmdapi.Context) string, entries map[string]*T) (string, *T, error) {
	ctx, err := currentContext(cfg)
	if err != nil {
		return "", nil, err
	}
	n := name(ctx)
	if n == "" {
		return "", nil, contextError(fmt.Sprintf("current context %q names no %s", cfg.CurrentContext, kind))
	}
	e, ok := entries[n]
	if !ok {
		return "", nil, fmt.Errorf("context %q names %s %q, which is not defined", cfg.CurrentContext, kind, n)
	}
	return n, e, nil
}

// Cluster is the cluster a kubeconfig's current context names.
type Cluster struct {
	// Name is the cluster's name in the kubeconfig.
	Name string
	// Server is the apiserver URL.
	Server string
	// CAPEM is the cluster CA, embedded in the kubeconfig or read from the file it names.
	CAPEM []byte
}

// CurrentCluster returns the cluster cfg's current context names, whichever other
// clusters cfg holds. A CA the kubeconfig refers to by path is read through readFile; with
// a nil readFile it is an error. A cluster without a CA is an error.
func CurrentCluster(cfg *clientcmdapi.Config, readFile ReadFileFunc) (Cluster, error) {
	name, c, err := currentCluster(cfg)
	if err != nil {
		return Cluster{}, err
	}
	caPEM := c.CertificateAuthorityData
	switch {
	case len(caPEM) > 0:
	case c.CertificateAuthority == "":
		return Cluster{}, fmt.Errorf("cluster %q has no certificate-authority-data, so there is no CA to pin", name)
	case readFile == nil:
		return Cluster{}, fmt.Errorf("cluster %q reads its CA from %s, want it embedded as certificate-authority-data", name, c.CertificateAuthority)
	default:
		if caPEM, err = readFile(c.CertificateAuthority); err != nil {
			return Cluster{}, fmt.Errorf("reading the CA of cluster %q: %w", name, err)
		}
	}
	return Cluster{Name: name, Server: c.Server, CAPEM: caPEM}, nil
}

// CAPin returns the discovery pin ("sha256:<hex>", --discovery-token-ca-cert-hash) of the
// CA of cfg's current cluster (see CurrentCluster).
func CAPin(cfg *clientcmdapi.Config, readFile ReadFileFunc) (string, error) {
	c, err := CurrentCluster(cfg, readFile)
	if err != nil {
		return "", err
	}
	return c.pin()
}

func (c Cluster) pin() (string, error) {
	ca, err := certs.ParseCertPEM(c.CAPEM)
	if err != nil {
		return "", fmt.Errorf("reading the CA of cluster %q: %w", c.Name, err)
	}
	return certs.PinHash(ca), nil
}

// JoinTarget returns what a join command needs of cfg's current cluster (see
// CurrentCluster): the apiserver endpoint as host:port (port 443 when the URL has none) and
// the CA pin.
func JoinTarget(cfg *clientcmdapi.Config, readFile ReadFileFunc) (endpoint, pin string, err error) {
	c, err := CurrentCluster(cfg, readFile)
	if err != nil {
		return "", "", err
	}
	u, err := url.Parse(c.Server)
	if err != nil || u.Host == "" {
		return "", "", fmt.Errorf("cluster %q has server %q, want a URL such as https://10.0.0.1:6443", c.Name, c.Server)
	}
	endpoint = u.Host
	if u.Port() == "" {
		endpoint = net.JoinHostPort(u.Hostname(), "443")
	}
	if pin, err = c.pin(); err != nil {
		return "", "", err
	}
	return endpoint, pin, nil
}
