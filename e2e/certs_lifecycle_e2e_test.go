//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/kforge/kforge/e2e/testbed"
)

// signingDuration is the controller-manager's --cluster-signing-duration in the 3-control-
// plane cluster of TestCertLifecycle: the kubelets rotate their client certificates at 70
// to 90% of it, so twice within the scenario's renewal phase.
const signingDuration = "3m0s"

// TestCertLifecycle is issue 12 on real hosts, two clusters side by side:
//   - h5 (control plane) and h6 (worker): certificates expire while both are powered off,
//     and one kforge up brings the cluster back (testExpiredClusterComesBack); while the
//     hosts are off, the other cluster runs.
//   - h1, h2, h3 (control planes) and h4 (worker), made by kforge up with the
//     controller-manager signing kubelet certificates for signingDuration: automatic
//     renewal replaces every leaf and kubeconfig client certificate on every control plane
//     one apiserver at a time under an apiWatch, and up renews them when due
//     (certsAutoRenewal); meanwhile every kubelet rotates its client certificate at least
//     twice and its node stays Ready (watchKubeletRotations); then serving certificates
//     (servingCertsOnUp), with the controller-manager back on its default signing duration.
func TestCertLifecycle(t *testing.T) {
	ctx := t.Context()
	l := newLab(t, ctx, 6)
	hs := map[string]testbed.Host{}
	for _, h := range l.TB.Hosts() {
		hs[h.Name] = h
	}
	dir := t.TempDir()
	known, err := os.ReadFile(l.TB.KnownHosts())
	if err != nil {
		t.Fatal(err)
	}
	knownHosts := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(knownHosts, known, 0o600); err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		timings []string
	)
	timed := func(lines ...string) {
		mu.Lock()
		defer mu.Unlock()
		timings = append(timings, lines...)
	}
	defer func() {
		for _, line := range timings {
			t.Log(line)
		}
	}()

	t.Run("certificates", func(t *testing.T) {
		t.Run("an expired cluster comes back with one up", func(t *testing.T) {
			t.Parallel()
			timed(testExpiredClusterComesBack(t, ctx, l, hs["h5"], hs["h6"], dir, knownHosts)...)
		})
		t.Run("renewal on 3 control planes, kubelet rotation, serving certificates", func(t *testing.T) {
			t.Parallel()
			sub := filepath.Join(dir, "ha")
			if err := os.MkdirAll(sub, 0o700); err != nil {
				t.Fatal(err)
			}
			cps := []testbed.Host{hs["h1"], hs["h2"], hs["h3"]}
			nodes := map[string]*node{}
			for _, name := range []string{"h1", "h2", "h3", "h4"} {
				nodes[name] = &node{t: t, h: hs[name], lab: l}
			}
			base := l.UpConfig("certs", hs["h1"].Address.String()+":6443", 3, hs["h1"], hs["h2"], hs["h3"], hs["h4"])
			cfg := filepath.Join(sub, "ha.toml")
			shortSigning := base + "\n[controller_manager.extra_args]\ncluster-signing-duration = \"" + signingDuration + "\"\n"
			if err := os.WriteFile(cfg, []byte(shortSigning), 0o600); err != nil {
				t.Fatal(err)
			}
			admin := filepath.Join(sub, "admin.conf")
			start := time.Now()
			made := kforgeUp(t, ctx, l, cfg, knownHosts, nil)
			if made.err != nil {
				t.Fatalf("kforge up of 3 control planes and a worker: %v\n%s", made.err, made.stderr)
			}
			cs := clientFromFile(t, admin)
			all := []*node{nodes["h1"], nodes["h2"], nodes["h3"], nodes["h4"]}
			for _, n := range all {
				waitFor(t, ctx, n.h.Name+" Ready", 3*time.Minute, func() error { return nodeReady(ctx, cs, n.h.Name) })
			}
			timed("3 control planes and a worker Ready " + time.Since(start).Round(100*time.Millisecond).String() + " after up started")

			url := serveWeb(t, ctx, cs, hs["h4"].Address.String())
			timed(certsAutoRenewal(t, ctx, l, cfg, knownHosts, admin, cps, url))
			// The kubelets have rotated all along; wait for the second rotation where it
			// has not come yet.
			timed("kubelet client certificate rotation under --cluster-signing-duration=" + signingDuration + ": " +
				watchKubeletRotations(t, ctx, clientFromFile(t, admin), all, 2, 6*time.Minute))

			// Serving certificates are signed for the default duration: the file without
			// the short signing duration.
			basePath := filepath.Join(sub, "base.toml")
			if err := os.WriteFile(basePath, []byte(base), 0o600); err != nil {
				t.Fatal(err)
			}
			servingCertsOnUp(t, ctx, l, knownHosts, admin, base, basePath, []string{"h1", "h2", "h3"}, nodes)
		})
	})
}

// serveWeb runs two replicas of a web server behind a NodePort Service in namespace
// e2e-web and returns its URL at nodeAddr, once it answers.
func serveWeb(t *testing.T, ctx context.Context, cs kubernetes.Interface, nodeAddr string) string {
	t.Helper()
	const ns = "e2e-web"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the default service account of "+ns, time.Minute, func() error {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
	pod := testPod("web", "", "mkdir -p /www && echo hello-kforge > /www/index.html && exec httpd -f -p 8080 -h /www")
	pod.Spec.RestartPolicy = corev1.RestartPolicyAlways
	pod.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
		PeriodSeconds: 1,
	}
	replicas := int32(2)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}}, Spec: pod.Spec},
		},
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("http://%s/", net.JoinHostPort(nodeAddr, fmt.Sprint(svc.Spec.Ports[0].NodePort)))
	httpc := &http.Client{Timeout: 2 * time.Second}
	waitFor(t, ctx, "the web Service to answer at "+url, 3*time.Minute, func() error {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if d.Status.ReadyReplicas < replicas {
			return fmt.Errorf("%d of %d replicas ready", d.Status.ReadyReplicas, replicas)
		}
		return getOK(ctx, httpc, url)
	})
	return url
}
