//go:build integration

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kforge/kforge/e2e/bundle"
)

// The loopback ports the control plane binds: etcd client, peer and metrics, the
// apiserver, the controller-manager and the scheduler.
var controlPlanePorts = []int{2379, 2380, 2381, 6443, 10257, 10259}

// TestIntegrationControlPlane generates a single-host control plane with kforge's init
// phases, runs etcd, kube-apiserver, kube-controller-manager and kube-scheduler as plain
// processes from the generated static pod manifests, and checks that they form a working
// cluster. It needs no root and uses only 127.0.0.1.
func TestIntegrationControlPlane(t *testing.T) {
	requireFreePorts(t, controlPlanePorts...)
	// Ctrl-C (or a SIGTERM from CI) ends the test through its cleanups, which stop the
	// components: they run in their own process groups, so the terminal does not signal them.
	ctx, stop := signal.NotifyContext(t.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root, err := bundle.RepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}

	// 1. The pinned binaries (about 10 minutes on two cores when nothing is cached).
	start := time.Now()
	b, err := bundle.Build(ctx, bundle.Options{RepoRoot: root, Log: os.Stderr})
	if err != nil {
		t.Fatalf("building the test bundle: %v", err)
	}
	t.Logf("bundle %s ready after %s (kubernetes %s, etcd %s)", b.Dir, time.Since(start).Round(time.Millisecond), b.Versions.Kubernetes, b.Versions.Etcd)

	// 2. kforge itself.
	tmp := t.TempDir()
	kforge := filepath.Join(tmp, "kforge")
	start = time.Now()
	build := exec.CommandContext(ctx, "go", "build", "-buildvcs=false", "-o", kforge, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -o %s . in %s: %v\n%s", kforge, root, err, out)
	}
	t.Logf("built kforge in %s", time.Since(start).Round(time.Millisecond))

	// 3. A one-host cluster on loopback.
	var (
		cfgPath       = filepath.Join(tmp, "cluster.toml")
		certDir       = filepath.Join(tmp, "pki")
		kubeconfigDir = filepath.Join(tmp, "kube")
		manifestsDir  = filepath.Join(tmp, "manifests")
	)
	cfg := fmt.Sprintf(`version = "kforge/v1alpha1"

[[hosts]]
name = "cp1"
address = "127.0.0.1"
roles = ["control-plane"]

[etcd.local]
data_dir = %q

[addons.dns]
upstreams = ["127.0.0.1"]

[security.audit]
path = %q
`, filepath.Join(tmp, "etcd"), filepath.Join(tmp, "audit", "audit.log"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	// 4. Certificates, kubeconfigs and manifests.
	for _, phase := range [][]string{{"certs", "all"}, {"kubeconfig", "all"}, {"etcd", "local"}, {"control-plane", "all"}} {
		args := append([]string{"init", "phase"}, phase...)
		args = append(args, "--config", cfgPath, "--node", "cp1", "--cert-dir", certDir,
			"--kubeconfig-dir", kubeconfigDir, "--manifests-dir", manifestsDir)
		pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		out, err := exec.CommandContext(pctx, kforge, args...).CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("kforge %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("kforge %s:\n%s", strings.Join(phase, " "), out)
	}

	// 5. Run the components from the manifests, etcd first. The ports are checked again:
	// the bundle build may have taken minutes.
	requireFreePorts(t, controlPlanePorts...)
	var cs components
	t.Cleanup(func() { cs.stop(t) })
	t.Cleanup(func() {
		if t.Failed() {
			cs.dumpLogs(t)
		}
	})
	for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		pod := readStaticPod(t, filepath.Join(manifestsDir, name+".yaml"))
		c := componentFromPod(t, b, pod, tmp)
		cs.start(t, c, pod.Spec.Containers[0].Env)
		if name == "etcd" {
			// The metrics listener serves /health without TLS.
			waitHealthy(ctx, t, &cs, "http://127.0.0.1:2381/health", time.Minute)
		}
	}

	// 6. The cluster, through the generated admin.conf.
	client := clientFor(t, filepath.Join(kubeconfigDir, "admin.conf"))

	start = time.Now()
	var last string
	poll(ctx, t, &cs, "apiserver /readyz ok", 3*time.Minute, func(ctx context.Context) (bool, error) {
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			last = fmt.Sprintf("%v %s", err, body)
			return false, nil
		}
		last = string(body)
		return last == "ok", nil
	}, func() string { return "last answer: " + last })
	t.Logf("apiserver /readyz ok %s after the components started", time.Since(start).Round(time.Millisecond))

	bindClusterAdmins(ctx, t, client, filepath.Join(kubeconfigDir, "super-admin.conf"))

	sv, err := client.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("reading the server version: %v", err)
	}
	if sv.GitVersion != b.Versions.Kubernetes {
		t.Errorf("apiserver reports version %q, want the bundle's %s", sv.GitVersion, b.Versions.Kubernetes)
	}

	for _, lease := range []string{"kube-controller-manager", "kube-scheduler"} {
		var holder string
		poll(ctx, t, &cs, "lease kube-system/"+lease+" held", 2*time.Minute, func(ctx context.Context) (bool, error) {
			l, err := client.CoordinationV1().Leases("kube-system").Get(ctx, lease, metav1.GetOptions{})
			if err != nil {
				last = err.Error()
				return false, nil
			}
			holder = ""
			if l.Spec.HolderIdentity != nil {
				holder = *l.Spec.HolderIdentity
			}
			last = fmt.Sprintf("holder %q", holder)
			return holder != "", nil
		}, func() string { return "last answer: " + last })
		t.Logf("lease kube-system/%s is held by %s", lease, holder)
	}

	labels := map[string]string{"app": "kforge-integration"}
	replicas := int32(1)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "kforge-integration", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "pause",
					Image: "registry.k8s.io/pause:3.10.1", // never pulled: there is no kubelet
				}}},
			},
		},
	}
	dep, err = client.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating a Deployment: %v", err)
	}
	poll(ctx, t, &cs, "a ReplicaSet of Deployment default/kforge-integration", 2*time.Minute, func(ctx context.Context) (bool, error) {
		rss, err := client.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{LabelSelector: "app=kforge-integration"})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		for _, rs := range rss.Items {
			if owner := metav1.GetControllerOf(&rs); owner != nil && owner.UID == dep.UID {
				t.Logf("the controller-manager created ReplicaSet %s", rs.Name)
				return true, nil
			}
		}
		last = fmt.Sprintf("%d ReplicaSets, none owned by the Deployment", len(rss.Items))
		return false, nil
	}, func() string { return "last answer: " + last })
}

// clientFor returns a clientset for a generated kubeconfig.
func clientFor(t *testing.T, kubeconfig string) *kubernetes.Clientset {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatalf("loading the generated %s: %v", filepath.Base(kubeconfig), err)
	}
	rc.Timeout = 10 * time.Second
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// clusterAdminsBinding is the ClusterRoleBinding that gives admin.conf's group
// (kubeadm:cluster-admins) the cluster-admin role, as kubeadm does.
const clusterAdminsBinding = "kubeadm:cluster-admins"

// bindClusterAdmins creates the kubeadm:cluster-admins ClusterRoleBinding with
// super-admin.conf unless it exists. Until the binding exists admin.conf, which is
// deliberately not in system:masters, can do nothing; the init phases this test runs stop
// before the one that binds it. Before binding, it checks that admin.conf is indeed
// powerless.
func bindClusterAdmins(ctx context.Context, t *testing.T, admin *kubernetes.Clientset, superAdminConf string) {
	t.Helper()
	super := clientFor(t, superAdminConf)
	_, err := super.RbacV1().ClusterRoleBindings().Get(ctx, clusterAdminsBinding, metav1.GetOptions{})
	switch {
	case err == nil:
		t.Logf("ClusterRoleBinding %s exists", clusterAdminsBinding)
		return
	case !apierrors.IsNotFound(err):
		t.Fatalf("reading ClusterRoleBinding %s with super-admin.conf: %v", clusterAdminsBinding, err)
	}
	if _, err := admin.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("admin.conf listing namespaces before %s is bound: got %v, want Forbidden (admin.conf must not be in system:masters)", clusterAdminsBinding, err)
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: clusterAdminsBinding},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "kubeadm:cluster-admins"}},
	}
	if _, err := super.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating ClusterRoleBinding %s with super-admin.conf: %v", clusterAdminsBinding, err)
	}
	t.Logf("created ClusterRoleBinding %s with super-admin.conf (no init phase that binds it has run)", clusterAdminsBinding)
}

// poll calls cond every half second until it is true, failing the test after timeout or
// as soon as a component exits. detail adds the last observation to the failure.
func poll(ctx context.Context, t *testing.T, cs *components, what string, timeout time.Duration,
	cond wait.ConditionWithContextFunc, detail func() string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if c := cs.exited(); c != nil {
			return false, fmt.Errorf("%s exited: %v (log %s)", c.name, c.err, c.logPath)
		}
		return cond(ctx)
	})
	if err != nil {
		t.Fatalf("waiting %s for %s: %v; %s", timeout, what, err, detail())
	}
}

// waitHealthy waits until url answers 200 OK over plain HTTP.
func waitHealthy(ctx context.Context, t *testing.T, cs *components, url string, timeout time.Duration) {
	t.Helper()
	var last string
	poll(ctx, t, cs, url+" healthy", timeout, func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		last = fmt.Sprintf("%s %s", resp.Status, body)
		return resp.StatusCode == http.StatusOK, nil
	}, func() string { return "last answer: " + last })
}
