// Package certs is the cluster PKI: the table of certificates a control plane needs, their
// minting (through cfssl, which lives in this package only), their files under the
// certificate directory, and the CA pin hash joining nodes check.
//
// Every certificate is a Spec in Table. The init certs sub-phases and `certs
// check-expiration` are generated from that table; Spec.Ensure converges one pair on disk.
package certs

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/kforge/kforge/config"
)

// Spec names of the certificates, which are also the phase names users know.
const (
	NameCA                     = "ca"
	NameAPIServer              = "apiserver"
	NameAPIServerKubeletClient = "apiserver-kubelet-client"
	NameFrontProxyCA           = "front-proxy-ca"
	NameFrontProxyClient       = "front-proxy-client"
	NameEtcdCA                 = "etcd-ca"
	NameEtcdServer             = "etcd-server"
	NameEtcdPeer               = "etcd-peer"
	NameEtcdHealthcheckClient  = "etcd-healthcheck-client"
	NameAPIServerEtcdClient    = "apiserver-etcd-client"
)

// The service-account signing key pair: sa.key and sa.pub, with no certificate.
const (
	ServiceAccountName     = "sa"
	ServiceAccountBaseName = "sa"
	ServiceAccountDesc     = "Generate a private key for signing service account tokens along with its public key"
)

// Organization of the apiserver's client certificate for kubelets; the group is bound to
// cluster-admin by the ClusterRoleBinding kubeadm:cluster-admins.
const ClusterAdminsGroup = "kubeadm:cluster-admins"

// Spec describes one certificate and key pair of the control-plane PKI. It is data: the
// init phases and `certs check-expiration` are generated from Table.
type Spec struct {
	// Name is the phase name, "apiserver", "etcd-ca".
	Name string
	// BaseName is the file name under the certificate directory without extension:
	// "ca" is ca.crt and ca.key, "etcd/server" is etcd/server.crt and etcd/server.key.
	BaseName string
	// CA is the Name of the spec that signs this one; empty for a CA, which signs itself.
	CA string
	// IsCA marks a self-signed certificate authority.
	IsCA bool
	// CommonName is the subject CN. It is empty when NodeNameCN is set.
	CommonName string
	// NodeNameCN makes the node name the subject CN (etcd server and peer).
	NodeNameCN bool
	// Organization is the subject O, if any.
	Organization []string
	// Server and Client are the extended key usages of a leaf: TLS server and client auth.
	Server, Client bool
	// SANs returns the subject alternative names; nil for a certificate without any.
	SANs func(Params) (AltNames, error)
	// Desc is a one-line imperative description, shown in the phase list.
	Desc string
}

// Params are the per-node inputs of the certificates.
type Params struct {
	// Cluster is the validated cluster configuration.
	Cluster *config.Cluster
	// NodeName is the name of the node the certificates are for.
	NodeName string
	// AdvertiseAddress is the address the node's apiserver and etcd advertise.
	AdvertiseAddress net.IP
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// ReissueSANs lets Ensure sign an existing leaf again, for its own key, when the only
	// thing wrong with it is subject alternative names it lacks (a name added to
	// apiserver.cert_sans on a running cluster). Without it, that is a MismatchError.
	ReissueSANs bool
}

func (p Params) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// AltNames are the subject alternative names of a certificate.
type AltNames struct {
	DNSNames []string
	IPs      []net.IP
}

// Add adds name as an IP address if it parses as one, else as a DNS name. Duplicates are
// dropped.
func (a *AltNames) Add(name string) {
	if ip := net.ParseIP(name); ip != nil {
		a.AddIP(ip)
		return
	}
	if name == "" || slices.ContainsFunc(a.DNSNames, func(s string) bool { return strings.EqualFold(s, name) }) {
		return
	}
	a.DNSNames = append(a.DNSNames, name)
}

// AddIP adds an IP address unless it is already there.
func (a *AltNames) AddIP(ip net.IP) {
	if ip == nil || slices.ContainsFunc(a.IPs, ip.Equal) {
		return
	}
	a.IPs = append(a.IPs, ip)
}

// hosts is the names in the form cfssl's requests take.
func (a AltNames) hosts() []string {
	h := slices.Clone(a.DNSNames)
	for _, ip := range a.IPs {
		h = append(h, ip.String())
	}
	return h
}

// Table returns the certificates of a control-plane node in the order they must be ensured:
// each CA before the leaves it signs. The etcd certificates and apiserver-etcd-client are
// there only when etcd is local.
func Table(c *config.Cluster) []Spec {
	t := []Spec{
		{
			Name: NameCA, BaseName: "ca", IsCA: true, CommonName: "kubernetes",
			Desc: "Generate the self-signed Kubernetes CA that signs the identities of the other components",
		},
		{
			Name: NameAPIServer, BaseName: "apiserver", CA: NameCA, CommonName: "kube-apiserver",
			Server: true, SANs: apiServerSANs,
			Desc: "Generate the certificate for serving the Kubernetes API",
		},
		{
			Name: NameAPIServerKubeletClient, BaseName: "apiserver-kubelet-client", CA: NameCA,
			CommonName: "kube-apiserver-kubelet-client", Organization: []string{ClusterAdminsGroup},
			Client: true,
			Desc:   "Generate the certificate the apiserver presents to kubelets",
		},
		{
			Name: NameFrontProxyCA, BaseName: "front-proxy-ca", IsCA: true, CommonName: "front-proxy-ca",
			Desc: "Generate the self-signed CA that signs the front proxy's client certificate",
		},
		{
			Name: NameFrontProxyClient, BaseName: "front-proxy-client", CA: NameFrontProxyCA,
			CommonName: "front-proxy-client", Client: true,
			Desc: "Generate the client certificate the apiserver uses as the front proxy to extension apiservers",
		},
	}
	if c != nil && c.Etcd.Local != nil {
		t = append(t,
			Spec{
				Name: NameEtcdCA, BaseName: "etcd/ca", IsCA: true, CommonName: "etcd-ca",
				Desc: "Generate the self-signed CA that signs the identities of etcd",
			},
			Spec{
				Name: NameEtcdServer, BaseName: "etcd/server", CA: NameEtcdCA, NodeNameCN: true,
				Server: true, Client: true, SANs: etcdServerSANs,
				Desc: "Generate the certificate for serving etcd",
			},
			Spec{
				Name: NameEtcdPeer, BaseName: "etcd/peer", CA: NameEtcdCA, NodeNameCN: true,
				Server: true, Client: true, SANs: etcdPeerSANs,
				Desc: "Generate the certificate etcd members use to talk to each other",
			},
			Spec{
				Name: NameEtcdHealthcheckClient, BaseName: "etcd/healthcheck-client", CA: NameEtcdCA,
				CommonName: "kube-etcd-healthcheck-client", Client: true,
				Desc: "Generate the client certificate the etcd liveness probe uses",
			},
			Spec{
				Name: NameAPIServerEtcdClient, BaseName: "apiserver-etcd-client", CA: NameEtcdCA,
				CommonName: "kube-apiserver-etcd-client", Client: true,
				Desc: "Generate the client certificate the apiserver uses to reach etcd",
			},
		)
	}
	return t
}

// Lookup returns the spec called name in Table(c).
func Lookup(c *config.Cluster, name string) (Spec, bool) {
	for _, s := range Table(c) {
		if s.Name == name {
			return s, true
		}
	}
	return Spec{}, false
}

// CertPath is the certificate file of s under dir.
func (s Spec) CertPath(dir string) string { return certPath(dir, s.BaseName) }

// KeyPath is the private key file of s under dir.
func (s Spec) KeyPath(dir string) string { return keyPath(dir, s.BaseName) }

// Subject returns the subject CN and O of s for the node of p.
func (s Spec) Subject(p Params) (cn string, org []string) {
	if s.NodeNameCN {
		return p.NodeName, s.Organization
	}
	return s.CommonName, s.Organization
}

// Validity is the lifetime a new certificate of s gets: CAValidity for a CA, CertValidity
// for a leaf.
func (s Spec) Validity(c *config.Cluster) time.Duration {
	if s.IsCA {
		return c.Certificates.CAValidity.Duration
	}
	return c.Certificates.CertValidity.Duration
}

var (
	errNoNodeName         = errors.New("the node name is not set")
	errNoAdvertiseAddress = errors.New("the advertise address is not set")
)

func apiServerSANs(p Params) (AltNames, error) {
	c := p.Cluster
	if p.NodeName == "" {
		return AltNames{}, errNoNodeName
	}
	if p.AdvertiseAddress == nil {
		return AltNames{}, errNoAdvertiseAddress
	}
	svc, err := c.ServiceIP(1)
	if err != nil {
		return AltNames{}, fmt.Errorf("finding the apiserver's service IP: %w", err)
	}
	var a AltNames
	for _, n := range []string{
		p.NodeName,
		"kubernetes",
		"kubernetes.default",
		"kubernetes.default.svc",
		"kubernetes.default.svc." + c.Networking.DNSDomain,
	} {
		a.Add(n)
	}
	a.AddIP(net.IP(svc.AsSlice()))
	a.AddIP(p.AdvertiseAddress)
	if h, _ := c.Endpoint(); h != "" {
		a.Add(h)
	}
	for _, n := range c.APIServer.CertSANs {
		a.Add(n)
	}
	return a, nil
}

func etcdSANs(p Params, extra []string) (AltNames, error) {
	if p.NodeName == "" {
		return AltNames{}, errNoNodeName
	}
	if p.AdvertiseAddress == nil {
		return AltNames{}, errNoAdvertiseAddress
	}
	var a AltNames
	a.Add(p.NodeName)
	a.Add("localhost")
	a.AddIP(p.AdvertiseAddress)
	a.AddIP(net.IPv4(127, 0, 0, 1))
	a.AddIP(net.IPv6loopback)
	for _, n := range extra {
		a.Add(n)
	}
	return a, nil
}

func etcdServerSANs(p Params) (AltNames, error) {
	var extra []string
	if l := p.Cluster.Etcd.Local; l != nil {
		extra = l.ServerCertSANs
	}
	return etcdSANs(p, extra)
}

func etcdPeerSANs(p Params) (AltNames, error) {
	var extra []string
	if l := p.Cluster.Etcd.Local; l != nil {
		extra = l.PeerCertSANs
	}
	return etcdSANs(p, extra)
}

// Files lists every file the certificate table and the service-account keys may write
// under dir, whatever the configuration: what reset may remove there.
func Files(dir string) []string {
	var files []string
	for _, s := range Table(&config.Cluster{Etcd: config.Etcd{Local: &config.LocalEtcd{}}}) {
		files = append(files, s.CertPath(dir), s.KeyPath(dir))
	}
	key, pub := ServiceAccountKeyPaths(dir)
	return append(files, key, pub)
}
