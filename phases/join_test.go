package phases

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/etcd"
	"github.com/kforge/kforge/internal/overlay"
	"github.com/kforge/kforge/kubeconfig"
	"github.com/kforge/kforge/kubelet"
	"github.com/kforge/kforge/manifests"
	"github.com/kforge/kforge/tokens"
)

// joinEnv is a first control-plane host's PKI (made by init's certs phase) and a fresh
// second host that joins the cluster, with fakes for the API, etcd and the service manager.
type joinEnv struct {
	d      *Data
	cs     *fake.Clientset
	out    *bytes.Buffer
	shared map[string][]byte
	caPEM  []byte
	key    bootstrap.CertificateKey
}

func newJoinEnv(t *testing.T, node string, objs ...corev1.Node) *joinEnv {
	t.Helper()
	c := &config.Cluster{Hosts: []config.Host{
		{Name: "cp1", Address: "192.0.2.10", Roles: []string{config.RoleControlPlane}},
		{Name: "cp2", Address: "192.0.2.11", Roles: []string{config.RoleControlPlane}},
		{Name: "w1", Address: "192.0.2.20", Roles: []string{config.RoleWorker}},
	}}
	config.SetDefaults(c)

	// The first host's certificates and encryption key, as init makes them.
	first := newTestData(t, c, "cp1", io.Discard, nil)
	if err := (&Workflow{Name: "init", Phases: []Phase{certsPhase()}}).Run(t.Context(), first, "", nil); err != nil {
		t.Fatal(err)
	}
	first.Join.ControlPlane = false // init, not a join
	if err := ensureEncryptionConfig(first); err != nil {
		t.Fatal(err)
	}
	shared := map[string][]byte{}
	for _, f := range bootstrap.SharedCertFiles(c, DefaultCertDir) {
		b, err := os.ReadFile(first.Path(f.Path))
		if err != nil {
			t.Fatal(err)
		}
		shared[f.Key] = b
	}
	key, err := bootstrap.GenerateCertificateKey()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := bootstrap.SealCerts(key, shared)
	if err != nil {
		t.Fatal(err)
	}
	cs := fake.NewClientset(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: bootstrap.CertsSecretName}, Data: sealed})
	for i := range objs {
		if _, err := cs.CoreV1().Nodes().Create(t.Context(), &objs[i], metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	out := &bytes.Buffer{}
	tok, _ := tokens.Parse("abcdef.0123456789abcdef")
	d := newTestData(t, c, node, out, cs)
	d.Log = slog.New(slog.NewTextHandler(out, nil))
	d.Wait = time.Second
	d.Token = tok
	return &joinEnv{d: d, cs: cs, out: out, shared: shared, caPEM: shared["ca.crt"], key: key}
}

func (e *joinEnv) prepare(t *testing.T, key bootstrap.CertificateKey) error {
	t.Helper()
	return PrepareJoin(t.Context(), e.d, &Discovered{Server: "https://192.0.2.10:6443", CAPEM: e.caPEM, Client: e.cs}, key)
}

func readyNode(name string, ready bool) corev1.Node {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}}}}
}

func TestPrepareJoinRefusesBeforeWriting(t *testing.T) {
	tests := []struct {
		name    string
		node    string
		nodes   []corev1.Node
		key     func(e *joinEnv) bootstrap.CertificateKey
		setup   func(t *testing.T, e *joinEnv)
		wantErr string
		is      error
	}{
		{name: "worker with a free name", node: "w1"},
		{name: "a NotReady node of that name is taken over", node: "w1", nodes: []corev1.Node{readyNode("w1", false)}},
		{name: "a Ready node of that name is refused", node: "w1", nodes: []corev1.Node{readyNode("w1", true)},
			wantErr: `a Ready node named "w1" is already in the cluster`},
		{name: "control plane with the right key", node: "cp2", key: func(e *joinEnv) bootstrap.CertificateKey { return e.key }},
		{name: "control plane with a wrong key", node: "cp2",
			key: func(*joinEnv) bootstrap.CertificateKey {
				k, _ := bootstrap.GenerateCertificateKey()
				return k
			},
			wantErr: "the certificate key does not open", is: bootstrap.ErrWrongCertificateKey},
		{name: "control plane without a key or files", node: "cp2", wantErr: "pass --certificate-key"},
		{name: "control plane after the certificates expired", node: "cp2", key: func(e *joinEnv) bootstrap.CertificateKey { return e.key },
			setup: func(t *testing.T, e *joinEnv) {
				if err := e.cs.CoreV1().Secrets("kube-system").Delete(t.Context(), bootstrap.CertsSecretName, metav1.DeleteOptions{}); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: "kforge init phase upload-certs --upload-certs"},
		{name: "a host with another cluster's CA", node: "w1",
			setup: func(t *testing.T, e *joinEnv) {
				writeFile(t, e.d.Path("/etc/kubernetes/pki/ca.crt"), []byte("-----BEGIN CERTIFICATE-----\nb3RoZXI=\n-----END CERTIFICATE-----\n"))
			},
			wantErr: "is not the CA of the cluster being joined"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newJoinEnv(t, tc.node, tc.nodes...)
			var key bootstrap.CertificateKey
			if tc.key != nil {
				key = tc.key(e)
			}
			if tc.setup != nil {
				tc.setup(t, e)
			}
			before := listFiles(t, e.d.Root)
			err := e.prepare(t, key)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("PrepareJoin: %v", err)
				}
				if e.d.Join.ControlPlane && len(e.d.Join.SharedCerts) != len(e.shared) {
					t.Errorf("opened %d shared files, want %d", len(e.d.Join.SharedCerts), len(e.shared))
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("PrepareJoin: %v, want an error saying %q", err, tc.wantErr)
				}
				if tc.is != nil && !errors.Is(err, tc.is) {
					t.Errorf("PrepareJoin: %v does not wrap %v", err, tc.is)
				}
			}
			if after := listFiles(t, e.d.Root); after != before {
				t.Errorf("PrepareJoin wrote files:\nbefore: %s\nafter: %s", before, after)
			}
			if strings.Contains(e.out.String(), "0123456789abcdef") || strings.Contains(e.out.String(), e.key.Reveal()) {
				t.Errorf("a secret reached the output:\n%s", e.out)
			}
		})
	}
}

func listFiles(t *testing.T, root string) string {
	t.Helper()
	var names []string
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !info.IsDir() {
			names = append(names, strings.TrimPrefix(p, root))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(names, " ")
}

func TestJoinWorkflowControlPlane(t *testing.T) {
	e := newJoinEnv(t, "cp2")
	e.cs.CoreV1().Pods("kube-system").Create(t.Context(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "etcd-cp1", Namespace: "kube-system",
			Labels:      map[string]string{"component": "etcd", "tier": "control-plane"},
			Annotations: map[string]string{manifests.EtcdClientURLsAnnotation: etcd.ClientURL("192.0.2.10")}},
	}, metav1.CreateOptions{})
	e.cs.CoreV1().Nodes().Create(t.Context(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cp2"}}, metav1.CreateOptions{})
	if err := e.prepare(t, e.key); err != nil {
		t.Fatal(err)
	}
	wf := JoinWorkflow()
	skip := []string{"preflight", "bundle", "container-runtime"}
	if err := wf.Run(t.Context(), e.d, "", skip); err != nil {
		t.Fatalf("join: %v\n%s", err, e.out)
	}
	for key, want := range e.shared {
		rel := strings.Replace(key, "etcd-", "etcd/", 1)
		got, err := os.ReadFile(e.d.Path(filepath.Join(DefaultCertDir, rel)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("download-certs: %s: %v, content equal %v", rel, err, bytes.Equal(got, want))
		}
	}
	for _, f := range []string{"ca.key", "encryption-config.yaml"} {
		if fi, err := os.Stat(e.d.Path("/etc/kubernetes/pki/" + f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", f, fi, err)
		}
	}
	for _, f := range []string{"/etc/kubernetes/admin.conf", "/etc/kubernetes/pki/apiserver.crt", "/etc/kubernetes/manifests/kube-apiserver.yaml"} {
		if _, err := os.Stat(e.d.Path(f)); err != nil {
			t.Errorf("join did not write %s: %v", f, err)
		}
	}
	if _, err := os.Stat(e.d.Path("/etc/kubernetes/super-admin.conf")); err == nil {
		t.Error("a control-plane join wrote super-admin.conf, which belongs to the init host only")
	}
	m, err := os.ReadFile(e.d.Path("/etc/kubernetes/manifests/etcd.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--initial-cluster-state=existing", "--initial-cluster=member-1=https://192.0.2.10:2380,cp2=https://192.0.2.11:2380"} {
		if !strings.Contains(string(m), want) {
			t.Errorf("etcd manifest lacks %s:\n%s", want, m)
		}
	}
	for _, want := range []string{"would add etcd learner https://192.0.2.11:2380", "would promote etcd member"} {
		if !strings.Contains(e.out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, e.out)
		}
	}
	boot, err := os.ReadFile(e.d.Path("/etc/kubernetes/bootstrap-kubelet.conf"))
	if err == nil {
		t.Errorf("bootstrap-kubelet.conf is still there after kubelet-wait-bootstrap:\n%s", boot)
	}
	if strings.Contains(e.out.String(), e.d.Token.Secret) {
		t.Errorf("the token secret reached the output:\n%s", e.out)
	}
}

func TestJoinWorkflowWorker(t *testing.T) {
	e := newJoinEnv(t, "w1")
	e.cs.CoreV1().Nodes().Create(t.Context(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w1"}}, metav1.CreateOptions{})
	if err := e.prepare(t, bootstrap.CertificateKey{}); err != nil {
		t.Fatal(err)
	}
	// Stop before kubelet-wait-bootstrap, which removes bootstrap-kubelet.conf.
	if err := JoinWorkflow().Run(t.Context(), e.d, "kubelet-start", nil); err != nil {
		t.Fatalf("join phase kubelet-start: %v\n%s", err, e.out)
	}
	ca, err := os.ReadFile(e.d.Path("/etc/kubernetes/pki/ca.crt"))
	if err != nil || !bytes.Equal(ca, e.caPEM) {
		t.Errorf("ca.crt: %v, want the discovered CA", err)
	}
	boot, err := os.ReadFile(e.d.Path("/etc/kubernetes/bootstrap-kubelet.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"server: https://192.0.2.10:6443", "token: abcdef.0123456789abcdef", "tls-bootstrap-token-user"} {
		if !strings.Contains(string(boot), want) {
			t.Errorf("bootstrap-kubelet.conf lacks %q:\n%s", want, boot)
		}
	}
	if fi, _ := os.Stat(e.d.Path("/etc/kubernetes/bootstrap-kubelet.conf")); fi.Mode().Perm() != 0o600 {
		t.Errorf("bootstrap-kubelet.conf has mode %v, want 0600", fi.Mode().Perm())
	}
	for _, f := range []string{"/etc/kubernetes/manifests/kube-apiserver.yaml", "/etc/kubernetes/admin.conf", "/etc/kubernetes/pki/ca.key"} {
		if _, err := os.Stat(e.d.Path(f)); err == nil {
			t.Errorf("a worker join wrote %s", f)
		}
	}
	if !strings.Contains(e.out.String(), "would restart kubelet") && !strings.Contains(e.out.String(), "kubelet") {
		t.Errorf("the kubelet was not started:\n%s", e.out)
	}
}

// TestDownloadCertsWritesSecretsPrivate checks that every private key download-certs writes
// is 0600 whatever its name: an external etcd's client key is often "client-key.pem".
func TestDownloadCertsWritesSecretsPrivate(t *testing.T) {
	c := &config.Cluster{
		Etcd: config.Etcd{External: &config.ExternalEtcd{Endpoints: []string{"https://192.0.2.50:2379"},
			CAFile: "/etc/etcd/pki/ca.pem", CertFile: "/etc/etcd/pki/client.pem", KeyFile: "/etc/etcd/pki/client-key.pem"}},
		Hosts: []config.Host{{Name: "cp2", Address: "192.0.2.11", Roles: []string{config.RoleControlPlane}}},
	}
	config.SetDefaults(c)
	d := newTestData(t, c, "cp2", io.Discard, nil)
	d.Join.SharedCerts = map[string][]byte{}
	for _, f := range bootstrap.SharedCertFiles(c, DefaultCertDir) {
		d.Join.SharedCerts[f.Key] = []byte("content of " + f.Key)
	}
	if err := downloadCertsPhase().Run(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	want := map[string]os.FileMode{
		"/etc/etcd/pki/client-key.pem":         0o600,
		"/etc/etcd/pki/client.pem":             0o644,
		"/etc/etcd/pki/ca.pem":                 0o644,
		DefaultCertDir + "/sa.key":             0o600,
		DefaultCertDir + "/sa.pub":             0o644,
		DefaultCertDir + "/ca.key":             0o600,
		DefaultCertDir + "/ca.crt":             0o644,
		DefaultCertDir + "/front-proxy-ca.key": 0o600,
	}
	for p, mode := range want {
		fi, err := os.Stat(d.Path(p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode().Perm(), mode)
		}
	}
}

// TestPrepareJoinDryRunReadsTheHost is issue 10, item 26: a dry run of join on a host that
// had joined looked for kubelet.conf in its empty scratch root, and refused the host's own
// Ready node, where a real join converges.
func TestPrepareJoinDryRunReadsTheHost(t *testing.T) {
	e := newJoinEnv(t, "w1", readyNode("w1", true))
	// The host's real files live outside the scratch root.
	host := t.TempDir()
	e.d.CertDir, e.d.KubeconfigDir = filepath.Join(host, "pki"), filepath.Join(host, "kube")
	e.d.DryRun = true
	e.d.overlay = overlay.New("/", e.d.Root)

	caCert, err := certs.ParseCertPEM(e.shared["ca.crt"])
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := certs.ParseKeyPEM(e.shared["ca.key"])
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := certs.NewClientCert(caCert, caKey, certs.ClientRequest{
		CommonName: kubeconfig.NodeUserPrefix + "w1", Organization: []string{"system:nodes"},
		Validity: time.Hour, KeyAlgorithm: e.d.Cluster.Certificates.KeyAlgorithm,
	})
	if err != nil {
		t.Fatal(err)
	}
	conf, err := kubeconfig.Build(e.d.Cluster.Name, "https://192.0.2.10:6443", e.caPEM, kubeconfig.NodeUserPrefix+"w1", certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(e.d.KubeconfigDir, kubelet.KubeconfigName), conf)
	writeFile(t, filepath.Join(e.d.CertDir, "ca.crt"), e.caPEM)

	before := listFiles(t, host)
	if err := e.prepare(t, bootstrap.CertificateKey{}); err != nil {
		t.Fatalf("dry-run PrepareJoin on a joined host: %v", err)
	}
	if !e.d.Join.AlreadyJoined || !strings.Contains(e.out.String(), "already joined") {
		t.Errorf("AlreadyJoined = %v, want true and said:\n%s", e.d.Join.AlreadyJoined, e.out)
	}
	if after := listFiles(t, host); after != before {
		t.Errorf("the dry run changed the host's files:\nbefore: %s\nafter: %s", before, after)
	}

	// Another cluster's CA on the host is refused by a dry run too (a new run: a new
	// scratch root over the host).
	writeFile(t, filepath.Join(e.d.CertDir, "ca.crt"), []byte("-----BEGIN CERTIFICATE-----\nb3RoZXI=\n-----END CERTIFICATE-----\n"))
	e.d.Root = t.TempDir()
	e.d.overlay = overlay.New("/", e.d.Root)
	if err := e.prepare(t, bootstrap.CertificateKey{}); err == nil || !strings.Contains(err.Error(), "is not the CA of the cluster being joined") {
		t.Errorf("dry-run PrepareJoin with another cluster's CA: %v, want a refusal", err)
	}
}
