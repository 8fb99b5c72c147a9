//go:build e2e

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kforge/kforge/e2e/lab"
	"github.com/kforge/kforge/e2e/testbed"
	"github.com/kforge/kforge/etcd"
)

// extPKI is the external etcd's own CA, made by the test as an operator's tooling would.
type extPKI struct {
	t      *testing.T
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	caPEM  []byte
	serial int64
}

func newExtPKI(t *testing.T) *extPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "external-etcd-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &extPKI{t: t, cert: cert, key: key, serial: 1,
		caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// leaf signs a certificate for cn with the given IP SANs, usable as server and client.
func (p *extPKI) leaf(cn string, ips ...net.IP) (certPEM, keyPEM []byte) {
	p.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	p.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		p.t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		p.t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// putFile writes data to p on host h with mode.
func putFile(t *testing.T, ctx context.Context, h testbed.Host, p string, data []byte, mode string) {
	t.Helper()
	script := fmt.Sprintf("mkdir -p %s && cat > %s && chmod %s %s", path.Dir(p), p, mode, p)
	if _, errOut, err := h.Exec(ctx, strings.NewReader(string(data)), "sh", "-c", script); err != nil {
		t.Fatalf("writing %s on %s: %v: %s", p, h.Name, err, errOut)
	}
}

// TestExternalEtcd runs two control planes (h1, h2) against a three-member etcd on h3..h5
// that the test runs itself, with its own CA and client certificate, as an operator's
// etcd would be. The cluster comes up, keeps working when one etcd member is lost, and
// kforge reset on the control planes leaves the external etcd's members and data alone,
// and the operator's client files too.
func TestExternalEtcd(t *testing.T) {
	ctx := t.Context()
	l := newLab(t, ctx, 5)
	var hs []testbed.Host
	for _, name := range []string{"h1", "h2", "h3", "h4", "h5"} {
		h, _ := l.TB.Host(name)
		hs = append(hs, h)
	}
	cps, etcdHosts := hs[:2], hs[2:]
	pki := newExtPKI(t)

	// 1. The external etcd: three members with TLS for clients and peers.
	const etcdDir = "/var/lib/etcd/external"
	var initial, endpoints []string
	for _, h := range etcdHosts {
		initial = append(initial, fmt.Sprintf("%s=%s", h.Name, etcd.PeerURL(h.Address.String())))
		endpoints = append(endpoints, etcd.ClientURL(h.Address.String()))
	}
	for _, h := range etcdHosts {
		crt, key := pki.leaf(h.Name, net.IP(h.Address.AsSlice()), net.ParseIP("127.0.0.1"))
		putFile(t, ctx, h, etcdDir+"/pki/ca.crt", pki.caPEM, "0644")
		putFile(t, ctx, h, etcdDir+"/pki/member.crt", crt, "0644")
		putFile(t, ctx, h, etcdDir+"/pki/member.key", key, "0600")
		ip := h.Address.String()
		args := []string{
			path.Join(l.BundleDir, "bin", "etcd"), "--name", h.Name, "--data-dir", etcdDir + "/data",
			"--listen-client-urls", etcd.ClientURL(ip), "--advertise-client-urls", etcd.ClientURL(ip),
			"--listen-peer-urls", etcd.PeerURL(ip), "--initial-advertise-peer-urls", etcd.PeerURL(ip),
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--client-cert-auth", "--trusted-ca-file", etcdDir + "/pki/ca.crt",
			"--cert-file", etcdDir + "/pki/member.crt", "--key-file", etcdDir + "/pki/member.key",
			"--peer-client-cert-auth", "--peer-trusted-ca-file", etcdDir + "/pki/ca.crt",
			"--peer-cert-file", etcdDir + "/pki/member.crt", "--peer-key-file", etcdDir + "/pki/member.key",
		}
		// A process of the host's own (its PID 1 reaps it); it dies with the host.
		script := "setsid " + strings.Join(args, " ") + " </dev/null >/var/log/external-etcd.log 2>&1 &"
		if _, errOut, err := h.Exec(ctx, nil, "sh", "-c", script); err != nil {
			t.Fatalf("starting etcd on %s: %v: %s", h.Name, err, errOut)
		}
	}

	// The apiserver's client certificate, placed by the operator on the first control
	// plane only: the second gets it through kforge's sealed certificates.
	const clientDir = "/etc/kubernetes/external-etcd"
	clientCrt, clientKey := pki.leaf("kube-apiserver-etcd-client")
	putFile(t, ctx, cps[0], clientDir+"/ca.crt", pki.caPEM, "0644")
	putFile(t, ctx, cps[0], clientDir+"/client.crt", clientCrt, "0644")
	putFile(t, ctx, cps[0], clientDir+"/client.key", clientKey, "0600")
	dir := t.TempDir()
	for name, data := range map[string][]byte{"ca.crt": pki.caPEM, "client.crt": clientCrt, "client.key": clientKey} {
		if err := os.WriteFile(dir+"/"+name, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tlsConfig, err := etcd.TLSConfig(dir+"/ca.crt", dir+"/client.crt", dir+"/client.key")
	if err != nil {
		t.Fatal(err)
	}
	cli, err := etcd.New(endpoints, tlsConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	waitFor(t, ctx, "the external etcd's three members", 2*time.Minute, func() error { return etcdHealthy(ctx, cli, 3) })

	// 2. kforge: init on h1, a control-plane join on h2, both against the external etcd.
	quoted := make([]string, len(endpoints))
	for i, e := range endpoints {
		quoted[i] = fmt.Sprintf("%q", e)
	}
	cfg := l.ClusterConfigCP(2, cps...) + fmt.Sprintf("[etcd.external]\nendpoints = [%s]\nca_file = %q\ncert_file = %q\nkey_file = %q\n",
		strings.Join(quoted, ", "), clientDir+"/ca.crt", clientDir+"/client.crt", clientDir+"/client.key")
	for _, h := range cps {
		if err := l.WriteConfig(ctx, h, cfg); err != nil {
			t.Fatal(err)
		}
	}
	h1, h2 := &node{t: t, h: cps[0], lab: l}, &node{t: t, h: cps[1], lab: l}
	out, err := h1.run(ctx, "init", "-f", lab.ConfigPath, "--node", "h1", "--upload-certs")
	if err != nil {
		t.Fatal(err)
	}
	tokM, pinM, keyM := tokenRE.FindStringSubmatch(out), pinRE.FindStringSubmatch(out), certKeyRE.FindStringSubmatch(out)
	if tokM == nil || pinM == nil || keyM == nil {
		t.Fatalf("init printed no complete control-plane join command:\n%s", out)
	}
	start := time.Now()
	joinOut, err := h2.run(ctx, "join", "-f", lab.ConfigPath, "--node", "h2", "--token", tokM[1],
		"--discovery-token-ca-cert-hash", pinM[1], "--certificate-key", keyM[1])
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("control-plane join of h2 against the external etcd: %s\n%s", time.Since(start).Round(100*time.Millisecond), joinOut)
	cs := h1.adminClient(ctx)
	for _, n := range []string{"h1", "h2"} {
		waitFor(t, ctx, n+" Ready", 3*time.Minute, func() error { return nodeReady(ctx, cs, n) })
	}
	if ms, err := cli.Members(ctx); err != nil || len(ms) != 3 {
		t.Fatalf("the external etcd's members after init and join: %v %v, want its own three", ms, err)
	}
	if got := strings.TrimSpace(h2.sh(ctx, "ls /var/lib/etcd/member /etc/kubernetes/manifests/etcd.yaml 2>/dev/null | wc -l")); got != "0" {
		t.Errorf("h2 runs a local etcd next to the external one (%s entries)", got)
	}
	if mode := strings.TrimSpace(h2.sh(ctx, "stat -c %a "+clientDir+"/client.key")); mode != "600" {
		t.Errorf("the external etcd client key on h2 has mode %s, want 600", mode)
	}

	t.Run("survives the loss of one etcd member", func(t *testing.T) {
		if err := etcdHosts[0].PowerOff(ctx); err != nil {
			t.Fatal(err)
		}
		for _, cp := range cps {
			c := clientVia(t, ctx, cp, cp)
			name := fmt.Sprintf("after-%s-lost-via-%s", etcdHosts[0].Name, cp.Name)
			waitFor(t, ctx, "a write through "+cp.Name, 2*time.Minute, func() error {
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}
				_, err := c.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{})
				if apierrors.IsAlreadyExists(err) {
					return nil
				}
				return err
			})
		}
	})

	t.Run("reset leaves the external etcd alone", func(t *testing.T) {
		// reset deletes its Nodes through the API (so the count of keys may drop), but
		// nothing else: the operator's own key and the cluster's objects stay.
		ctl := etcdctl(t, ctx, l, etcdHosts[1], etcdDir)
		ctl("put", "/operator/marker", "kept")
		for _, n := range []*node{h2, h1} {
			if _, err := n.run(ctx, "reset"); err != nil {
				t.Fatal(err)
			}
		}
		if got := strings.TrimSpace(ctl("get", "/operator/marker", "--print-value-only")); got != "kept" {
			t.Errorf("the operator's key after reset = %q, want kept", got)
		}
		keys := ctl("get", "/registry/configmaps/default/", "--prefix", "--keys-only")
		for _, cp := range cps {
			if want := "/registry/configmaps/default/after-" + etcdHosts[0].Name + "-lost-via-" + cp.Name; !strings.Contains(keys, want) {
				t.Errorf("the cluster's ConfigMap %s is gone from the external etcd after reset; left:\n%s", want, keys)
			}
		}
		// Two members answer (the third is powered off); all three are still members.
		if ms, err := cli.Members(ctx); err != nil || len(ms) != 3 {
			t.Errorf("the external etcd's members after reset: %v %v, want all three", ms, err)
		}
		if left := h1.sh(ctx, "ls "+clientDir); !strings.Contains(left, "client.key") {
			t.Errorf("reset removed the operator's external etcd client files on h1: %q left", left)
		}
	})
}

// etcdctl returns a function that runs the bundle's etcdctl on host h against its external
// etcd member, with the member's own certificate, and returns its output.
func etcdctl(t *testing.T, ctx context.Context, l *lab.Lab, h testbed.Host, etcdDir string) func(args ...string) string {
	return func(args ...string) string {
		t.Helper()
		argv := append([]string{path.Join(l.BundleDir, "bin", "etcdctl"),
			"--endpoints", etcd.ClientURL(h.Address.String()), "--cacert", etcdDir + "/pki/ca.crt",
			"--cert", etcdDir + "/pki/member.crt", "--key", etcdDir + "/pki/member.key"}, args...)
		out, errOut, err := h.Exec(ctx, nil, argv...)
		if err != nil {
			t.Fatalf("etcdctl %s on %s: %v: %s", strings.Join(args, " "), h.Name, err, errOut)
		}
		return string(out)
	}
}
