//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/cluster-bootstrap/token/jws"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/e2e/lab"
	"github.com/kforge/kforge/e2e/testbed"
	"github.com/kforge/kforge/etcd"
	"github.com/kforge/kforge/tokens"
)

var (
	pinRE     = regexp.MustCompile(`--discovery-token-ca-cert-hash (sha256:[0-9a-f]{64})`)
	certKeyRE = regexp.MustCompile(`--certificate-key ([0-9a-f]{64})`)
)

// fingerprint is everything join could touch on a host: files with their mtimes and sizes,
// containerd's images, and the kubelet process.
func (n *node) fingerprint(ctx context.Context) string {
	return n.sh(ctx, `{ find /etc/kubernetes /var/lib/kubelet /var/lib/etcd /etc/cni/net.d /opt/cni/bin /usr/local/bin `+
		`/etc/containerd /etc/sysctl.d /etc/default -printf '%p %T@ %s\n' 2>/dev/null; `+
		`ctr -n k8s.io images ls -q 2>/dev/null; ls /run/kforge 2>/dev/null; } | sort`)
}

// clientVia returns an admin client of the cluster that goes through host via's apiserver.
func clientVia(t *testing.T, ctx context.Context, from, via testbed.Host) kubernetes.Interface {
	t.Helper()
	kc, err := lab.AdminKubeconfig(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kc)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Host = "https://" + via.Address.String() + ":6443"
	cfg.Timeout = 15 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// etcdVia connects to the etcd member on host h with the apiserver's etcd client
// certificate, read from h.
func etcdVia(t *testing.T, ctx context.Context, h testbed.Host) *etcd.Client {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"etcd/ca.crt", "apiserver-etcd-client.crt", "apiserver-etcd-client.key"} {
		out, errOut, err := h.Exec(ctx, nil, "cat", "/etc/kubernetes/pki/"+f)
		if err != nil {
			t.Fatalf("reading %s on %s: %v: %s", f, h.Name, err, errOut)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), out, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tlsConfig, err := etcd.TLSConfig(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "apiserver-etcd-client.crt"), filepath.Join(dir, "apiserver-etcd-client.key"))
	if err != nil {
		t.Fatal(err)
	}
	cli, err := etcd.New([]string{etcd.ClientURL(h.Address.String())}, tlsConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// etcdHealthy checks that etcd has exactly want started voting members, all healthy.
func etcdHealthy(ctx context.Context, cli *etcd.Client, want int) error {
	ms, err := cli.Members(ctx)
	if err != nil {
		return err
	}
	healthy, errs := cli.HealthyMembers(ctx, ms)
	var names []string
	for _, m := range ms {
		names = append(names, m.String())
	}
	if len(ms) != want || len(healthy) != want {
		return fmt.Errorf("etcd has %d members (%s), %d healthy voting ones, want %d: %v", len(ms), strings.Join(names, "; "), len(healthy), want, errs)
	}
	return nil
}

func leaseHolder(ctx context.Context, cs kubernetes.Interface, name string) (string, error) {
	l, err := cs.CoordinationV1().Leases("kube-system").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if l.Spec.HolderIdentity == nil {
		return "", nil
	}
	return *l.Spec.HolderIdentity, nil
}

// TestJoin builds a four-host cluster: init on h1, control-plane joins on h2 and h3, a
// worker join on h4. It checks discovery's refusals on a fresh host, the cluster, pod
// networking across hosts, convergence, control-plane failover and reset of a joined
// control-plane host.
func TestJoin(t *testing.T) {
	ctx := t.Context()
	l := newLab(t, ctx, 4)
	tb := l.TB
	var hosts []testbed.Host
	nodes := map[string]*node{}
	for _, name := range []string{"h1", "h2", "h3", "h4"} {
		h, _ := tb.Host(name)
		hosts = append(hosts, h)
		nodes[name] = &node{t: t, h: h, lab: l}
	}
	h1, h2, h3, h4 := nodes["h1"], nodes["h2"], nodes["h3"], nodes["h4"]
	cfg := l.ClusterConfigCP(3, hosts...)
	for _, h := range hosts {
		if err := l.WriteConfig(ctx, h, cfg); err != nil {
			t.Fatal(err)
		}
	}

	out, err := h1.run(ctx, "init", "-f", lab.ConfigPath, "--node", "h1", "--upload-certs")
	if err != nil {
		t.Fatal(err)
	}
	tokM, pinM, keyM := tokenRE.FindStringSubmatch(out), pinRE.FindStringSubmatch(out), certKeyRE.FindStringSubmatch(out)
	if tokM == nil || pinM == nil || keyM == nil {
		t.Fatalf("init printed no complete control-plane join command:\n%s", out)
	}
	token, pin, certKey := tokM[1], pinM[1], keyM[1]
	endpoint := hosts[0].Address.String() + ":6443"
	cs := h1.adminClient(ctx)
	waitFor(t, ctx, "h1 Ready", 3*time.Minute, func() error { return nodeReady(ctx, cs, "h1") })

	t.Run("bad input leaves a fresh host untouched", func(t *testing.T) {
		n := &node{t: t, h: h4.h, lab: l}
		before := n.fingerprint(ctx)
		flagJoin := func(extra ...string) []string {
			return append([]string{"join", endpoint, "--node-name", "h4", "--advertise-address", h4.h.Address.String()}, extra...)
		}
		expectRefusal := func(name, want string, args ...string) {
			t.Helper()
			start := time.Now()
			out, err := n.run(ctx, args...)
			if err == nil {
				t.Fatalf("%s: join succeeded:\n%s", name, out)
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: the error does not say %q:\n%v", name, want, err)
			}
			if after := n.fingerprint(ctx); after != before {
				t.Errorf("%s: the host changed:\nbefore:\n%s\nafter:\n%s", name, before, after)
			}
			t.Logf("%s: refused after %s", name, time.Since(start).Round(100*time.Millisecond))
		}

		expectRefusal("wrong CA hash", "--discovery-token-ca-cert-hash expects",
			flagJoin("--token", token, "--discovery-token-ca-cert-hash", "sha256:"+strings.Repeat("0", 64))...)

		expectRefusal("unreachable endpoint", "unreachable",
			"join", h4.h.Address.String()+":6443", "--token", token, "--discovery-token-ca-cert-hash", pin, "--discovery-timeout", "5s")

		// An expired token: the bootstrap signer never signs for it.
		expired, err := tokens.Generate()
		if err != nil {
			t.Fatal(err)
		}
		spec := bootstrap.JoinTokenSpec(time.Now().Add(-time.Hour))
		if _, err := cs.CoreV1().Secrets("kube-system").Create(ctx, tokens.Secret(expired, spec), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		expectRefusal("expired token", "is unknown or expired",
			flagJoin("--token", expired.Reveal(), "--discovery-token-ca-cert-hash", pin, "--discovery-timeout", "10s")...)

		expectRefusal("wrong certificate key", "certificate key does not open",
			flagJoin("--token", token, "--discovery-token-ca-cert-hash", pin, "--control-plane", "--certificate-key", strings.Repeat("ab", 32))...)

		// A forged signature: with the controller-manager (the bootstrap signer) stopped,
		// replace the token's signature of cluster-info with one made with another secret.
		h1.sh(ctx, "mv /etc/kubernetes/manifests/kube-controller-manager.yaml /root/kcm.yaml")
		waitFor(t, ctx, "the controller-manager to stop", time.Minute, func() error {
			if s := strings.TrimSpace(h1.sh(ctx, "ss -Hltn 'sport = :10257' | wc -l")); s != "0" {
				return fmt.Errorf("port 10257 still listened on")
			}
			return nil
		})
		tok, _ := tokens.Parse(token)
		ci, err := cs.CoreV1().ConfigMaps("kube-public").Get(ctx, "cluster-info", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		forged, err := jws.ComputeDetachedSignature(ci.Data["kubeconfig"], tok.ID, strings.Repeat("x", 16))
		if err != nil {
			t.Fatal(err)
		}
		ci.Data["jws-kubeconfig-"+tok.ID] = forged
		if _, err := cs.CoreV1().ConfigMaps("kube-public").Update(ctx, ci, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		expectRefusal("forged cluster-info signature", "does not verify",
			flagJoin("--token", token, "--discovery-token-ca-cert-hash", pin)...)
		h1.sh(ctx, "mv /root/kcm.yaml /etc/kubernetes/manifests/kube-controller-manager.yaml")
		waitFor(t, ctx, "the bootstrap signer to restore the signature", 3*time.Minute, func() error {
			ci, err := cs.CoreV1().ConfigMaps("kube-public").Get(ctx, "cluster-info", metav1.GetOptions{})
			if err != nil {
				return err
			}
			return bootstrap.VerifyClusterInfoJWS(ci, tok)
		})
	})

	joinWith := func(tok, name string, extra ...string) []string {
		return append([]string{"join", "-f", lab.ConfigPath, "--node", name, "--token", tok, "--discovery-token-ca-cert-hash", pin}, extra...)
	}
	joinArgs := func(name string, extra ...string) []string { return joinWith(token, name, extra...) }
	var timings []string
	cpJoin := func(n *node, members int, certKey string) {
		t.Helper()
		start := time.Now()
		if _, err := n.run(ctx, joinArgs(n.h.Name, "--certificate-key", certKey)...); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		if err := etcdHealthy(ctx, etcdVia(t, ctx, n.h), members); err != nil {
			t.Fatalf("after the join of %s: %v", n.h.Name, err)
		}
		body, err := clientVia(t, ctx, n.h, n.h).Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil || string(body) != "ok" {
			t.Fatalf("%s's apiserver /readyz = %q, %v", n.h.Name, body, err)
		}
		timings = append(timings, fmt.Sprintf("control-plane join of %s: etcd member healthy and apiserver ready after %s", n.h.Name, took.Round(100*time.Millisecond)))
		t.Log(timings[len(timings)-1])
	}
	workerJoin := func(n *node, tok string) {
		t.Helper()
		start := time.Now()
		if _, err := n.run(ctx, joinWith(tok, n.h.Name)...); err != nil {
			t.Fatal(err)
		}
		returned := time.Since(start)
		waitFor(t, ctx, n.h.Name+" Ready", 3*time.Minute, func() error { return nodeReady(ctx, cs, n.h.Name) })
		timings = append(timings, fmt.Sprintf("worker join of %s: command returned after %s, Node Ready after %s",
			n.h.Name, returned.Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond)))
		t.Log(timings[len(timings)-1])
	}

	cpJoin(h2, 2, certKey)
	cpJoin(h3, 3, certKey)
	workerJoin(h4, token)

	t.Run("cluster", func(t *testing.T) {
		for _, name := range []string{"h1", "h2", "h3", "h4"} {
			waitFor(t, ctx, name+" Ready", 3*time.Minute, func() error { return nodeReady(ctx, cs, name) })
		}
		for _, name := range []string{"h2", "h3"} {
			nd, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := nd.Labels["node-role.kubernetes.io/control-plane"]; !ok {
				t.Errorf("%s has no control-plane role label: %v", name, nd.Labels)
			}
		}
		if err := etcdHealthy(ctx, etcdVia(t, ctx, h1.h), 3); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"h2", "h3", "h4"} {
			if s := nodes[name].sh(ctx, "ls /etc/kubernetes/bootstrap-kubelet.conf 2>/dev/null | wc -l"); strings.TrimSpace(s) != "0" {
				t.Errorf("%s still has bootstrap-kubelet.conf after its TLS bootstrap", name)
			}
		}
	})

	t.Run("networking across hosts", func(t *testing.T) { checkPodNetworking(t, ctx, cs, "h1", "h4") })

	t.Run("a second join changes nothing", func(t *testing.T) {
		for _, n := range []*node{h4, h2} {
			files, containers := n.stateOf(ctx)
			var extra []string
			if n == h2 {
				extra = []string{"--certificate-key", certKey}
			}
			again, err := n.run(ctx, joinArgs(n.h.Name, extra...)...)
			if err != nil {
				t.Fatal(err)
			}
			files2, containers2 := n.stateOf(ctx)
			if files != files2 {
				t.Errorf("a second join on %s changed files:\nbefore:\n%s\nafter:\n%s", n.h.Name, files, files2)
			}
			if containers != containers2 {
				t.Errorf("a second join on %s restarted containers:\nbefore:\n%s\nafter:\n%s", n.h.Name, containers, containers2)
			}
			if strings.Contains(again, "starting the kubelet") {
				t.Errorf("a second join on %s restarted the kubelet:\n%s", n.h.Name, again)
			}
		}
	})

	t.Run("a Ready node's name is refused", func(t *testing.T) {
		// h4 is fresh as far as the name h2 goes: it holds no credentials for it.
		_, err := h4.run(ctx, "join", endpoint, "--token", token, "--discovery-token-ca-cert-hash", pin,
			"--node-name", "h2", "--advertise-address", h4.h.Address.String(), "--dry-run")
		if err == nil || !strings.Contains(err.Error(), `a Ready node named "h2" is already in the cluster`) {
			t.Fatalf("joining as h2 from h4: %v", err)
		}
	})

	t.Run("control plane survives losing h1", func(t *testing.T) {
		via := clientVia(t, ctx, h2.h, h2.h)
		if err := h1.h.PowerOff(ctx); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for _, lease := range []string{"kube-scheduler", "kube-controller-manager"} {
			waitFor(t, ctx, lease+" leadership to leave h1", 2*time.Minute, func() error {
				holder, err := leaseHolder(ctx, via, lease)
				if err != nil {
					return err
				}
				if !strings.HasPrefix(holder, "h2_") && !strings.HasPrefix(holder, "h3_") {
					return fmt.Errorf("%s is held by %q", lease, holder)
				}
				return nil
			})
		}
		t.Logf("scheduler and controller-manager leadership moved to h2/h3 %s after h1 went down", time.Since(start).Round(100*time.Millisecond))
		one := int32(1)
		dep := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "after-h1", Namespace: "default"},
			Spec: appsv1.DeploymentSpec{
				Replicas: &one,
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "after-h1"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "after-h1"}},
					Spec: corev1.PodSpec{
						Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
						Containers:  []corev1.Container{{Name: "c", Image: "kforge.test/busybox:1.36", Command: []string{"sleep", "3600"}}},
					},
				},
			},
		}
		if _, err := via.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating a Deployment through h2 with h1 down: %v", err)
		}
		waitFor(t, ctx, "the Deployment's pod to be scheduled", 2*time.Minute, func() error {
			pods, err := via.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=after-h1"})
			if err != nil {
				return err
			}
			for _, p := range pods.Items {
				if p.Spec.NodeName != "" {
					t.Logf("pod %s scheduled on %s", p.Name, p.Spec.NodeName)
					return nil
				}
			}
			return fmt.Errorf("%d pods, none scheduled", len(pods.Items))
		})
		if err := etcdHealthy(ctx, etcdVia(t, ctx, h2.h), 3); err == nil {
			t.Errorf("etcd reports h1's member healthy while h1 is off")
		}
		// Bring h1 back: power on, and a re-run of init restarts its kubelet.
		if err := h1.h.PowerOn(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := h1.run(ctx, "init", "-f", lab.ConfigPath, "--node", "h1"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, "h1 Ready again", 3*time.Minute, func() error { return nodeReady(ctx, via, "h1") })
		waitFor(t, ctx, "etcd with three healthy members again", 2*time.Minute, func() error {
			return etcdHealthy(ctx, etcdVia(t, ctx, h2.h), 3)
		})
	})

	t.Run("reset of a joined control-plane host", func(t *testing.T) {
		if _, err := h3.run(ctx, "reset"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, "etcd with two healthy members", time.Minute, func() error {
			return etcdHealthy(ctx, etcdVia(t, ctx, h1.h), 2)
		})
		// A new certificate key, as an operator refreshes it after the two hours: the old one
		// no longer opens the certificates.
		newKey := strings.TrimSpace(h1.sh(ctx, l.Kforge+" certs certificate-key"))
		if _, err := h1.run(ctx, "init", "phase", "upload-certs", "--upload-certs", "--certificate-key", newKey, "-f", lab.ConfigPath, "--node", "h1"); err != nil {
			t.Fatal(err)
		}
		if _, err := h3.run(ctx, joinArgs("h3", "--certificate-key", certKey, "--dry-run")...); err == nil || !strings.Contains(err.Error(), "certificate key does not open") {
			t.Fatalf("the old certificate key after a refresh: %v", err)
		}
		cpJoin(h3, 3, newKey)
		waitFor(t, ctx, "h3 Ready again", 3*time.Minute, func() error { return nodeReady(ctx, cs, "h3") })
	})

	t.Run("worker join timings", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			out, err := h4.run(ctx, "reset")
			if err != nil {
				t.Fatal(err)
			}
			// A worker's own credentials may not delete its Node; the operator does, as
			// reset's output says.
			if !strings.Contains(out, "kubectl delete node h4") && !strings.Contains(out, "deleted Node h4") {
				t.Errorf("reset on a worker neither deleted its Node nor said how to:\n%s", out)
			}
			if err := cs.CoreV1().Nodes().Delete(ctx, "h4", metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				t.Fatal(err)
			}
			// A token of its own, from kforge token create on a control-plane host.
			out, err = h1.run(ctx, "token", "create", "--ttl", "10m", "--description", "e2e worker re-join", "--print-join-command")
			if err != nil {
				t.Fatal(err)
			}
			m := tokenRE.FindStringSubmatch(out)
			if m == nil || !strings.Contains(out, pin) {
				t.Fatalf("token create --print-join-command printed no join command with the CA pin:\n%s", out)
			}
			workerJoin(h4, m[1])
			if _, err := h1.run(ctx, "token", "delete", m[1]); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("reset refuses to break etcd quorum", func(t *testing.T) {
		// With h1 off, h2 and h3 are the healthy two of three members; removing h3 would
		// leave one healthy member of two.
		if err := h1.h.PowerOff(ctx); err != nil {
			t.Fatal(err)
		}
		kept := func() string {
			return h3.sh(ctx, "find /etc/kubernetes -type f -exec sha256sum {} + | sort; ls /var/lib/etcd/member")
		}
		before := kept()
		_, err := h3.run(ctx, "reset")
		if err == nil || !strings.Contains(err.Error(), "would lose quorum") {
			t.Fatalf("reset of h3 with h1 down: %v, want a refusal", err)
		}
		if after := kept(); after != before {
			t.Errorf("the refused reset changed h3:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		if err := etcdHealthy(ctx, etcdVia(t, ctx, h2.h), 3); err == nil {
			t.Error("etcd reports three healthy members with h1 off")
		}
		ms, err := etcdVia(t, ctx, h2.h).Members(ctx)
		if err != nil || len(ms) != 3 {
			t.Errorf("etcd members after the refused reset: %v %v, want all three", ms, err)
		}
	})

	for _, line := range timings {
		t.Log(line)
	}
	for _, h := range hosts {
		t.Logf("peak memory of host %s: %.0f MiB", h.Name, hostMemoryMiB(h))
	}
}
