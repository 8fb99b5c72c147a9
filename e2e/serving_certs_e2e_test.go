//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/kforge/kforge/e2e/lab"
	"github.com/kforge/kforge/fleet"
	"github.com/kforge/kforge/servingcsr"
)

// servingConfig turns kubelet.server_tls_bootstrap on in a cluster.toml from
// lab.UpConfig (which writes no [kubelet] table).
func servingConfig(text string) string {
	top, hosts, _ := strings.Cut(text, "[[hosts]]")
	return top + "[kubelet]\nserver_tls_bootstrap = true\n\n[[hosts]]" + hosts
}

// checkServingCerts checks a cluster that kforge up brought up with
// kubelet.server_tls_bootstrap = true, through its admin kubeconfig adminPath:
//   - every Node's kubelet port presents a certificate that chains to the cluster CA (the
//     only root trusted) and names exactly the Node's own addresses: its Hostname
//     addresses as DNS names, its InternalIP and ExternalIP addresses as IPs;
//   - `kubectl logs` and `kubectl exec` work on a pod on every node: pods/log and
//     pods/exec through the apiserver, which now verifies each kubelet;
//   - the apiserver manifest of every control plane has
//     --kubelet-certificate-authority=/etc/kubernetes/pki/ca.crt;
//   - a forged CSR is left pending by a re-run of up (rerunUp, which runs up with the
//     same file and returns its report): one submitted with admin credentials that asks
//     for system:node:<a>'s certificate with the names of node b, and one submitted with
//     node a's own kubelet credentials asking for node b's IP.
//
// controlPlanes name the control-plane nodes; nodes holds every node, to read files on it.
func checkServingCerts(t *testing.T, ctx context.Context, adminPath string, nodes map[string]*node, controlPlanes []string, rerunUp func() upRun) {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", adminPath)
	if err != nil {
		t.Fatal(err)
	}
	rc.Timeout = 30 * time.Second
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(rc.CAData) {
		t.Fatalf("%s embeds no cluster CA", adminPath)
	}
	list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != len(nodes) {
		t.Fatalf("%d Nodes in the cluster, want %d", len(list.Items), len(nodes))
	}

	t.Run("each kubelet serves a CA-signed certificate with exactly its own names", func(t *testing.T) {
		for i := range list.Items {
			nd := &list.Items[i]
			wantDNS, wantIPs := servingcsr.Addresses(nd)
			var ips []string
			for _, ip := range wantIPs {
				ips = append(ips, ip.String())
			}
			cert := kubeletCert(t, ctx, nd, pool)
			var gotIPs []string
			for _, ip := range cert.IPAddresses {
				gotIPs = append(gotIPs, ip.String())
			}
			if !sameSet(cert.DNSNames, wantDNS) || !sameSet(gotIPs, ips) || len(cert.EmailAddresses)+len(cert.URIs) > 0 {
				t.Errorf("%s: kubelet certificate names DNS %q, IPs %q, email %q, URIs %v; want exactly DNS %q and IPs %q",
					nd.Name, cert.DNSNames, gotIPs, cert.EmailAddresses, cert.URIs, wantDNS, ips)
			}
			if want := "system:node:" + nd.Name; cert.Subject.CommonName != want {
				t.Errorf("%s: kubelet certificate CN %q, want %q", nd.Name, cert.Subject.CommonName, want)
			}
		}
	})

	t.Run("the apiserver verifies kubelets", func(t *testing.T) {
		for _, cp := range controlPlanes {
			out, errOut, err := nodes[cp].h.Exec(ctx, nil, "cat", "/etc/kubernetes/manifests/kube-apiserver.yaml")
			if err != nil {
				t.Fatalf("reading the apiserver manifest on %s: %v: %s", cp, err, errOut)
			}
			if !bytes.Contains(out, []byte("- --kubelet-certificate-authority=/etc/kubernetes/pki/ca.crt\n")) {
				t.Errorf("%s: the apiserver manifest lacks --kubelet-certificate-authority:\n%s", cp, out)
			}
			if _, errOut, err := nodes[cp].h.Exec(ctx, nil, "test", "-e", fleet.KubeletServingMarker); err != nil {
				t.Errorf("%s: %s is missing: %v: %s", cp, fleet.KubeletServingMarker, err, errOut)
			}
		}
	})

	t.Run("logs and exec on every node", func(t *testing.T) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-serving-"}}
		ns, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cs.CoreV1().Namespaces().Delete(context.WithoutCancel(ctx), ns.Name, metav1.DeleteOptions{})
		})
		for i := range list.Items {
			name := list.Items[i].Name
			p := testPod("serving-"+name, name, "echo hello from "+name+"; exec sleep 3600")
			if _, err := cs.CoreV1().Pods(ns.Name).Create(ctx, p, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		for i := range list.Items {
			name := list.Items[i].Name
			pod := "serving-" + name
			waitFor(t, ctx, "pod "+pod+" Running", 2*time.Minute, func() error {
				p, err := cs.CoreV1().Pods(ns.Name).Get(ctx, pod, metav1.GetOptions{})
				if err != nil {
					return err
				}
				if p.Status.Phase != corev1.PodRunning {
					return fmt.Errorf("phase %s", p.Status.Phase)
				}
				return nil
			})
			logs, err := cs.CoreV1().Pods(ns.Name).GetLogs(pod, &corev1.PodLogOptions{}).DoRaw(ctx)
			if err != nil {
				t.Errorf("%s: kubectl logs through the apiserver: %v", name, err)
			} else if !strings.Contains(string(logs), "hello from "+name) {
				t.Errorf("%s: logs %q, want %q", name, logs, "hello from "+name)
			}
			out, err := podExec(ctx, rc, cs, ns.Name, pod, "echo", "exec on "+name)
			if err != nil {
				t.Errorf("%s: kubectl exec through the apiserver: %v", name, err)
			} else if strings.TrimSpace(out) != "exec on "+name {
				t.Errorf("%s: exec printed %q, want %q", name, out, "exec on "+name)
			}
		}
	})

	t.Run("a forged CSR is left pending by up", func(t *testing.T) {
		if len(list.Items) < 2 {
			t.Skip("forging another node's names needs two nodes")
		}
		a, b := &list.Items[0], &list.Items[1]
		bDNS, bIPs := servingcsr.Addresses(b)
		// With admin credentials: the requester is not the node it names.
		byAdmin := submitServingCSR(t, ctx, cs, "e2e-forged-admin", "system:node:"+a.Name, bDNS, bIPs)
		// With node a's own credentials (its kubelet's client certificate): a node that asks
		// for another node's address.
		nodeCS := nodeClient(t, ctx, rc, nodes[a.Name])
		byNode := submitServingCSR(t, ctx, nodeCS, "e2e-forged-node", "system:node:"+a.Name, []string{a.Name}, bIPs)
		t.Cleanup(func() {
			for _, n := range []string{byAdmin, byNode} {
				_ = cs.CertificatesV1().CertificateSigningRequests().Delete(context.WithoutCancel(ctx), n, metav1.DeleteOptions{})
			}
		})
		r := rerunUp()
		if r.err != nil {
			t.Fatalf("up again: %v\n%s", r.err, r.stderr)
		}
		for _, n := range []string{byAdmin, byNode} {
			csr, err := cs.CertificatesV1().CertificateSigningRequests().Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(csr.Status.Conditions) != 0 || len(csr.Status.Certificate) != 0 {
				t.Errorf("forged CSR %s was decided: %+v", n, csr.Status.Conditions)
			}
			var seen *fleet.ServingCSR
			if r.report.ServingCerts != nil {
				for i, c := range r.report.ServingCerts.CSRs {
					if c.Name == n {
						seen = &r.report.ServingCerts.CSRs[i]
					}
				}
			}
			if seen == nil || seen.Verdict != servingcsr.Pending || seen.Reason == "" {
				t.Errorf("up's report does not list forged CSR %s as left pending with a reason: %+v", n, seen)
			}
		}
		if r.report.ServingCerts == nil || !r.report.ServingCerts.VerifyKubelets {
			t.Errorf("after a run with forged CSRs pending, the report says the apiserver does not verify kubelets: %+v", r.report.ServingCerts)
		}
	})
}

// kubeletCert dials a Node's kubelet port at its first InternalIP trusting only pool, and
// returns the certificate it presents, verified for that address.
func kubeletCert(t *testing.T, ctx context.Context, nd *corev1.Node, pool *x509.CertPool) *x509.Certificate {
	t.Helper()
	var addr string
	for _, a := range nd.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			addr = a.Address
			break
		}
	}
	if addr == "" {
		t.Fatalf("%s reports no InternalIP", nd.Name)
	}
	port := int(nd.Status.DaemonEndpoints.KubeletEndpoint.Port)
	if port == 0 {
		port = fleet.DefaultKubeletPort
	}
	d := tls.Dialer{Config: &tls.Config{RootCAs: pool, ServerName: addr, MinVersion: tls.VersionTLS12}}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("%s: the kubelet at %s:%d does not present a certificate of the cluster CA for %s: %v", nd.Name, addr, port, addr, err)
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0]
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// podExec runs cmd in pod's first container through the apiserver (pods/exec), as kubectl
// exec does, and returns its stdout.
func podExec(ctx context.Context, rc *rest.Config, cs kubernetes.Interface, ns, pod string, cmd ...string) (string, error) {
	req := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Command: cmd, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	spdy, err := remotecommand.NewSPDYExecutor(rc, "POST", req.URL())
	if err != nil {
		return "", err
	}
	ws, err := remotecommand.NewWebSocketExecutor(rc, "GET", req.URL().String())
	if err != nil {
		return "", err
	}
	exec, err := remotecommand.NewFallbackExecutor(ws, spdy, func(error) bool { return true })
	if err != nil {
		return "", err
	}
	var stdout, stderr bytes.Buffer
	ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := exec.StreamWithContext(ectx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr}); err != nil {
		return stdout.String(), fmt.Errorf("%w (stderr %q)", err, stderr.String())
	}
	return stdout.String(), nil
}

// nodeClient is an API client with a node's own credentials: its kubelet's current client
// certificate and key, read from the host.
func nodeClient(t *testing.T, ctx context.Context, admin *rest.Config, n *node) kubernetes.Interface {
	t.Helper()
	pemBytes, errOut, err := n.h.Exec(ctx, nil, "cat", "/var/lib/kubelet/pki/kubelet-client-current.pem")
	if err != nil {
		t.Fatalf("reading %s's kubelet client certificate: %v: %s", n.h.Name, err, errOut)
	}
	var certPEM, keyPEM []byte
	for rest := pemBytes; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == "CERTIFICATE" {
			certPEM = append(certPEM, pem.EncodeToMemory(block)...)
		} else {
			keyPEM = pem.EncodeToMemory(block)
		}
	}
	rc := &rest.Config{
		Host:            admin.Host,
		TLSClientConfig: rest.TLSClientConfig{CAData: admin.CAData, CertData: certPEM, KeyData: keyPEM},
		Timeout:         30 * time.Second,
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// submitServingCSR files a kubelet-serving CSR with cs's credentials for subject cn and
// the names given, and returns its name.
func submitServingCSR(t *testing.T, ctx context.Context, cs kubernetes.Interface, name, cn string, dns []string, ips []net.IP) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: cn, Organization: []string{"system:nodes"}},
		DNSNames:    dns,
		IPAddresses: ips,
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr := &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			SignerName: certificatesv1.KubeletServingSignerName,
			Usages:     []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth},
		},
	}
	if _, err := cs.CertificatesV1().CertificateSigningRequests().Create(ctx, csr, metav1.CreateOptions{}); err != nil {
		t.Fatalf("submitting forged CSR %s: %v", name, err)
	}
	return name
}

// servingCertsOnUp is the serving-certificate scenario for a cluster (control planes cps,
// and the workers of nodes), made by up with the file basicText
// (lab.UpConfig, without the option) and its admin kubeconfig at adminPath: up with
// kubelet.server_tls_bootstrap = true, then checkServingCerts (with a re-run of up that
// must leave forged CSRs pending), then up with the option off again, after which the
// apiserver no longer verifies kubelets and the record is gone. up writes the file next to
// adminPath.
func servingCertsOnUp(t *testing.T, ctx context.Context, l *lab.Lab, knownHosts, adminPath, basicText, basicPath string, cps []string, nodes map[string]*node) {
	t.Helper()
	path := filepath.Join(filepath.Dir(adminPath), "serving.toml")
	if err := os.WriteFile(path, []byte(servingConfig(basicText)), 0o600); err != nil {
		t.Fatal(err)
	}
	on := kforgeUp(t, ctx, l, path, knownHosts, nil)
	if on.err != nil {
		t.Fatalf("kforge up with server_tls_bootstrap = true: %v\n%s", on.err, on.stderr)
	}
	if s := on.report.ServingCerts; s == nil || !s.VerifyKubelets {
		t.Fatalf("up did not turn on --kubelet-certificate-authority: %+v\n%s", s, on.stderr)
	}
	t.Logf("up turning server_tls_bootstrap on took %s", on.took.Round(100*time.Millisecond))
	checkServingCerts(t, ctx, adminPath, nodes, cps, func() upRun {
		return kforgeUp(t, ctx, l, path, knownHosts, nil)
	})

	off := kforgeUp(t, ctx, l, basicPath, knownHosts, nil)
	if off.err != nil {
		t.Fatalf("kforge up with server_tls_bootstrap off again: %v\n%s", off.err, off.stderr)
	}
	for _, cpName := range cps {
		out, errOut, err := nodes[cpName].h.Exec(ctx, nil, "cat", "/etc/kubernetes/manifests/kube-apiserver.yaml")
		if err != nil {
			t.Fatalf("reading the apiserver manifest on %s: %v: %s", cpName, err, errOut)
		}
		if bytes.Contains(out, []byte("--kubelet-certificate-authority")) {
			t.Errorf("with server_tls_bootstrap off, the apiserver of %s still verifies kubelets:\n%s", cpName, out)
		}
		if _, _, err := nodes[cpName].h.Exec(ctx, nil, "test", "-e", fleet.KubeletServingMarker); err == nil {
			t.Errorf("with server_tls_bootstrap off, %s is still on %s", fleet.KubeletServingMarker, cpName)
		}
	}
	t.Logf("up turning server_tls_bootstrap off took %s", off.took.Round(100*time.Millisecond))
}
