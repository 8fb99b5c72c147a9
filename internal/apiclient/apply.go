package apiclient

import (
	"context"
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"

	"github.com/kforge/kforge/internal/wait"
)

// FieldManager is the server-side apply field manager kforge applies objects as.
const FieldManager = "kforge"

// Change is what applying an object did, or what a plan (PlanApply) says it would do.
type Change struct {
	// Object names the object: "Deployment kube-system/coredns".
	Object string
	// Outcome says whether the apply creates the object, changes it or leaves it as it is.
	Outcome Outcome
	// Fields are the fields an update changes (see FieldChanges); none for a create.
	Fields []FieldChange
}

// Apply server-side applies obj as FieldManager, forcing kforge's ownership of the fields
// obj sets, and reports whether that created the object, changed it (and which fields) or
// left it as it was. Status, and a controller writing it in between, do not count as a
// change. Calls are retried on conflicts and transient errors (see Retry).
func Apply(ctx context.Context, cs kubernetes.Interface, obj Object) (Change, error) {
	return applyWith(ctx, defaultBackoff, cs, obj, false)
}

// PlanApply is Apply as a server-side dry run (DryRun All): the apiserver computes the
// object the apply would leave, with its defaults, admission and the other field managers'
// fields, and stores nothing. The Change compares that with the live object. An object
// that does not exist is one the apply would create; its dry run may find its namespace
// missing when an earlier object of the same plan (a Namespace) would create it.
func PlanApply(ctx context.Context, cs kubernetes.Interface, obj Object) (Change, error) {
	return applyWith(ctx, defaultBackoff, cs, obj, true)
}

// ApplyObjects applies objs in order, or only plans them (PlanApply) when plan is set, and
// returns what each did or would do. It stops at the first error.
func ApplyObjects[O Object](ctx context.Context, cs kubernetes.Interface, objs []O, plan bool) ([]Change, error) {
	out := make([]Change, 0, len(objs))
	for _, o := range objs {
		c, err := applyWith(ctx, defaultBackoff, cs, o, plan)
		if err != nil {
			return out, err
		}
		out = append(out, c)
	}
	return out, nil
}

// ApplySummary is the progress line of applying the objects of what ("CoreDNS") with
// ApplyObjects: "using existing CoreDNS (6 objects unchanged)" or "applied CoreDNS (6
// objects)".
func ApplySummary(what string, changes []Change) string {
	for _, c := range changes {
		if c.Outcome != Unchanged {
			return fmt.Sprintf("applied %s (%d objects)", what, len(changes))
		}
	}
	return fmt.Sprintf("using existing %s (%d objects unchanged)", what, len(changes))
}

// applyWith is Apply, or PlanApply with dryRun, with the retries bounded by b.
func applyWith(ctx context.Context, b wait.Backoff, cs kubernetes.Interface, obj Object, dryRun bool) (Change, error) {
	c, err := applyKind(ctx, b, cs, obj, dryRun)
	if err != nil {
		verb := "applying"
		if dryRun {
			verb = "planning the apply of"
		}
		return Change{}, fmt.Errorf("%s %s: %w", verb, Describe(obj), err)
	}
	c.Object = Describe(obj)
	return c, nil
}

func applyKind(ctx context.Context, b wait.Backoff, cs kubernetes.Interface, obj Object, dryRun bool) (Change, error) {
	data, err := applyPatch(obj)
	if err != nil {
		return Change{}, err
	}
	name, ns := obj.GetName(), obj.GetNamespace()
	switch obj.(type) {
	case *corev1.Namespace:
		return apply(ctx, b, cs.CoreV1().Namespaces(), name, data, dryRun)
	case *corev1.ServiceAccount:
		return apply(ctx, b, cs.CoreV1().ServiceAccounts(ns), name, data, dryRun)
	case *corev1.ConfigMap:
		return apply(ctx, b, cs.CoreV1().ConfigMaps(ns), name, data, dryRun)
	case *corev1.Secret:
		return apply(ctx, b, cs.CoreV1().Secrets(ns), name, data, dryRun)
	case *corev1.Service:
		return apply(ctx, b, cs.CoreV1().Services(ns), name, data, dryRun)
	case *rbacv1.ClusterRole:
		return apply(ctx, b, cs.RbacV1().ClusterRoles(), name, data, dryRun)
	case *rbacv1.ClusterRoleBinding:
		return apply(ctx, b, cs.RbacV1().ClusterRoleBindings(), name, data, dryRun)
	case *rbacv1.Role:
		return apply(ctx, b, cs.RbacV1().Roles(ns), name, data, dryRun)
	case *rbacv1.RoleBinding:
		return apply(ctx, b, cs.RbacV1().RoleBindings(ns), name, data, dryRun)
	case *appsv1.Deployment:
		return apply(ctx, b, cs.AppsV1().Deployments(ns), name, data, dryRun)
	case *appsv1.DaemonSet:
		return apply(ctx, b, cs.AppsV1().DaemonSets(ns), name, data, dryRun)
	}
	return Change{}, fmt.Errorf("no client for %T", obj)
}

// applyPatch is the apply request body for obj: its JSON with apiVersion and kind, which
// must agree with what the client scheme knows obj as, and without status.
func applyPatch(obj Object) ([]byte, error) {
	kinds, _, err := scheme.Scheme.ObjectKinds(obj)
	if err != nil {
		return nil, err
	}
	if obj.GetObjectKind().GroupVersionKind().Empty() {
		obj = obj.DeepCopyObject().(Object)
		obj.GetObjectKind().SetGroupVersionKind(kinds[0])
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	delete(m, "status")
	return json.Marshal(m)
}

// applyClient is the part of a typed client (ConfigMapInterface, DaemonSetInterface, ...)
// that applying uses.
type applyClient[T metav1.Object] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (T, error)
}

// apply reads the object, applies data (as a dry run with dryRun) and compares the two
// versions to tell what the apply changes.
func apply[T metav1.Object](ctx context.Context, b wait.Backoff, c applyClient[T], name string, data []byte, dryRun bool) (Change, error) {
	var before T
	existed := false
	err := wait.Retry(ctx, b, retriable, func(ctx context.Context) error {
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
		return Change{}, fmt.Errorf("reading the current object: %w", err)
	}
	opts := metav1.PatchOptions{FieldManager: FieldManager, Force: ptr.To(true)}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	var after T
	err = wait.Retry(ctx, b, retriable, func(ctx context.Context) error {
		var err error
		after, err = c.Patch(ctx, name, types.ApplyPatchType, data, opts)
		return err
	})
	switch {
	case err != nil && dryRun && !existed && apierrors.IsNotFound(err):
		return Change{Outcome: Created}, nil
	case err != nil:
		return Change{}, err
	case !existed:
		return Change{Outcome: Created}, nil
	}
	fields, err := objectChanges(before, after)
	if err != nil {
		return Change{}, err
	}
	if len(fields) == 0 {
		return Change{Outcome: Unchanged}, nil
	}
	return Change{Outcome: Updated, Fields: fields}, nil
}
