// Package servingcsr decides whether a kubelet's serving CertificateSigningRequest
// (signer kubernetes.io/kubelet-serving, as a kubelet with serverTLSBootstrap files it)
// may be approved: it must come from the node it names and ask for exactly a serving
// certificate for that node's own names and addresses, as its Node object reports them.
// It takes values and returns a verdict; it reads nothing and writes nothing.
package servingcsr

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"net"
	"slices"
	"strings"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
)

// Verdict is what to do with a CSR.
type Verdict string

const (
	// Approve: the CSR is a serving certificate for its own node, and nothing more.
	Approve Verdict = "approve"
	// Deny: the CSR can never be valid (its request is not a well-formed, self-signed
	// certificate request), so leaving it pending helps no one.
	Deny Verdict = "deny"
	// Pending: kforge does not approve it; an operator may, by hand, after a look.
	Pending Verdict = "pending"
)

// Names the kubelet uses for itself.
const (
	nodeUserPrefix = "system:node:"
	nodesGroup     = "system:nodes"
)

// Decision is a verdict and why.
type Decision struct {
	Verdict Verdict
	// Node is the node the requester is, "" when it is not a node.
	Node string
	// Reason says why, in words for the operator.
	Reason string
}

// allowedUsages are the two sets of key usages a kubelet asks for its serving
// certificate: key encipherment only with an RSA key (newer kubelets leave it out for
// ECDSA keys, older ones ask for it whatever the key).
var allowedUsages = [][]certificatesv1.KeyUsage{
	{certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageServerAuth},
	{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth},
}

// Undecided reports whether csr is neither approved, denied nor failed.
func Undecided(csr *certificatesv1.CertificateSigningRequest) bool {
	for _, c := range csr.Status.Conditions {
		switch c.Type {
		case certificatesv1.CertificateApproved, certificatesv1.CertificateDenied, certificatesv1.CertificateFailed:
			return false
		}
	}
	return true
}

// Decide says whether csr may be approved. nodes are the cluster's Nodes by name. A CSR
// is approved only when all of these hold:
//   - its signer is kubernetes.io/kubelet-serving;
//   - the requester is system:node:<name>, in group system:nodes, and Node <name> exists;
//   - the request is well-formed and signed by its own key (else Deny);
//   - its subject is CN system:node:<name>, O system:nodes and nothing else;
//   - its usages are digital signature, server auth and, optionally, key encipherment;
//   - it names at least one DNS name or IP, each of them one of the Node's own addresses
//     (status.addresses of type Hostname for DNS names, InternalIP or ExternalIP for IPs),
//     and no email address or URI.
//
// Anything else is left Pending with the first reason found.
func Decide(csr *certificatesv1.CertificateSigningRequest, nodes map[string]*corev1.Node) Decision {
	pending := func(node, format string, args ...any) Decision {
		return Decision{Verdict: Pending, Node: node, Reason: fmt.Sprintf(format, args...)}
	}
	if csr.Spec.SignerName != certificatesv1.KubeletServingSignerName {
		return pending("", "signer is %q, not %s", csr.Spec.SignerName, certificatesv1.KubeletServingSignerName)
	}
	user := csr.Spec.Username
	name, ok := strings.CutPrefix(user, nodeUserPrefix)
	if !ok || name == "" {
		return pending("", "requested by %q, not by a node (system:node:<name>)", user)
	}
	if !slices.Contains(csr.Spec.Groups, nodesGroup) {
		return pending(name, "requester %s is not in group %s", user, nodesGroup)
	}
	node := nodes[name]
	if node == nil {
		return pending(name, "no Node %s in the cluster to check its addresses against", name)
	}
	req, err := parseRequest(csr.Spec.Request)
	if err != nil {
		return Decision{Verdict: Deny, Node: name, Reason: err.Error()}
	}
	if cn := req.Subject.CommonName; cn != user {
		return pending(name, "subject CN is %q, want %q (the requester)", cn, user)
	}
	if o := req.Subject.Organization; !slices.Equal(o, []string{nodesGroup}) {
		return pending(name, "subject O is %q, want [%s]", o, nodesGroup)
	}
	if extra := otherSubject(req); extra != "" {
		return pending(name, "subject has %s; a kubelet asks for CN and O only", extra)
	}
	if !usagesAllowed(csr.Spec.Usages) {
		return pending(name, "usages are %q, want digital signature, server auth and optionally key encipherment", csr.Spec.Usages)
	}
	if len(req.EmailAddresses) > 0 || len(req.URIs) > 0 {
		return pending(name, "asks for email or URI names (%d, %d); a kubelet serving certificate has DNS names and IPs only", len(req.EmailAddresses), len(req.URIs))
	}
	if len(req.DNSNames)+len(req.IPAddresses) == 0 {
		return pending(name, "asks for no DNS name and no IP address")
	}
	dns, ips := Addresses(node)
	for _, n := range req.DNSNames {
		if !slices.Contains(dns, n) {
			return pending(name, "DNS name %q is not one of Node %s's host names %q", n, name, dns)
		}
	}
	for _, ip := range req.IPAddresses {
		if !slices.ContainsFunc(ips, ip.Equal) {
			return pending(name, "IP %s is not one of Node %s's addresses %s", ip, name, ipStrings(ips))
		}
	}
	return Decision{Verdict: Approve, Node: name, Reason: fmt.Sprintf("serving certificate for Node %s's own names %q and addresses %s", name, req.DNSNames, ipStrings(req.IPAddresses))}
}

// Addresses returns the names and IPs a Node reports for itself: host names (type
// Hostname) and IPs (types InternalIP and ExternalIP), each once, in status order.
func Addresses(node *corev1.Node) (dns []string, ips []net.IP) {
	for _, a := range node.Status.Addresses {
		switch a.Type {
		case corev1.NodeHostName:
			if a.Address != "" && !slices.Contains(dns, a.Address) {
				dns = append(dns, a.Address)
			}
		case corev1.NodeInternalIP, corev1.NodeExternalIP:
			if ip := net.ParseIP(a.Address); ip != nil && !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
		}
	}
	return dns, ips
}

// parseRequest reads a PEM certificate request and checks its self-signature.
func parseRequest(data []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("the request is not a PEM CERTIFICATE REQUEST")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing the request: %w", err)
	}
	if err := req.CheckSignature(); err != nil {
		return nil, fmt.Errorf("the request is not signed by its own key: %w", err)
	}
	return req, nil
}

// otherSubject names a subject attribute besides CN and O, "" when there is none.
func otherSubject(req *x509.CertificateRequest) string {
	for _, a := range req.Subject.Names {
		if !a.Type.Equal(oidCommonName) && !a.Type.Equal(oidOrganization) {
			return "attribute " + a.Type.String()
		}
	}
	return ""
}

var (
	oidCommonName   = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidOrganization = asn1.ObjectIdentifier{2, 5, 4, 10}
)

// usagesAllowed reports whether usages are one of allowedUsages, in any order, each once.
func usagesAllowed(usages []certificatesv1.KeyUsage) bool {
	got := slices.Clone(usages)
	slices.Sort(got)
	for _, want := range allowedUsages {
		w := slices.Clone(want)
		slices.Sort(w)
		if slices.Equal(got, w) {
			return true
		}
	}
	return false
}

func ipStrings(ips []net.IP) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return "[" + strings.Join(s, " ") + "]"
}
