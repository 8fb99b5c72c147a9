package phases

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/internal/apiclient"
	"github.com/kforge/kforge/internal/wait"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

func loadKubeconfig(path string) (*clientcmdapi.Config, error) {
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}

// ClientFromKubeconfig returns a clientset for a kubeconfig file.
func ClientFromKubeconfig(path string) (kubernetes.Interface, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig %s: %w", path, err)
	}
	cs, err := kubernetes.NewForConfig(apiclient.Configure(rc, "kforge"))
	if err != nil {
		return nil, fmt.Errorf("building a client from %s: %w", path, err)
	}
	return cs, nil
}

// clusterClient returns the API client of the online phases. The first call of a run makes
// sure that admin.conf's group is bound to cluster-admin, through the super-admin client,
// since admin.conf can do nothing before that.
func clusterClient(ctx context.Context, d *Data) (kubernetes.Interface, error) {
	b := &d.BootstrapData
	// A join has no super-admin.conf: the binding exists already, made by init.
	if !b.clusterAdminsBound && b.SuperAdminClient != nil {
		sc, err := b.SuperAdminClient()
		if err != nil {
			return nil, fmt.Errorf("building the super-admin API client: %w", err)
		}
		if err := ensureObjects(ctx, d, sc, bootstrap.ClusterAdminsBinding()); err != nil {
			return nil, err
		}
	}
	cs, err := d.Client()
	if err != nil {
		return nil, fmt.Errorf("building the API client: %w", err)
	}
	if !b.clusterAdminsBound && b.SuperAdminClient != nil {
		if err := waitClusterAdmin(ctx, d, cs); err != nil {
			return nil, err
		}
		b.clusterAdminsBound = true
	}
	return cs, nil
}

// waitClusterAdmin waits until admin.conf's client is authorized, as kubeadm does after
// creating kubeadm:cluster-admins: the apiserver's RBAC authorizer sees a new binding a
// moment after it is written, and until then admin.conf is Forbidden. The client reads the
// binding itself; any answer but Forbidden, Unauthorized or a transient error means RBAC
// has caught up.
func waitClusterAdmin(ctx context.Context, d *Data, cs kubernetes.Interface) error {
	name := bootstrap.ClusterAdminsBindingName
	err := d.Waiter.WaitFor(ctx, d, "admin.conf to be authorized through ClusterRoleBinding "+name, func(ctx context.Context) error {
		_, err := cs.RbacV1().ClusterRoleBindings().Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil, apierrors.IsNotFound(err):
			return nil
		case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err), apiclient.IsTransient(err):
			return err
		}
		return wait.Permanent(err)
	})
	if err != nil {
		return fmt.Errorf("waiting for admin.conf to be authorized through ClusterRoleBinding %s: %w", name, err)
	}
	return nil
}

// ensureObjects converges objs in order and prints what happened to each.
func ensureObjects(ctx context.Context, d *Data, cs kubernetes.Interface, objs ...runtime.Object) error {
	for _, obj := range objs {
		if _, err := ensureObject(ctx, d, cs, obj); err != nil {
			return err
		}
	}
	return nil
}

func ensureObject(ctx context.Context, d *Data, cs kubernetes.Interface, obj runtime.Object) (runtime.Object, error) {
	what := apiclient.Describe(obj)
	got, out, err := apiclient.Ensure(ctx, cs, obj)
	if err != nil {
		return nil, err
	}
	reportOutcome(d, what, out)
	return got, nil
}

// reportOutcome says what a write did to the object what ("Secret kube-system/x"), in the
// same words for every object: created, updated or using existing.
func reportOutcome(d *Data, what string, out apiclient.Outcome) {
	d.Log.Debug("converged API object", "object", what, "outcome", out.String())
	switch out {
	case apiclient.Created:
		d.Out.Say("created %s", what)
	case apiclient.Updated:
		d.Out.Say("updated %s", what)
	default:
		d.Out.Say("using existing %s", what)
	}
}

// readClusterCA reads ca.crt from the certificate directory.
func readClusterCA(d *Data) ([]byte, error) {
	shown := filepath.Join(d.CertDir, "ca.crt")
	data, err := os.ReadFile(d.Path(shown))
	if err != nil {
		return nil, fmt.Errorf("reading the cluster CA %s (run the certs phase first): %w", shown, err)
	}
	return data, nil
}

// getSecret reads a Secret, retrying transient errors; a missing one is nil.
func getSecret(ctx context.Context, cs kubernetes.Interface, ns, name string) (*corev1.Secret, error) {
	return apiclient.Get(ctx, "Secret "+ns+"/"+name, func(ctx context.Context) (*corev1.Secret, error) {
		return cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	})
}

// getConfigMap reads ConfigMap ns/name, retrying transient errors; a missing one is nil.
func getConfigMap(ctx context.Context, cs kubernetes.Interface, ns, name string) (*corev1.ConfigMap, error) {
	return apiclient.GetConfigMap(ctx, cs, ns, name)
}

// kubeconfigClient returns the API client built, once, from the kubeconfig file in dir.
// Without a file it is the host's own: admin.conf on a control-plane host, else
// kubelet.conf, whichever exists now; nil when neither does.
func kubeconfigClient(dir, file string) func() (kubernetes.Interface, error) {
	if file == "" {
		for _, f := range []string{"admin.conf", "kubelet.conf"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
				file = f
				break
			}
		}
		if file == "" {
			return nil
		}
	}
	p := filepath.Join(dir, file)
	var (
		once sync.Once
		c    kubernetes.Interface
		err  error
	)
	return func() (kubernetes.Interface, error) {
		once.Do(func() { c, err = ClientFromKubeconfig(p) })
		return c, err
	}
}
