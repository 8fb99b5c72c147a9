package apiclient

import (
	"context"
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
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

// Apply server-side applies obj as FieldManager, forcing kforge's ownership of the fields
// obj sets, and reports whether that created the object, changed it or left it as it was.
// Status, and a controller writing it in between, do not count as a change. Calls are
// retried on conflicts and transient errors (see Retry).
func Apply(ctx context.Context, cs kubernetes.Interface, obj Object) (Outcome, error) {
	return applyWith(ctx, defaultBackoff, cs, obj)
}

// applyWith is Apply with the retries bounded by b.
func applyWith(ctx context.Context, b wait.Backoff, cs kubernetes.Interface, obj Object) (Outcome, error) {
	out, err := applyKind(ctx, b, cs, obj)
	if err != nil {
		return Unchanged, fmt.Errorf("applying %s: %w", Describe(obj), err)
	}
	return out, nil
}

func applyKind(ctx context.Context, b wait.Backoff, cs kubernetes.Interface, obj Object) (Outcome, error) {
	data, err := applyPatch(obj)
	if err != nil {
		return Unchanged, err
	}
	name, ns := obj.GetName(), obj.GetNamespace()
	switch obj.(type) {
	case *corev1.Namespace:
		return apply(ctx, b, cs.CoreV1().Namespaces(), name, data)
	case *corev1.ServiceAccount:
		return apply(ctx, b, cs.CoreV1().ServiceAccounts(ns), name, data)
	case *corev1.ConfigMap:
		return apply(ctx, b, cs.CoreV1().ConfigMaps(ns), name, data)
	case *corev1.Service:
		return apply(ctx, b, cs.CoreV1().Services(ns), name, data)
	case *rbacv1.ClusterRole:
		return apply(ctx, b, cs.RbacV1().ClusterRoles(), name, data)
	case *rbacv1.ClusterRoleBinding:
		return apply(ctx, b, cs.RbacV1().ClusterRoleBindings(), name, data)
	case *rbacv1.Role:
		return apply(ctx, b, cs.RbacV1().Roles(ns), name, data)
	case *rbacv1.RoleBinding:
		return apply(ctx, b, cs.RbacV1().RoleBindings(ns), name, data)
	case *appsv1.Deployment:
		return apply(ctx, b, cs.AppsV1().Deployments(ns), name, data)
	case *appsv1.DaemonSet:
		return apply(ctx, b, cs.AppsV1().DaemonSets(ns), name, data)
	}
	return Unchanged, fmt.Errorf("no client for %T", obj)
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

// apply reads the object, applies data and compares the two versions to tell whether the
// apply changed anything.
func apply[T metav1.Object](ctx context.Context, b wait.Backoff, c applyClient[T], name string, data []byte) (Outcome, error) {
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
		return Unchanged, fmt.Errorf("reading the current object: %w", err)
	}
	var after T
	err = wait.Retry(ctx, b, retriable, func(ctx context.Context) error {
		var err error
		after, err = c.Patch(ctx, name, types.ApplyPatchType, data, metav1.PatchOptions{
			FieldManager: FieldManager,
			Force:        ptr.To(true),
		})
		return err
	})
	switch {
	case err != nil:
		return Unchanged, err
	case !existed:
		return Created, nil
	case sameContent(before, after):
		return Unchanged, nil
	}
	return Updated, nil
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
	return ma != nil && mb != nil && apiequality.Semantic.DeepEqual(ma, mb)
}
