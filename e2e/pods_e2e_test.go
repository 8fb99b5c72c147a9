//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	ebundle "github.com/kforge/kforge/e2e/bundle"
)

// TestImage is the busybox image the test bundle carries for test pods.
const TestImage = "kforge.test/busybox:1.36"

// buildTestBundle builds (or reuses from the cache) the full test bundle: Kubernetes,
// etcd, CoreDNS, flannel, CNI plugins and every image, in kforge's bundle format.
func buildTestBundle(t *testing.T, ctx context.Context) string {
	t.Helper()
	start := time.Now()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := ebundle.Build(ctx, ebundle.Options{RepoRoot: root, Log: os.Stderr})
	if err != nil {
		t.Fatalf("building the test bundle: %v", err)
	}
	t.Logf("test bundle %s ready after %s", b.Dir, time.Since(start).Round(time.Millisecond))
	return b.Dir
}

func testPod(name, node string, command string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: new(int64),
			Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{
				Name:            name,
				Image:           TestImage,
				ImagePullPolicy: corev1.PullNever,
				Command:         []string{"/bin/sh", "-c", command},
			}},
		},
	}
	if node != "" {
		p.Spec.NodeName = node
	}
	return p
}

// checkPodNetworking runs a web server pod behind a ClusterIP Service and a client pod
// that resolves kubernetes.default and the Service through CoreDNS and fetches the page
// through the Service's ClusterIP (kube-proxy). serverNode and clientNode pin the pods
// (empty: anywhere).
func checkPodNetworking(t *testing.T, ctx context.Context, cs kubernetes.Interface, nodes ...string) {
	t.Helper()
	serverNode, clientNode := "", ""
	if len(nodes) == 2 {
		serverNode, clientNode = nodes[0], nodes[1]
	}
	ns := fmt.Sprintf("e2e-%d", time.Now().UnixNano()%100000)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	waitFor(t, ctx, "the default service account", time.Minute, func() error {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err
	})

	web := testPod("web", serverNode, "mkdir -p /www && echo hello-kforge-$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www")
	web.Spec.RestartPolicy = corev1.RestartPolicyAlways
	web.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
		PeriodSeconds: 1,
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, web, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the web pod Ready", 2*time.Minute, func() error {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("web is %s", p.Status.Phase)
	})

	// CoreDNS comes up on its own time after the nodes are Ready; kforge, like kubeadm,
	// does not wait for it. The client's single lookup needs it.
	waitFor(t, ctx, "a CoreDNS replica Ready", 2*time.Minute, func() error {
		d, err := cs.AppsV1().Deployments("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if d.Status.ReadyReplicas == 0 {
			return fmt.Errorf("coredns has no ready replica (%d of %d updated)", d.Status.UpdatedReplicas, d.Status.Replicas)
		}
		return nil
	})
	// A replica just Ready reaches kube-proxy on the client's node a moment later: the
	// lookups may retry for a minute, then must answer.
	script := fmt.Sprintf(`set -e
for i in $(seq 60); do
  if nslookup kubernetes.default.svc.cluster.local; then break; fi
  if [ "$i" = 60 ]; then exit 1; fi
  sleep 1
done
ip=""
for i in $(seq 30); do
  if out=$(nslookup web.%s.svc.cluster.local); then
    ip=$(echo "$out" | awk '/^Address/ {a=$NF} END {print a}')
    break
  fi
  sleep 1
done
echo "web service resolves to $ip"
for i in 1 2 3 4 5 6 7 8 9 10; do
  if printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 "$ip" 80 | grep hello-kforge; then exit 0; fi
  sleep 1
done
exit 1`, ns)
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, testPod("client", clientNode, script), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var phase corev1.PodPhase
	waitFor(t, ctx, "the client pod to finish", 2*time.Minute, func() error {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, "client", metav1.GetOptions{})
		if err != nil {
			return err
		}
		phase = p.Status.Phase
		if phase == corev1.PodSucceeded || phase == corev1.PodFailed {
			return nil
		}
		return fmt.Errorf("client is %s", phase)
	})
	logs, err := cs.CoreV1().Pods(ns).GetLogs("client", &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil && !apierrors.IsNotFound(err) {
		t.Logf("reading the client's log: %v", err)
	}
	if phase != corev1.PodSucceeded {
		t.Fatalf("the client pod could not resolve and reach the web Service:\n%s", logs)
	}
	t.Logf("client pod:\n%s", logs)
}
