package phases

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/internal/apiclient"
)

// waitUntil waits for the condition check through Data's Waiter.
func waitUntil(ctx context.Context, d *Data, what string, check func(context.Context) error) error {
	if d.Waiter == nil {
		return fmt.Errorf("waiting for %s: the phase data has no Waiter", what)
	}
	return d.Waiter.WaitFor(ctx, d, what, check)
}

// clusterClient returns the API client of the online phases. The first call of a run makes
// sure that admin.conf's group is bound to cluster-admin, through the super-admin client,
// since admin.conf can do nothing before that.
func clusterClient(ctx context.Context, d *Data, phase string) (kubernetes.Interface, error) {
	b := &d.BootstrapData
	if !b.clusterAdminsBound && b.SuperAdminClient != nil {
		sc, err := b.SuperAdminClient()
		if err != nil {
			return nil, fmt.Errorf("building the super-admin API client: %w", err)
		}
		if err := ensureObjects(ctx, d, phase, sc, bootstrap.ClusterAdminsBinding()); err != nil {
			return nil, err
		}
		b.clusterAdminsBound = true
	}
	if d.Client == nil {
		return nil, errors.New("no API client: this phase needs a running control plane")
	}
	cs, err := d.Client()
	if err != nil {
		return nil, fmt.Errorf("building the API client: %w", err)
	}
	return cs, nil
}

// ensureObjects converges objs in order and prints what happened to each.
func ensureObjects(ctx context.Context, d *Data, phase string, cs kubernetes.Interface, objs ...runtime.Object) error {
	for _, obj := range objs {
		if _, err := ensureObject(ctx, d, phase, cs, obj); err != nil {
			return err
		}
	}
	return nil
}

func ensureObject(ctx context.Context, d *Data, phase string, cs kubernetes.Interface, obj runtime.Object) (runtime.Object, error) {
	what := apiclient.Describe(obj)
	got, out, err := apiclient.Ensure(ctx, cs, obj)
	if err != nil {
		return nil, err
	}
	d.Log.Debug("converged API object", "object", what, "outcome", out.String())
	switch out {
	case apiclient.Created:
		d.Out.Phase(phase, "created %s", what)
	case apiclient.Updated:
		d.Out.Phase(phase, "updated %s", what)
	default:
		d.Out.Phase(phase, "using existing %s", what)
	}
	return got, nil
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
