// Package kubeconfig builds and checks the kubeconfig files of a control-plane node
// (admin.conf, super-admin.conf, kubelet.conf, controller-manager.conf, scheduler.conf) and
// the cluster-only kubeconfig published in cluster-info. It takes PEM bytes and returns file
// contents; it reads and writes no files.
package kubeconfig

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kforge/kforge/config"
)

// Spec describes one kubeconfig file a control-plane node carries.
type Spec struct {
	// Name is the phase name: admin, super-admin, kubelet, controller-manager, scheduler.
	Name string
	// FileName is the file's base name in the kubeconfig directory, "admin.conf".
	FileName string
	// CommonName is the client certificate's CN, which is also the user name inside the file.
	CommonName string
	// Organization is the client certificate's O (the user's groups).
	Organization []string
	// LocalEndpoint is true when the file points at this node's own apiserver and false when
	// it points at the control-plane endpoint.
	LocalEndpoint bool
	// Desc is a one-line imperative description for the phase list.
	Desc string
}

// Users and groups of the kubeconfig client certificates.
const (
	AdminUser             = "kubernetes-admin"
	AdminGroup            = "kubeadm:cluster-admins"
	SuperAdminUser        = "kubernetes-super-admin"
	SuperAdminGroup       = "system:masters"
	NodeUserPrefix        = "system:node:"
	NodesGroup            = "system:nodes"
	ControllerManagerUser = "system:kube-controller-manager"
	SchedulerUser         = "system:kube-scheduler"
)

// File names in the kubeconfig directory (/etc/kubernetes).
const (
	AdminFileName             = "admin.conf"
	SuperAdminFileName        = "super-admin.conf"
	KubeletFileName           = "kubelet.conf"
	ControllerManagerFileName = "controller-manager.conf"
	SchedulerFileName         = "scheduler.conf"
	// BootstrapKubeletFileName is written by join for the kubelet's TLS bootstrap and removed
	// once the kubelet has its client certificate.
	BootstrapKubeletFileName = "bootstrap-kubelet.conf"
)

// Specs returns the kubeconfig files of a control-plane node named nodeName, in the order
// the kubeconfig phase writes them. super-admin.conf belongs on the init node only; the
// caller decides whether to write it.
func Specs(nodeName string) []Spec {
	return []Spec{
		{
			Name:         "admin",
			FileName:     AdminFileName,
			CommonName:   AdminUser,
			Organization: []string{AdminGroup},
			Desc:         "Generate a kubeconfig file for the admin to use and for kforge itself",
		},
		{
			Name:         "super-admin",
			FileName:     SuperAdminFileName,
			CommonName:   SuperAdminUser,
			Organization: []string{SuperAdminGroup},
			Desc:         "Generate a kubeconfig file for the super-admin (system:masters), init node only",
		},
		{
			Name:         "kubelet",
			FileName:     KubeletFileName,
			CommonName:   NodeUserPrefix + nodeName,
			Organization: []string{NodesGroup},
			Desc:         "Generate a kubeconfig file for the kubelet to use while bootstrapping the cluster",
		},
		{
			Name:          "controller-manager",
			FileName:      ControllerManagerFileName,
			CommonName:    ControllerManagerUser,
			LocalEndpoint: true,
			Desc:          "Generate a kubeconfig file for the controller manager to use",
		},
		{
			Name:          "scheduler",
			FileName:      SchedulerFileName,
			CommonName:    SchedulerUser,
			LocalEndpoint: true,
			Desc:          "Generate a kubeconfig file for the scheduler to use",
		},
	}
}

// Server returns the apiserver URL the file for s must point at: this node's apiserver
// (advertiseAddress and the apiserver's secure port) when s.LocalEndpoint, else the
// control-plane endpoint.
func (s Spec) Server(c *config.Cluster, advertiseAddress string) string {
	if !s.LocalEndpoint {
		return c.EndpointURL()
	}
	port := strconv.Itoa(config.DefaultAPIServerPort)
	if p, ok := c.APIServer.ExtraArgs["secure-port"]; ok && p != "" {
		port = p
	}
	return "https://" + net.JoinHostPort(advertiseAddress, port)
}

// Build returns a kubeconfig with one cluster named clusterName (server, CA embedded), one
// user with an embedded client certificate and key, and one context "<user>@<cluster>" that
// is the current context.
func Build(clusterName, server string, caPEM []byte, user string, certPEM, keyPEM []byte) ([]byte, error) {
	switch {
	case clusterName == "":
		return nil, errors.New("building kubeconfig: cluster name is empty")
	case user == "":
		return nil, errors.New("building kubeconfig: user name is empty")
	case len(certPEM) == 0:
		return nil, fmt.Errorf("building kubeconfig for %s: client certificate is empty", user)
	case len(keyPEM) == 0:
		return nil, fmt.Errorf("building kubeconfig for %s: client key is empty", user)
	}
	return withUser(clusterName, server, caPEM, user, &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM})
}

// withUser returns a kubeconfig with one cluster, the user with auth, and a current context
// "<user>@<cluster>" joining them.
func withUser(clusterName, server string, caPEM []byte, user string, auth *clientcmdapi.AuthInfo) ([]byte, error) {
	cfg, err := clusterConfig(clusterName, server, caPEM)
	if err != nil {
		return nil, fmt.Errorf("building kubeconfig for %s: %w", user, err)
	}
	ctx := ContextName(user, clusterName)
	cfg.AuthInfos[user] = auth
	cfg.Contexts[ctx] = &clientcmdapi.Context{Cluster: clusterName, AuthInfo: user}
	cfg.CurrentContext = ctx
	out, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("encoding kubeconfig for %s: %w", user, err)
	}
	return out, nil
}

// BuildWithCertFile is Build for a client certificate and key kept in one file that
// something else rotates, such as the kubelet's kubelet-client-current.pem.
func BuildWithCertFile(clusterName, server string, caPEM []byte, user, certKeyFile string) ([]byte, error) {
	if clusterName == "" || user == "" || certKeyFile == "" {
		return nil, errors.New("building kubeconfig: cluster name, user and certificate file are all needed")
	}
	return withUser(clusterName, server, caPEM, user, &clientcmdapi.AuthInfo{ClientCertificate: certKeyFile, ClientKey: certKeyFile})
}

// BootstrapUser is the user name in bootstrap-kubelet.conf, as kubeadm writes it.
const BootstrapUser = "tls-bootstrap-token-user"

// BuildWithToken returns a kubeconfig whose user authenticates with a bearer token: the
// bootstrap-kubelet.conf a joining kubelet requests its client certificate with.
func BuildWithToken(clusterName, server string, caPEM []byte, user, token string) ([]byte, error) {
	if clusterName == "" || user == "" || token == "" {
		return nil, errors.New("building kubeconfig: cluster name, user and token are all needed")
	}
	return withUser(clusterName, server, caPEM, user, &clientcmdapi.AuthInfo{Token: token})
}

// ClusterOnly returns a kubeconfig with one cluster (server, CA embedded) and no users or
// contexts: the content of cluster-info and the trust anchor of discovery. clusterName may be
// empty, as kubeadm writes it in cluster-info.
func ClusterOnly(clusterName, server string, caPEM []byte) ([]byte, error) {
	cfg, err := clusterConfig(clusterName, server, caPEM)
	if err != nil {
		return nil, fmt.Errorf("building cluster-only kubeconfig: %w", err)
	}
	out, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("encoding cluster-only kubeconfig: %w", err)
	}
	return out, nil
}

// ContextName is the name Build gives the context of user in clusterName.
func ContextName(user, clusterName string) string {
	return user + "@" + clusterName
}

func clusterConfig(clusterName, server string, caPEM []byte) (*clientcmdapi.Config, error) {
	if server == "" {
		return nil, errors.New("server URL is empty")
	}
	if len(caPEM) == 0 {
		return nil, errors.New("CA certificate is empty")
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[clusterName] = &clientcmdapi.Cluster{
		Server:                   server,
		CertificateAuthorityData: caPEM,
	}
	return cfg, nil
}
