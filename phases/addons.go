package phases

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"

	"github.com/kforge/kforge/addons"
)

// FieldManager is the server-side apply field manager kforge applies objects as.
const FieldManager = "kforge"

// applyBackoff bounds the retries of one API call that failed with a transient error: the
// delay before the second attempt, the cap on the delay, and the number of attempts.
type applyBackoff struct {
	initial, max time.Duration
	attempts     int
}

// defaultApplyBackoff rides out an API server that is still starting or briefly
// overloaded: 8 attempts over about half a minute.
var defaultApplyBackoff = applyBackoff{initial: 500 * time.Millisecond, max: 8 * time.Second, attempts: 8}

// AddonPhase is the "addon" phase: one sub-phase per add-on, each applying the add-on's
// objects with server-side apply so that a second run changes nothing.
func AddonPhase() Phase { return addonPhase(defaultApplyBackoff) }

func addonPhase(b applyBackoff) Phase {
	p := Phase{Name: "addon", Short: "Install the cluster add-ons"}
	for _, a := range addons.All() {
		p.Phases = append(p.Phases, Phase{
			Name:  a.Name,
			Short: "Install the " + a.Title + " add-on",
			Skip:  func(d *Data) (string, bool) { return a.Disabled(d.Cluster) },
			Run: func(ctx context.Context, d *Data) error {
				return applyAddon(ctx, d, a, b)
			},
		})
	}
	return p
}

// applyOutcome is what one apply did to an object.
type applyOutcome int

const (
	applyCreated applyOutcome = iota
	applyUpdated
	applyUnchanged
)

func (o applyOutcome) String() string {
	switch o {
	case applyCreated:
		return "created"
	case applyUpdated:
		return "updated"
	}
	return "unchanged"
}

func applyAddon(ctx context.Context, d *Data, a addons.Addon, b applyBackoff) error {
	objs, err := a.Objects(d.Cluster)
	if err != nil {
		return err
	}
	cs, err := clusterClient(ctx, d, "addon")
	if err != nil {
		return err
	}
	changed := 0
	for _, o := range objs {
		out, err := applyObject(ctx, cs, o, b)
		if err != nil {
			return err
		}
		d.Log.Debug("applied object", "addon", a.Name, "object", addons.Describe(o), "result", out.String())
		if out != applyUnchanged {
			changed++
		}
	}
	path := "addon/" + a.Name
	if changed == 0 {
		d.Out.Phase(path, "using existing %s (%d objects unchanged)", a.Title, len(objs))
	} else {
		d.Out.Phase(path, "applied %s (%d objects)", a.Title, len(objs))
	}
	return nil
}

// applyClient is the part of a typed client (ConfigMapInterface, DaemonSetInterface, ...)
// that applying uses.
type applyClient[T metav1.Object] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (T, error)
}

// applyObject server-side applies one add-on object, forcing kforge's ownership of the
// fields it sets, and reports whether the object changed.
func applyObject(ctx context.Context, cs kubernetes.Interface, o addons.Object, b applyBackoff) (applyOutcome, error) {
	desc := addons.Describe(o)
	data, err := applyPatch(o)
	if err != nil {
		return 0, fmt.Errorf("applying %s: %w", desc, err)
	}
	name, ns := o.GetName(), o.GetNamespace()
	var out applyOutcome
	switch o.(type) {
	case *corev1.Namespace:
		out, err = apply(ctx, cs.CoreV1().Namespaces(), name, data, b)
	case *corev1.ServiceAccount:
		out, err = apply(ctx, cs.CoreV1().ServiceAccounts(ns), name, data, b)
	case *corev1.ConfigMap:
		out, err = apply(ctx, cs.CoreV1().ConfigMaps(ns), name, data, b)
	case *corev1.Service:
		out, err = apply(ctx, cs.CoreV1().Services(ns), name, data, b)
	case *rbacv1.ClusterRole:
		out, err = apply(ctx, cs.RbacV1().ClusterRoles(), name, data, b)
	case *rbacv1.ClusterRoleBinding:
		out, err = apply(ctx, cs.RbacV1().ClusterRoleBindings(), name, data, b)
	case *rbacv1.Role:
		out, err = apply(ctx, cs.RbacV1().Roles(ns), name, data, b)
	case *rbacv1.RoleBinding:
		out, err = apply(ctx, cs.RbacV1().RoleBindings(ns), name, data, b)
	case *appsv1.Deployment:
		out, err = apply(ctx, cs.AppsV1().Deployments(ns), name, data, b)
	case *appsv1.DaemonSet:
		out, err = apply(ctx, cs.AppsV1().DaemonSets(ns), name, data, b)
	default:
		err = fmt.Errorf("no client for %T", o)
	}
	if err != nil {
		return 0, fmt.Errorf("applying %s: %w", desc, err)
	}
	return out, nil
}

// applyPatch is the apply request body for o: its JSON with apiVersion and kind, which
// must agree with what the client scheme knows o as.
func applyPatch(o addons.Object) ([]byte, error) {
	kinds, _, err := scheme.Scheme.ObjectKinds(o)
	if err != nil {
		return nil, err
	}
	if gvk := o.GetObjectKind().GroupVersionKind(); gvk.Empty() {
		o = o.DeepCopyObject().(addons.Object)
		o.GetObjectKind().SetGroupVersionKind(kinds[0])
	}
	m, err := addons.ToMap(o)
	if err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// apply reads the object, applies data and compares the two versions to tell whether the
// apply changed anything.
func apply[T metav1.Object](ctx context.Context, c applyClient[T], name string, data []byte, b applyBackoff) (applyOutcome, error) {
	var before T
	existed := false
	err := retryTransient(ctx, b, func() error {
		got, err := c.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			existed = false
			return nil
		case err != nil:
			return err
		}
		before, existed = got, true
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("reading the current object: %w", err)
	}
	var after T
	err = retryTransient(ctx, b, func() error {
		var err error
		after, err = c.Patch(ctx, name, types.ApplyPatchType, data, metav1.PatchOptions{
			FieldManager: FieldManager,
			Force:        ptr.To(true),
		})
		return err
	})
	switch {
	case err != nil:
		return 0, err
	case !existed:
		return applyCreated, nil
	case sameContent(before, after):
		return applyUnchanged, nil
	}
	return applyUpdated, nil
}

// sameContent reports whether two versions of an object agree in everything but status and
// the bookkeeping that status writes also change (resourceVersion, managedFields), so a
// controller updating status in between does not count as a change by the apply.
func sameContent(a, b metav1.Object) bool {
	strip := func(o metav1.Object) map[string]any {
		ro, ok := o.(runtime.Object)
		if !ok {
			return nil
		}
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ro)
		if err != nil {
			return nil
		}
		delete(m, "status")
		if md, ok := m["metadata"].(map[string]any); ok {
			delete(md, "resourceVersion")
			delete(md, "managedFields")
		}
		return m
	}
	ma, mb := strip(a), strip(b)
	return ma != nil && mb != nil && equality.Semantic.DeepEqual(ma, mb)
}

// retryTransient calls fn until it succeeds, fails with an error that retrying cannot fix,
// runs out of attempts, or ctx ends; it waits with exponential backoff between attempts.
func retryTransient(ctx context.Context, b applyBackoff, fn func() error) error {
	delay := b.initial
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := fn()
		if err == nil || !isTransient(err) {
			return err
		}
		if attempt >= b.attempts {
			return fmt.Errorf("giving up after %d attempts: %w", attempt, err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-t.C:
		}
		delay = min(2*delay, b.max)
	}
}

// isTransient reports whether an API error may go away on its own: the server is starting,
// overloaded or timed out, the connection broke, or a write raced another.
func isTransient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	switch {
	case apierrors.IsServerTimeout(err), apierrors.IsTimeout(err), apierrors.IsTooManyRequests(err),
		apierrors.IsServiceUnavailable(err), apierrors.IsInternalError(err), apierrors.IsConflict(err):
		return true
	}
	return utilnet.IsConnectionRefused(err) || utilnet.IsConnectionReset(err) || utilnet.IsProbableEOF(err)
}
