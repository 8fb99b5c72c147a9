package phases

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/cluster-bootstrap/token/jws"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/internal/apiclient"
	"github.com/kforge/kforge/internal/testutil"
	"github.com/kforge/kforge/tokens"
)

var (
	testNow           = time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	configMapsGVR     = corev1.SchemeGroupVersion.WithResource("configmaps")
	secretsGVR        = corev1.SchemeGroupVersion.WithResource("secrets")
	nodesGVR          = corev1.SchemeGroupVersion.WithResource("nodes")
	notReadyTaint     = corev1.Taint{Key: "node.kubernetes.io/not-ready", Effect: corev1.TaintEffectNoSchedule}
	configMapResource = schema.GroupResource{Resource: "configmaps"}
)

// onlineEnv is an init node after wait-control-plane: a PKI on disk, a kubelet config, and
// a fake apiserver in which the kubelet has registered the Node.
type onlineEnv struct {
	d      *Data
	cs     *fake.Clientset
	out    *bytes.Buffer
	log    *bytes.Buffer
	shared map[string][]byte // the files upload-certs must upload, by Secret key
	now    time.Time
}

func newOnlineEnv(t *testing.T, edit func(c *config.Cluster)) *onlineEnv {
	t.Helper()
	c := &config.Cluster{Hosts: []config.Host{
		{Name: "cp1", Address: "192.0.2.10", Roles: []string{config.RoleControlPlane}},
		{Name: "w1", Address: "192.0.2.20", Roles: []string{config.RoleWorker}},
	}}
	if edit != nil {
		edit(c)
	}
	config.SetDefaults(c)

	root := t.TempDir()
	e := &onlineEnv{
		cs: fake.NewClientset(&corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "cp1", Labels: map[string]string{"kubernetes.io/os": "linux"}},
			Spec:       corev1.NodeSpec{Taints: []corev1.Taint{notReadyTaint}},
		}),
		out:    &bytes.Buffer{},
		log:    &bytes.Buffer{},
		shared: writeTestPKI(t, filepath.Join(root, DefaultCertDir)),
		now:    testNow,
	}
	e.d = newTestData(t, c, "cp1", e.out, e.cs)
	e.d.Root = root
	e.d.Log = slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.d.Now = func() time.Time { return e.now }
	e.d.Waiter = HealthWaiter{Interval: 5 * time.Millisecond}
	e.d.SuperAdminClient = e.d.Client
	e.d.BootstrapData.UploadCerts = true
	return e
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeTestPKI writes the files upload-certs shares; only ca.crt needs to be a real
// certificate (show-join-command pins it).
func writeTestPKI(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"},
		NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"ca.crt":             pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"ca.key":             []byte("ca key"),
		"front-proxy-ca.crt": []byte("front-proxy ca"),
		"front-proxy-ca.key": []byte("front-proxy key"),
		"sa.key":             []byte("sa key"),
		"sa.pub":             []byte("sa pub"),
		"etcd/ca.crt":        []byte("etcd ca"),
		"etcd/ca.key":        []byte("etcd key"),
		// As the control-plane phase makes it (security.encrypt_secrets).
		"encryption-config.yaml": []byte("encryption config"),
	}
	shared := map[string][]byte{}
	for rel, data := range files {
		writeFile(t, filepath.Join(dir, rel), data)
		shared[strings.ReplaceAll(rel, "/", "-")] = data
	}
	return shared
}

// bootstrapSigner stands in for the controller-manager's bootstrapsigner: from the
// (after+1)-th read of cluster-info on, it signs cluster-info with every token that has the
// signing usage, with cluster-bootstrap's own JWS helper. A non-empty forge replaces every
// token secret, as a forger who does not know it would.
func bootstrapSigner(t *testing.T, cs *fake.Clientset, after int, forge string) {
	reads := 0
	cs.PrependReactor("get", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		g := a.(k8stesting.GetAction)
		if g.GetNamespace() != "kube-public" || g.GetName() != "cluster-info" {
			return false, nil, nil
		}
		if reads++; reads <= after {
			return false, nil, nil
		}
		obj, err := cs.Tracker().Get(configMapsGVR, "kube-public", "cluster-info")
		if err != nil {
			return false, nil, nil
		}
		cm := obj.(*corev1.ConfigMap)
		list, err := cs.Tracker().List(secretsGVR, corev1.SchemeGroupVersion.WithKind("Secret"), "kube-system")
		if err != nil {
			t.Errorf("bootstrapsigner: listing secrets: %v", err)
			return false, nil, nil
		}
		changed := false
		for i := range list.(*corev1.SecretList).Items {
			tok, spec, err := tokens.FromSecret(&list.(*corev1.SecretList).Items[i])
			if err != nil || !spec.Has(tokens.UsageSigning) {
				continue
			}
			secret := tok.Secret
			if forge != "" {
				secret = forge
			}
			sig, err := jws.ComputeDetachedSignature(cm.Data["kubeconfig"], tok.ID, secret)
			if err != nil {
				t.Errorf("bootstrapsigner: %v", err)
				return false, nil, nil
			}
			if k := "jws-kubeconfig-" + tok.ID; cm.Data[k] != sig {
				cm.Data[k] = sig
				changed = true
			}
		}
		if changed {
			if err := cs.Tracker().Update(configMapsGVR, cm, "kube-public"); err != nil {
				t.Errorf("bootstrapsigner: %v", err)
			}
		}
		return false, nil, nil
	})
}

func onlineWorkflow() *Workflow {
	return &Workflow{Name: "init", Phases: []Phase{
		UploadConfigPhase(),
		UploadCertsPhase(),
		MarkControlPlanePhase(),
		BootstrapTokenPhase(),
		ShowJoinCommandPhase(),
	}}
}

func (e *onlineEnv) run(t *testing.T, w *Workflow) error {
	t.Helper()
	return w.Run(context.Background(), e.d, "", nil)
}

// writes lists the write actions the fake saw, "create secrets kube-system/x".
func writes(cs *fake.Clientset) []string {
	var out []string
	for _, a := range cs.Actions() {
		switch a.GetVerb() {
		case "create", "update", "patch", "delete":
			name := ""
			if n, ok := a.(interface{ GetName() string }); ok {
				name = n.GetName()
			}
			if c, ok := a.(k8stesting.CreateAction); ok {
				if m, err := objMeta(c.GetObject()); err == nil {
					name = m.GetName()
				}
			}
			if u, ok := a.(k8stesting.UpdateAction); ok {
				if m, err := objMeta(u.GetObject()); err == nil {
					name = m.GetName()
				}
			}
			out = append(out, a.GetVerb()+" "+a.GetResource().Resource+" "+a.GetNamespace()+"/"+name)
		}
	}
	return out
}

func objMeta(obj runtime.Object) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, errors.New("no metadata")
	}
	return m, nil
}

// snapshot is every object of the kinds the online phases write.
func snapshot(t *testing.T, cs *fake.Clientset) map[string]runtime.Object {
	t.Helper()
	ctx := context.Background()
	out := map[string]runtime.Object{}
	cms, err := cs.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range cms.Items {
		out["cm "+cms.Items[i].Namespace+"/"+cms.Items[i].Name] = &cms.Items[i]
	}
	secs, _ := cs.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	for i := range secs.Items {
		out["secret "+secs.Items[i].Namespace+"/"+secs.Items[i].Name] = &secs.Items[i]
	}
	roles, _ := cs.RbacV1().Roles("").List(ctx, metav1.ListOptions{})
	for i := range roles.Items {
		out["role "+roles.Items[i].Namespace+"/"+roles.Items[i].Name] = &roles.Items[i]
	}
	rbs, _ := cs.RbacV1().RoleBindings("").List(ctx, metav1.ListOptions{})
	for i := range rbs.Items {
		out["rolebinding "+rbs.Items[i].Namespace+"/"+rbs.Items[i].Name] = &rbs.Items[i]
	}
	crs, _ := cs.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{})
	for i := range crs.Items {
		out["clusterrole "+crs.Items[i].Name] = &crs.Items[i]
	}
	crbs, _ := cs.RbacV1().ClusterRoleBindings().List(ctx, metav1.ListOptions{})
	for i := range crbs.Items {
		out["clusterrolebinding "+crbs.Items[i].Name] = &crbs.Items[i]
	}
	nodes, _ := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	for i := range nodes.Items {
		out["node "+nodes.Items[i].Name] = &nodes.Items[i]
	}
	return out
}

func keys(m map[string]runtime.Object) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func getSecretT(t *testing.T, cs kubernetes.Interface, ns, name string) *corev1.Secret {
	t.Helper()
	s, err := cs.CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func getConfigMapT(t *testing.T, cs kubernetes.Interface, ns, name string) *corev1.ConfigMap {
	t.Helper()
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

// assertNoSecretsLogged fails if any token secret in the cluster, the join token or the
// certificate key reached the slog output.
func (e *onlineEnv) assertNoSecretsLogged(t *testing.T) {
	t.Helper()
	secrets := []string{e.d.BootstrapData.Token.Secret}
	if k := e.d.BootstrapData.CertificateKey; !k.IsZero() {
		secrets = append(secrets, k.Reveal())
	}
	list, _ := e.cs.CoreV1().Secrets("kube-system").List(context.Background(), metav1.ListOptions{})
	for i := range list.Items {
		if s := string(list.Items[i].Data["token-secret"]); s != "" {
			secrets = append(secrets, s)
		}
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(e.log.String(), s) {
			t.Errorf("a secret reached the log:\n%s", e.log.String())
		}
	}
}

func TestOnlinePhasesConvergeAndFulfilTheContract(t *testing.T) {
	e := newOnlineEnv(t, nil)
	bootstrapSigner(t, e.cs, 2, "")
	if err := e.run(t, onlineWorkflow()); err != nil {
		t.Fatalf("first run: %v\n%s", err, e.out)
	}
	first := snapshot(t, e.cs)
	firstOut := e.out.String()
	b := e.d.BootstrapData
	ctx := context.Background()

	t.Run("kubeadm-config", func(t *testing.T) {
		want, err := bootstrap.KubeadmConfig(e.d.Cluster, DefaultCertDir)
		if err != nil {
			t.Fatal(err)
		}
		got := getConfigMapT(t, e.cs, "kube-system", "kubeadm-config")
		if diff := cmp.Diff(want.Data, got.Data); diff != "" {
			t.Errorf("kubeadm-config (-want +got):\n%s", diff)
		}
		got = getConfigMapT(t, e.cs, "kube-system", "kubelet-config")
		kc, err := KubeletConfigYAML(e.d)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(map[string]string{"kubelet": string(kc)}, got.Data); diff != "" {
			t.Errorf("kubelet-config (-want +got):\n%s", diff)
		}
	})
	t.Run("rbac", func(t *testing.T) {
		want := []string{
			"clusterrole kubeadm:get-nodes",
			"clusterrolebinding kubeadm:cluster-admins",
			"clusterrolebinding kubeadm:get-nodes",
			"clusterrolebinding kubeadm:kubelet-bootstrap",
			"clusterrolebinding kubeadm:node-autoapprove-bootstrap",
			"clusterrolebinding kubeadm:node-autoapprove-certificate-rotation",
			"role kube-public/kubeadm:bootstrap-signer-clusterinfo",
			"role kube-system/kubeadm:kubeadm-certs",
			"role kube-system/kubeadm:kubelet-config",
			"role kube-system/kubeadm:nodes-kubeadm-config",
			"rolebinding kube-public/kubeadm:bootstrap-signer-clusterinfo",
			"rolebinding kube-system/kubeadm:kubeadm-certs",
			"rolebinding kube-system/kubeadm:kubelet-config",
			"rolebinding kube-system/kubeadm:nodes-kubeadm-config",
		}
		var got []string
		for _, k := range keys(first) {
			if strings.HasPrefix(k, "role") || strings.HasPrefix(k, "cluster") {
				got = append(got, k)
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("RBAC objects (-want +got):\n%s", diff)
		}
	})
	t.Run("join token", func(t *testing.T) {
		tok, spec, err := tokens.FromSecret(getSecretT(t, e.cs, "kube-system", "bootstrap-token-"+b.Token.ID))
		if err != nil {
			t.Fatal(err)
		}
		if !tok.Equal(b.Token) {
			t.Errorf("token Secret holds %s, want %s", tok.Redacted(), b.Token.Redacted())
		}
		if diff := cmp.Diff(bootstrap.JoinTokenSpec(testNow.Add(24*time.Hour)), spec); diff != "" {
			t.Errorf("token spec (-want +got):\n%s", diff)
		}
	})
	t.Run("cluster-info", func(t *testing.T) {
		cm := getConfigMapT(t, e.cs, "kube-public", "cluster-info")
		if err := bootstrap.VerifyClusterInfoJWS(cm, b.Token); err != nil {
			t.Error(err)
		}
		cfg, err := clientcmd.Load([]byte(cm.Data["kubeconfig"]))
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.Clusters) != 1 || len(cfg.AuthInfos) != 0 {
			t.Fatalf("cluster-info kubeconfig has %d clusters and %d users, want 1 and 0", len(cfg.Clusters), len(cfg.AuthInfos))
		}
		for _, c := range cfg.Clusters {
			if c.Server != "https://192.0.2.10:6443" || !bytes.Equal(c.CertificateAuthorityData, e.shared["ca.crt"]) {
				t.Errorf("cluster-info points at %s with CA %q", c.Server, c.CertificateAuthorityData)
			}
		}
	})
	t.Run("kubeadm-certs", func(t *testing.T) {
		sec := getSecretT(t, e.cs, "kube-system", "kubeadm-certs")
		opened, err := bootstrap.OpenCerts(b.CertificateKey, sec.Data)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(e.shared, opened); diff != "" {
			t.Errorf("shared certificates (-want +got):\n%s", diff)
		}
		if len(sec.OwnerReferences) != 1 {
			t.Fatalf("owner references: %+v", sec.OwnerReferences)
		}
		owner := getSecretT(t, e.cs, "kube-system", sec.OwnerReferences[0].Name)
		_, spec, err := tokens.FromSecret(owner)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(bootstrap.CertsTokenSpec(testNow), spec); diff != "" {
			t.Errorf("owner token spec (-want +got):\n%s", diff)
		}
	})
	t.Run("node", func(t *testing.T) {
		n, err := e.cs.CoreV1().Nodes().Get(ctx, "cp1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(map[string]string{"kubernetes.io/os": "linux", bootstrap.ControlPlaneLabel: ""}, n.Labels); diff != "" {
			t.Errorf("labels (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]corev1.Taint{notReadyTaint, bootstrap.ControlPlaneTaint}, n.Spec.Taints); diff != "" {
			t.Errorf("taints (-want +got):\n%s", diff)
		}
	})
	t.Run("join commands", func(t *testing.T) {
		ca, err := certs.ParseCertPEM(e.shared["ca.crt"])
		if err != nil {
			t.Fatal(err)
		}
		worker := "kforge join 192.0.2.10:6443 --token " + b.Token.Reveal() + " \\\n    --discovery-token-ca-cert-hash " + certs.PinHash(ca)
		for _, want := range []string{
			worker + "\n",
			worker + " \\\n    --control-plane --certificate-key " + b.CertificateKey.Reveal() + "\n",
			`replace "kforge join" with "kubeadm join"`,
		} {
			if !strings.Contains(firstOut, want) {
				t.Errorf("output lacks %q:\n%s", want, firstOut)
			}
		}
		if n := strings.Count(firstOut, b.Token.Secret); n != 2 {
			t.Errorf("the token secret is printed %d times, want 2 (the two join commands)", n)
		}
	})

	// The second run, with the same Data, finds everything in place.
	e.cs.ClearActions()
	e.out.Reset()
	if err := e.run(t, onlineWorkflow()); err != nil {
		t.Fatalf("second run: %v\n%s", err, e.out)
	}
	if w := writes(e.cs); len(w) > 0 {
		t.Errorf("the second run wrote to the cluster:\n%s", strings.Join(w, "\n"))
	}
	if diff := cmp.Diff(first, snapshot(t, e.cs)); diff != "" {
		t.Errorf("the second run changed the cluster (-first +second):\n%s", diff)
	}
	for _, bad := range []string{"created", "updated", "marked node"} {
		if strings.Contains(e.out.String(), bad) {
			t.Errorf("second run output says %q:\n%s", bad, e.out)
		}
	}
	for _, want := range []string{
		"[upload-config] using existing ConfigMap kube-system/kubeadm-config",
		"[upload-certs] using existing Secret kube-system/kubeadm-certs",
		"[mark-control-plane] using existing marks of node cp1",
		"[bootstrap-token] using existing bootstrap token " + b.Token.ID,
		"[bootstrap-token] cluster-info is signed with token " + b.Token.ID,
	} {
		if !strings.Contains(e.out.String(), want) {
			t.Errorf("second run output lacks %q:\n%s", want, e.out)
		}
	}
	e.assertNoSecretsLogged(t)
}

// failFirstN makes the first n calls of verb on resource (and name, when set) fail with err.
func failFirstN(cs *fake.Clientset, verb, resource, name string, n int, err error) {
	calls := 0
	cs.PrependReactor(verb, resource, func(a k8stesting.Action) (bool, runtime.Object, error) {
		if name != "" {
			var got string
			switch a := a.(type) {
			case k8stesting.GetAction:
				got = a.GetName()
			case k8stesting.PatchAction:
				got = a.GetName()
			case k8stesting.CreateAction:
				if m, err := objMeta(a.GetObject()); err == nil {
					got = m.GetName()
				}
			case k8stesting.UpdateAction:
				if m, err := objMeta(a.GetObject()); err == nil {
					got = m.GetName()
				}
			}
			if got != name {
				return false, nil, nil
			}
		}
		if calls++; calls <= n {
			return true, nil, err
		}
		return false, nil, nil
	})
}

type clientTimeout struct{}

func (clientTimeout) Error() string   { return "net/http: request canceled (Client.Timeout exceeded)" }
func (clientTimeout) Timeout() bool   { return true }
func (clientTimeout) Temporary() bool { return true }

func TestOnlinePhasesRideOutAPIErrors(t *testing.T) {
	staleKubeadmConfig := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kubeadm-config"},
		Data:       map[string]string{"ClusterConfiguration": "stale"},
	}
	tests := []struct {
		name   string
		inject func(t *testing.T, cs *fake.Clientset)
	}{
		{
			name: "another writer creates kubeadm-config first (AlreadyExists)",
			inject: func(t *testing.T, cs *fake.Clientset) {
				done := false
				cs.PrependReactor("create", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
					m, _ := objMeta(a.(k8stesting.CreateAction).GetObject())
					if done || m.GetName() != "kubeadm-config" {
						return false, nil, nil
					}
					done = true
					if err := cs.Tracker().Add(staleKubeadmConfig.DeepCopy()); err != nil {
						t.Error(err)
					}
					return true, nil, apierrors.NewAlreadyExists(configMapResource, "kubeadm-config")
				})
			},
		},
		{
			name: "updating a stale kubeadm-config conflicts",
			inject: func(t *testing.T, cs *fake.Clientset) {
				if err := cs.Tracker().Add(staleKubeadmConfig.DeepCopy()); err != nil {
					t.Fatal(err)
				}
				failFirstN(cs, "update", "configmaps", "kubeadm-config", 2,
					apierrors.NewConflict(configMapResource, "kubeadm-config", errors.New("the object has been modified")))
			},
		},
		{
			name: "server timeouts reading secrets",
			inject: func(_ *testing.T, cs *fake.Clientset) {
				failFirstN(cs, "get", "secrets", "", 2, apierrors.NewServerTimeout(schema.GroupResource{Resource: "secrets"}, "get", 1))
			},
		},
		{
			name: "client timeout creating a RoleBinding",
			inject: func(_ *testing.T, cs *fake.Clientset) {
				failFirstN(cs, "create", "rolebindings", "", 1, &url.Error{Op: "Post", URL: "https://192.0.2.10:6443", Err: clientTimeout{}})
			},
		},
		{
			name: "apiserver unavailable while creating the token",
			inject: func(_ *testing.T, cs *fake.Clientset) {
				failFirstN(cs, "create", "secrets", "", 1, apierrors.NewServiceUnavailable("etcdserver: leader changed"))
			},
		},
		{
			name: "node patch conflicts with the kubelet",
			inject: func(_ *testing.T, cs *fake.Clientset) {
				failFirstN(cs, "patch", "nodes", "cp1", 1, apierrors.NewConflict(schema.GroupResource{Resource: "nodes"}, "cp1", errors.New("modified")))
			},
		},
		{
			name: "node registers late",
			inject: func(t *testing.T, cs *fake.Clientset) {
				n, err := cs.Tracker().Get(nodesGVR, "", "cp1")
				if err != nil {
					t.Fatal(err)
				}
				if err := cs.Tracker().Delete(nodesGVR, "", "cp1"); err != nil {
					t.Fatal(err)
				}
				gets := 0
				cs.PrependReactor("get", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
					if gets++; gets == 4 {
						if err := cs.Tracker().Add(n); err != nil {
							t.Error(err)
						}
					}
					return false, nil, nil
				})
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newOnlineEnv(t, nil)
			bootstrapSigner(t, e.cs, 3, "")
			tc.inject(t, e.cs)
			if err := e.run(t, onlineWorkflow()); err != nil {
				t.Fatalf("run: %v\n%s", err, e.out)
			}
			cm := getConfigMapT(t, e.cs, "kube-system", "kubeadm-config")
			if cm.Data["ClusterConfiguration"] == "stale" {
				t.Error("kubeadm-config is still stale")
			}
			n, err := e.cs.CoreV1().Nodes().Get(context.Background(), "cp1", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := n.Labels[bootstrap.ControlPlaneLabel]; !ok {
				t.Error("node is not labelled")
			}
			if err := bootstrap.VerifyClusterInfoJWS(getConfigMapT(t, e.cs, "kube-public", "cluster-info"), e.d.BootstrapData.Token); err != nil {
				t.Error(err)
			}
			e.cs.ClearActions()
			if err := e.run(t, onlineWorkflow()); err != nil {
				t.Fatalf("second run: %v", err)
			}
			if w := writes(e.cs); len(w) > 0 {
				t.Errorf("the second run wrote to the cluster:\n%s", strings.Join(w, "\n"))
			}
			e.assertNoSecretsLogged(t)
		})
	}
}

func TestOnlinePhasesFailClearly(t *testing.T) {
	tests := []struct {
		name    string
		phase   Phase
		setup   func(t *testing.T, e *onlineEnv)
		wantErr string
		wantIs  error
	}{
		{
			name:  "forbidden is not retried",
			phase: UploadConfigPhase(),
			setup: func(_ *testing.T, e *onlineEnv) {
				failFirstN(e.cs, "create", "configmaps", "", 100, apierrors.NewForbidden(configMapResource, "kubeadm-config", errors.New("RBAC: access denied")))
			},
			wantErr: `phase "upload-config/kubeadm": creating ConfigMap kube-system/kubeadm-config: configmaps "kubeadm-config" is forbidden: RBAC: access denied`,
		},
		{
			name:  "cluster-info is never signed",
			phase: BootstrapTokenPhase(),
			setup: func(_ *testing.T, e *onlineEnv) {
				e.d.Wait = 100 * time.Millisecond
			},
			wantErr: "waiting for the signature of cluster-info (the controller-manager signs it when run with --controllers=*,bootstrapsigner,tokencleaner): timed out after 100ms: verifying cluster-info for bootstrap token",
			wantIs:  bootstrap.ErrNotSigned,
		},
		{
			name:  "cluster-info signature is forged",
			phase: BootstrapTokenPhase(),
			setup: func(t *testing.T, e *onlineEnv) {
				e.d.Wait = 100 * time.Millisecond
				bootstrapSigner(t, e.cs, 0, "aaaaaaaaaaaaaaaa")
			},
			wantErr: "it was not made over this kubeconfig with this token's secret",
			wantIs:  bootstrap.ErrBadSignature,
		},
		{
			name:  "reading cluster-info is forbidden: no waiting",
			phase: BootstrapTokenPhase(),
			setup: func(_ *testing.T, e *onlineEnv) {
				e.d.Wait = time.Hour
				gets := 0
				e.cs.PrependReactor("get", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
					if a.(k8stesting.GetAction).GetName() != "cluster-info" {
						return false, nil, nil
					}
					if gets++; gets < 2 {
						return false, nil, nil
					}
					return true, nil, apierrors.NewForbidden(configMapResource, "cluster-info", errors.New("denied"))
				})
			},
			wantErr: `reading ConfigMap kube-public/cluster-info: configmaps "cluster-info" is forbidden: denied`,
		},
		{
			name:  "node never registers",
			phase: MarkControlPlanePhase(),
			setup: func(t *testing.T, e *onlineEnv) {
				e.d.Wait = 50 * time.Millisecond
				if err := e.cs.Tracker().Delete(nodesGVR, "", "cp1"); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: `phase "mark-control-plane": waiting for the kubelet to register Node cp1: timed out after 50ms: reading Node cp1: nodes "cp1" not found`,
		},
		{
			name:  "token ID taken by another secret",
			phase: BootstrapTokenPhase(),
			setup: func(t *testing.T, e *onlineEnv) {
				e.d.BootstrapData.Token = tokens.Token{ID: "abcdef", Secret: "0123456789abcdef"}
				other := tokens.Secret(tokens.Token{ID: "abcdef", Secret: "ffffffffffffffff"}, bootstrap.JoinTokenSpec(testNow.Add(time.Hour)))
				if err := e.cs.Tracker().Add(other); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: "bootstrap token abcdef already exists with another secret: pass another --token, or delete Secret kube-system/bootstrap-token-abcdef",
		},
		{
			name:  "missing service-account key",
			phase: UploadCertsPhase(),
			setup: func(t *testing.T, e *onlineEnv) {
				if err := os.Remove(e.d.Path(DefaultCertDir + "/sa.key")); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: `phase "upload-certs": reading /etc/kubernetes/pki/sa.key to upload it`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newOnlineEnv(t, nil)
			tc.setup(t, e)
			start := time.Now()
			err := e.run(t, &Workflow{Name: "init", Phases: []Phase{tc.phase}})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v\nwant it to contain %q", err, tc.wantErr)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error does not wrap %v", tc.wantIs)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("failing took %s", d)
			}
			for _, s := range []string{"0123456789abcdef", "ffffffffffffffff", "aaaaaaaaaaaaaaaa", e.d.BootstrapData.Token.Secret} {
				if s != "" && strings.Contains(err.Error(), s) {
					t.Errorf("error contains a secret: %v", err)
				}
			}
			e.assertNoSecretsLogged(t)
		})
	}
}

func TestBootstrapTokenReusesOrRefreshes(t *testing.T) {
	tok := tokens.Token{ID: "abcdef", Secret: "0123456789abcdef"}
	join := func(expires time.Time) *corev1.Secret { return tokens.Secret(tok, bootstrap.JoinTokenSpec(expires)) }
	tests := []struct {
		name        string
		existing    *corev1.Secret
		ttl         time.Duration
		wantWrite   bool
		wantExpires time.Time
		wantOut     string
	}{
		{
			name:        "absent: created with the default TTL",
			wantWrite:   true,
			wantExpires: testNow.Add(24 * time.Hour),
			wantOut:     "bootstrap token abcdef expires 2026-05-07T07:08:09Z",
		},
		{
			name:        "valid with most of its life left: reused",
			existing:    join(testNow.Add(20 * time.Hour)),
			wantExpires: testNow.Add(20 * time.Hour),
			wantOut:     "using existing bootstrap token abcdef (expires 2026-05-07T03:08:09Z)",
		},
		{
			name:        "expires within half its TTL: refreshed",
			existing:    join(testNow.Add(11 * time.Hour)),
			wantWrite:   true,
			wantExpires: testNow.Add(24 * time.Hour),
		},
		{
			name:        "expired: refreshed",
			existing:    join(testNow.Add(-time.Minute)),
			wantWrite:   true,
			wantExpires: testNow.Add(24 * time.Hour),
		},
		{
			name: "missing the signing usage: rewritten",
			existing: tokens.Secret(tok, tokens.Spec{Expires: testNow.Add(20 * time.Hour),
				Usages: []string{tokens.UsageAuthentication}, Groups: []string{tokens.DefaultNodeGroup}}),
			wantWrite:   true,
			wantExpires: testNow.Add(24 * time.Hour),
		},
		{
			name: "malformed: rewritten",
			existing: func() *corev1.Secret {
				s := join(testNow.Add(20 * time.Hour))
				s.Data["expiration"] = []byte("soon")
				return s
			}(),
			wantWrite:   true,
			wantExpires: testNow.Add(24 * time.Hour),
		},
		{
			name:        "custom TTL",
			ttl:         72 * time.Hour,
			wantWrite:   true,
			wantExpires: testNow.Add(72 * time.Hour),
		},
		{
			name:      "never expires (--token-ttl 0)",
			existing:  join(testNow.Add(20 * time.Hour)),
			ttl:       -1,
			wantWrite: true,
			wantOut:   "bootstrap token abcdef never expires",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newOnlineEnv(t, nil)
			bootstrapSigner(t, e.cs, 0, "")
			if tc.existing != nil {
				if err := e.cs.Tracker().Add(tc.existing); err != nil {
					t.Fatal(err)
				}
			}
			e.d.BootstrapData.Token = tok
			e.d.BootstrapData.TokenTTL = tc.ttl
			if err := e.run(t, &Workflow{Name: "init", Phases: []Phase{BootstrapTokenPhase()}}); err != nil {
				t.Fatalf("run: %v\n%s", err, e.out)
			}
			wrote := slices.ContainsFunc(writes(e.cs), func(w string) bool { return strings.HasSuffix(w, "/bootstrap-token-abcdef") })
			if wrote != tc.wantWrite {
				t.Errorf("wrote the token Secret = %v, want %v; writes: %v", wrote, tc.wantWrite, writes(e.cs))
			}
			_, spec, err := tokens.FromSecret(getSecretT(t, e.cs, "kube-system", "bootstrap-token-abcdef"))
			if err != nil {
				t.Fatal(err)
			}
			if !spec.Expires.Equal(tc.wantExpires) {
				t.Errorf("expires %v, want %v", spec.Expires, tc.wantExpires)
			}
			if !strings.Contains(e.out.String(), tc.wantOut) {
				t.Errorf("output lacks %q:\n%s", tc.wantOut, e.out)
			}
			e.assertNoSecretsLogged(t)
		})
	}
}

func TestUploadCerts(t *testing.T) {
	keyA, _ := bootstrap.GenerateCertificateKey()
	keyB, _ := bootstrap.GenerateCertificateKey()
	uploadCerts := &Workflow{Name: "init", Phases: []Phase{UploadCertsPhase()}}
	tests := []struct {
		name string
		// between runs the first and the second run
		between    func(t *testing.T, e *onlineEnv)
		wantUpload bool
		wantKeys   []string
	}{
		{name: "nothing changed", between: func(*testing.T, *onlineEnv) {}},
		{
			name:       "another certificate key",
			between:    func(_ *testing.T, e *onlineEnv) { e.d.BootstrapData.CertificateKey = keyB },
			wantUpload: true,
		},
		{
			name: "a file changed",
			between: func(t *testing.T, e *onlineEnv) {
				writeFile(t, e.d.Path(DefaultCertDir+"/sa.pub"), []byte("rotated"))
				e.shared["sa.pub"] = []byte("rotated")
			},
			wantUpload: true,
		},
		{
			name:       "owner token expires within the hour",
			between:    func(_ *testing.T, e *onlineEnv) { e.now = e.now.Add(61 * time.Minute) },
			wantUpload: true,
		},
		{
			name:       "owner token still has over an hour",
			between:    func(_ *testing.T, e *onlineEnv) { e.now = e.now.Add(59 * time.Minute) },
			wantUpload: false,
		},
		{
			name: "owner token gone",
			between: func(t *testing.T, e *onlineEnv) {
				sec := getSecretT(t, e.cs, "kube-system", "kubeadm-certs")
				if err := e.cs.Tracker().Delete(secretsGVR, "kube-system", sec.OwnerReferences[0].Name); err != nil {
					t.Fatal(err)
				}
			},
			wantUpload: true,
		},
		{
			name: "external CA: the CA key disappears",
			between: func(t *testing.T, e *onlineEnv) {
				if err := os.Remove(e.d.Path(DefaultCertDir + "/ca.key")); err != nil {
					t.Fatal(err)
				}
				delete(e.shared, "ca.key")
			},
			wantUpload: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newOnlineEnv(t, nil)
			e.d.BootstrapData.CertificateKey = keyA
			if err := e.run(t, uploadCerts); err != nil {
				t.Fatal(err)
			}
			firstOwner := getSecretT(t, e.cs, "kube-system", "kubeadm-certs").OwnerReferences[0].Name
			tc.between(t, e)
			e.cs.ClearActions()
			e.out.Reset()
			if err := e.run(t, uploadCerts); err != nil {
				t.Fatal(err)
			}
			sec := getSecretT(t, e.cs, "kube-system", "kubeadm-certs")
			uploaded := slices.Contains(writes(e.cs), "update secrets kube-system/kubeadm-certs")
			if uploaded != tc.wantUpload {
				t.Errorf("uploaded again = %v, want %v; writes %v\n%s", uploaded, tc.wantUpload, writes(e.cs), e.out)
			}
			if newOwner := sec.OwnerReferences[0].Name; (newOwner != firstOwner) != tc.wantUpload {
				t.Errorf("owner %s, first owner %s; want a new owner = %v", newOwner, firstOwner, tc.wantUpload)
			}
			opened, err := bootstrap.OpenCerts(e.d.BootstrapData.CertificateKey, sec.Data)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(e.shared, opened); diff != "" {
				t.Errorf("shared certificates (-want +got):\n%s", diff)
			}
			if !strings.Contains(e.out.String(), e.d.BootstrapData.CertificateKey.Reveal()+"\n") {
				t.Errorf("the certificate key is not printed:\n%s", e.out)
			}
			e.assertNoSecretsLogged(t)
		})
	}
}

func TestUploadCertsSkippedWithoutFlag(t *testing.T) {
	e := newOnlineEnv(t, nil)
	e.d.BootstrapData.UploadCerts = false
	if err := e.run(t, &Workflow{Name: "init", Phases: []Phase{UploadCertsPhase()}}); err != nil {
		t.Fatal(err)
	}
	if want := "[upload-certs] skipped: --upload-certs not set\n"; e.out.String() != want {
		t.Errorf("output = %q, want %q", e.out, want)
	}
	if len(e.cs.Actions()) != 0 {
		t.Errorf("actions: %v", e.cs.Actions())
	}
	if !e.d.BootstrapData.CertificateKey.IsZero() {
		t.Error("a certificate key was generated")
	}
}

func TestMarkControlPlaneHostMarks(t *testing.T) {
	tests := []struct {
		name       string
		edit       func(c *config.Cluster)
		wantLabels map[string]string
		wantTaints []corev1.Taint
	}{
		{
			name:       "control plane that is also a worker",
			edit:       func(c *config.Cluster) { c.Hosts[0].Roles = append(c.Hosts[0].Roles, config.RoleWorker) },
			wantLabels: map[string]string{"kubernetes.io/os": "linux", bootstrap.ControlPlaneLabel: ""},
			wantTaints: []corev1.Taint{notReadyTaint},
		},
		{
			name: "labels and taints from cluster.toml",
			edit: func(c *config.Cluster) {
				c.Hosts[0].Labels = map[string]string{"topology.kubernetes.io/zone": "a"}
				c.Hosts[0].Taints = []string{"dedicated=infra:NoExecute"}
			},
			wantLabels: map[string]string{"kubernetes.io/os": "linux", bootstrap.ControlPlaneLabel: "", "topology.kubernetes.io/zone": "a"},
			wantTaints: []corev1.Taint{notReadyTaint, bootstrap.ControlPlaneTaint,
				{Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoExecute}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newOnlineEnv(t, tc.edit)
			w := &Workflow{Name: "init", Phases: []Phase{MarkControlPlanePhase()}}
			if err := e.run(t, w); err != nil {
				t.Fatal(err)
			}
			n, err := e.cs.CoreV1().Nodes().Get(context.Background(), "cp1", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantLabels, n.Labels); diff != "" {
				t.Errorf("labels (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantTaints, n.Spec.Taints); diff != "" {
				t.Errorf("taints (-want +got):\n%s", diff)
			}
			e.cs.ClearActions()
			if err := e.run(t, w); err != nil {
				t.Fatal(err)
			}
			if len(writes(e.cs)) > 0 {
				t.Errorf("second run wrote: %v", writes(e.cs))
			}
		})
	}
}

// TestMarkControlPlaneConverges checks a re-run after cluster.toml changed: the label and
// taint kforge set and the file dropped are removed, the new ones added, and a label and a
// taint someone else set stay.
func TestMarkControlPlaneConverges(t *testing.T) {
	e := newOnlineEnv(t, func(c *config.Cluster) {
		c.Hosts[0].Labels = map[string]string{"zone": "a", "old": "x"}
		c.Hosts[0].Taints = []string{"gone:NoExecute"}
	})
	w := &Workflow{Name: "init", Phases: []Phase{MarkControlPlanePhase()}}
	if err := e.run(t, w); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	n, err := e.cs.CoreV1().Nodes().Get(ctx, "cp1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Labels["team"] = "db"
	n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: "theirs", Effect: corev1.TaintEffectNoSchedule})
	if _, err := e.cs.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.d.Node.Labels = map[string]string{"zone": "b"}
	e.d.Node.Taints = []string{"dedicated=infra:NoSchedule"}
	if err := e.run(t, w); err != nil {
		t.Fatal(err)
	}
	n, err = e.cs.CoreV1().Nodes().Get(ctx, "cp1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantLabels := map[string]string{"kubernetes.io/os": "linux", bootstrap.ControlPlaneLabel: "", "zone": "b", "team": "db"}
	if diff := cmp.Diff(wantLabels, n.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	wantTaints := []corev1.Taint{notReadyTaint, bootstrap.ControlPlaneTaint, {Key: "theirs", Effect: corev1.TaintEffectNoSchedule},
		{Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoSchedule}}
	if diff := cmp.Diff(wantTaints, n.Spec.Taints); diff != "" {
		t.Errorf("taints (-want +got):\n%s", diff)
	}
}

func TestMarkPatchCarriesResourceVersion(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cp1", ResourceVersion: "42"}}
	marks := bootstrap.NodeMarks{Labels: map[string]string{bootstrap.ControlPlaneLabel: ""}, Taints: []corev1.Taint{bootstrap.ControlPlaneTaint}}
	want := node.DeepCopy()
	marks.Apply(want)
	patch, err := apiclient.NodePatch(node, want)
	if err != nil {
		t.Fatal(err)
	}
	const wantPatch = `{"metadata":{"annotations":{"kforge.io/managed-labels":"node-role.kubernetes.io/control-plane",` +
		`"kforge.io/managed-taints":"node-role.kubernetes.io/control-plane:NoSchedule"},` +
		`"labels":{"node-role.kubernetes.io/control-plane":""},"resourceVersion":"42"},` +
		`"spec":{"taints":[{"key":"node-role.kubernetes.io/control-plane","effect":"NoSchedule"}]}}`
	if string(patch) != wantPatch {
		t.Errorf("patch = %s\nwant    %s", patch, wantPatch)
	}
}

func TestClusterAdminsBindingUsesSuperAdmin(t *testing.T) {
	e := newOnlineEnv(t, nil)
	super := fake.NewClientset()
	calls := 0
	e.d.BootstrapData.SuperAdminClient = func() (kubernetes.Interface, error) {
		calls++
		return super, nil
	}
	w := &Workflow{Name: "init", Phases: []Phase{UploadConfigPhase(), MarkControlPlanePhase()}}
	if err := e.run(t, w); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("super-admin client built %d times in one run, want 1", calls)
	}
	if _, err := super.RbacV1().ClusterRoleBindings().Get(context.Background(), "kubeadm:cluster-admins", metav1.GetOptions{}); err != nil {
		t.Errorf("kubeadm:cluster-admins not created with the super-admin client: %v", err)
	}
	if _, err := e.cs.RbacV1().ClusterRoleBindings().Get(context.Background(), "kubeadm:cluster-admins", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("kubeadm:cluster-admins created with the admin client: %v", err)
	}
	if !strings.HasPrefix(e.out.String(), "[upload-config] created ClusterRoleBinding kubeadm:cluster-admins\n") {
		t.Errorf("output does not start with the binding:\n%s", e.out)
	}

	e2 := newOnlineEnv(t, nil)
	e2.d.BootstrapData.SuperAdminClient = nil
	if err := e2.run(t, w); err != nil {
		t.Fatalf("without a super-admin client: %v", err)
	}
}

// TestAdminWaitsForTheClusterAdminsBinding checks that init waits until RBAC has seen the
// binding that makes admin.conf a cluster admin: the apiserver's authorizer learns of a new
// ClusterRoleBinding a moment after it is created, and admin.conf is Forbidden until then.
func TestAdminWaitsForTheClusterAdminsBinding(t *testing.T) {
	for _, tc := range []struct {
		name      string
		forbidden int
		wantErr   string
	}{
		{name: "authorized after a few refusals", forbidden: 3},
		{name: "never authorized", forbidden: 1 << 30, wantErr: `cannot get resource "clusterrolebindings"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newOnlineEnv(t, nil)
			e.d.Wait = 300 * time.Millisecond
			super := fake.NewClientset()
			e.d.BootstrapData.SuperAdminClient = func() (kubernetes.Interface, error) { return super, nil }
			refused := 0
			e.cs.PrependReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
				if refused >= tc.forbidden {
					return false, nil, nil
				}
				refused++
				return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: a.GetResource().Group, Resource: a.GetResource().Resource},
					"", fmt.Errorf(`User "kubernetes-admin" cannot %s resource %q`, a.GetVerb(), a.GetResource().Resource))
			})
			err := e.run(t, &Workflow{Name: "init", Phases: []Phase{UploadConfigPhase()}})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("init after %d refusals: %v", tc.forbidden, err)
				}
				if refused != tc.forbidden {
					t.Errorf("admin.conf was refused %d times, want %d", refused, tc.forbidden)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "admin.conf") {
				t.Fatalf("init error = %v, want admin.conf still refused (%s)", err, tc.wantErr)
			}
		})
	}
}

func TestUploadKubeletConfigIsKubeletStarts(t *testing.T) {
	e := newOnlineEnv(t, func(c *config.Cluster) { c.Kubelet.MaxPods = 50 })
	if err := e.run(t, &Workflow{Name: "init", Phases: []Phase{UploadConfigPhase()}}); err != nil {
		t.Fatal(err)
	}
	want, err := KubeletConfigYAML(e.d)
	if err != nil {
		t.Fatal(err)
	}
	got := getConfigMapT(t, e.cs, "kube-system", "kubelet-config").Data["kubelet"]
	if got != string(want) {
		t.Errorf("kubelet-config holds\n%s\nwant\n%s", got, want)
	}
	if !strings.Contains(got, "maxPods: 50") {
		t.Errorf("kubelet-config lacks cluster.toml's max_pods:\n%s", got)
	}
}

func TestShowJoinCommand(t *testing.T) {
	key, err := bootstrap.ParseCertificateKey(strings.Repeat("5a", 32))
	if err != nil {
		t.Fatal(err)
	}
	tok := tokens.Token{ID: "abcdef", Secret: "0123456789abcdef"}
	tests := []struct {
		name   string
		golden string
		setup  func(e *onlineEnv)
	}{
		{
			name:   "with uploaded certificates",
			golden: "show-join-control-plane.golden",
			setup: func(e *onlineEnv) {
				e.d.BootstrapData.Token = tok
				e.d.BootstrapData.CertificateKey = key
				e.d.BootstrapData.tokenExpires = testNow.Add(24 * time.Hour)
			},
		},
		{
			name:   "without uploaded certificates",
			golden: "show-join-worker.golden",
			setup: func(e *onlineEnv) {
				e.d.BootstrapData.Token = tok
				e.d.BootstrapData.UploadCerts = false
			},
		},
		{
			name:   "endpoint with a load balancer",
			golden: "show-join-endpoint.golden",
			setup: func(e *onlineEnv) {
				e.d.Cluster.ControlPlaneEndpoint = "lb.example.com"
				e.d.BootstrapData.Token = tok
				e.d.BootstrapData.UploadCerts = false
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newOnlineEnv(t, nil)
			tc.setup(e)
			if err := e.run(t, &Workflow{Name: "init", Phases: []Phase{ShowJoinCommandPhase()}}); err != nil {
				t.Fatal(err)
			}
			ca, err := certs.ParseCertPEM(e.shared["ca.crt"])
			if err != nil {
				t.Fatal(err)
			}
			got, _, _ := strings.Cut(e.out.String(), "[show-join-command] done in")
			got = strings.ReplaceAll(got, certs.PinHash(ca), "sha256:<pin>")
			testutil.Golden(t, tc.golden, []byte(got))
			if w := writes(e.cs); len(w) > 0 {
				t.Errorf("show-join-command wrote: %v", w)
			}
		})
	}
}

func TestShowJoinCommandFindsToken(t *testing.T) {
	mk := func(id string, spec tokens.Spec) *corev1.Secret {
		return tokens.Secret(tokens.Token{ID: id, Secret: id + "0123456789"}, spec)
	}
	tests := []struct {
		name     string
		existing []runtime.Object
		wantID   string
		wantErr  string
	}{
		{
			name: "longest-lived usable token",
			existing: []runtime.Object{
				mk("expire", bootstrap.JoinTokenSpec(testNow.Add(-time.Hour))),
				mk("short1", bootstrap.JoinTokenSpec(testNow.Add(time.Hour))),
				mk("long11", bootstrap.JoinTokenSpec(testNow.Add(20*time.Hour))),
				mk("owner1", bootstrap.CertsTokenSpec(testNow.Add(30*time.Hour))),
			},
			wantID: "long11",
		},
		{
			name:     "a token that never expires wins",
			existing: []runtime.Object{mk("long11", bootstrap.JoinTokenSpec(testNow.Add(20*time.Hour))), mk("never1", bootstrap.JoinTokenSpec(time.Time{}))},
			wantID:   "never1",
		},
		{
			name:     "none usable",
			existing: []runtime.Object{mk("owner1", bootstrap.CertsTokenSpec(testNow))},
			wantErr:  "no join token to show: pass --token, or run the bootstrap-token phase to create one",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newOnlineEnv(t, nil)
			for _, o := range tc.existing {
				if err := e.cs.Tracker().Add(o); err != nil {
					t.Fatal(err)
				}
			}
			err := e.run(t, &Workflow{Name: "init", Phases: []Phase{ShowJoinCommandPhase()}})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := e.d.BootstrapData.Token.ID; got != tc.wantID {
				t.Errorf("showed token %s, want %s", got, tc.wantID)
			}
			if !strings.Contains(e.out.String(), "--token "+tc.wantID+"."+tc.wantID+"0123456789") {
				t.Errorf("output lacks the token:\n%s", e.out)
			}
			e.assertNoSecretsLogged(t)
		})
	}
}

// TestKubeletFlagsRegisterHostMarks checks that a node registers with its labels and taints
// from cluster.toml, except labels a kubelet may not set on itself, which mark-control-plane
// sets through the API.
func TestKubeletFlagsRegisterHostMarks(t *testing.T) {
	e := newOnlineEnv(t, func(c *config.Cluster) {
		c.Hosts[0].Labels = map[string]string{"zone": "a", "node-role.kubernetes.io/infra": ""}
		c.Hosts[0].Taints = []string{"dedicated=infra:NoExecute"}
	})
	b, err := kubeletFlagsEnv(e.d)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		" --node-labels=zone=a ",
		" --register-with-taints=node-role.kubernetes.io/control-plane:NoSchedule,dedicated=infra:NoExecute",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("kubeadm-flags.env lacks %q:\n%s", want, b)
		}
	}
	if strings.Contains(string(b), "node-role.kubernetes.io/infra") {
		t.Errorf("kubeadm-flags.env asks the kubelet to set a label it may not set on itself:\n%s", b)
	}
}
