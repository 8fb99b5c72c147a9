// Package apiclient converges API objects through client-go: create-or-update (Ensure) and
// server-side apply (Apply), with bounded retries on conflicts and transient errors. It
// holds kforge's API retry policy (IsTransient, Retry); the loops are package wait's. The
// objects themselves come from the domain packages (addons, bootstrap, tokens).
package apiclient

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"github.com/kforge/kforge/internal/wait"
)

// Outcome says what Ensure or Apply did.
type Outcome int

// Outcomes of Ensure and Apply.
const (
	Unchanged Outcome = iota
	Created
	Updated
)

func (o Outcome) String() string {
	switch o {
	case Created:
		return "created"
	case Updated:
		return "updated"
	}
	return "unchanged"
}

// defaultBackoff rides out an apiserver restart or a brief etcd election: about 15s.
var defaultBackoff = wait.Backoff{Steps: 8, Initial: 200 * time.Millisecond, Max: 4 * time.Second}

// IsTransient reports whether err is worth retrying as is: a server or client timeout,
// throttling, an unavailable or failing apiserver, or a dropped connection.
func IsTransient(err error) bool {
	switch {
	case err == nil:
		return false
	case apierrors.IsServerTimeout(err), apierrors.IsTimeout(err), apierrors.IsTooManyRequests(err),
		apierrors.IsServiceUnavailable(err), apierrors.IsInternalError(err):
		return true
	case utilnet.IsConnectionRefused(err), utilnet.IsConnectionReset(err), utilnet.IsProbableEOF(err):
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// retriable adds the errors of a write racing another writer: an update that lost
// (Conflict) and a create that lost (AlreadyExists). Both are fixed by reading again.
func retriable(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) || IsTransient(err)
}

// Retry calls fn until it succeeds, fails in a way retrying cannot fix (or with an error
// marked wait.Permanent), or the attempts run out, waiting with exponential backoff in
// between; it stops when ctx ends. Conflicts, AlreadyExists and transient errors are
// retried, so fn must read what it writes.
func Retry(ctx context.Context, fn func(context.Context) error) error {
	return wait.Retry(ctx, defaultBackoff, retriable, fn)
}

// Object is a typed API object such as *corev1.ConfigMap.
type Object interface {
	metav1.Object
	runtime.Object
}

// Get runs get, retrying transient errors (see Retry); NotFound gives nil and no error.
// what names the object for the error: "ConfigMap kube-system/kubeadm-config".
func Get[T any](ctx context.Context, what string, get func(context.Context) (*T, error)) (*T, error) {
	var obj *T
	err := Retry(ctx, func(ctx context.Context) error {
		got, err := get(ctx)
		switch {
		case apierrors.IsNotFound(err):
			obj = nil
			return nil
		case err != nil:
			return fmt.Errorf("reading %s: %w", what, err)
		}
		obj = got
		return nil
	})
	return obj, err
}

// GetConfigMap reads ConfigMap ns/name with Get: nil when it does not exist.
func GetConfigMap(ctx context.Context, cs kubernetes.Interface, ns, name string) (*corev1.ConfigMap, error) {
	return Get(ctx, "ConfigMap "+ns+"/"+name, func(ctx context.Context) (*corev1.ConfigMap, error) {
		return cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	})
}

// Ensure makes the cluster hold obj and returns the object as the cluster now has it.
// An existing object is brought in line, not replaced:
//   - labels and annotations of obj are set, others kept; owner references are replaced
//     when obj has any;
//   - ConfigMap: obj's keys are set, others kept (cluster-info keeps its signatures);
//   - Secret: the data is replaced; a different type is an error (the API cannot change it);
//   - Role, ClusterRole: the rules are replaced;
//   - RoleBinding, ClusterRoleBinding: the subjects are replaced; a different roleRef is an
//     error (the API cannot change it).
//
// Writes are retried on conflicts and transient errors (see Retry).
func Ensure(ctx context.Context, cs kubernetes.Interface, obj runtime.Object) (runtime.Object, Outcome, error) {
	return ensureWith(ctx, defaultBackoff, cs, obj)
}

// ensureWith is Ensure with the retries bounded by b.
func ensureWith(ctx context.Context, b wait.Backoff, cs kubernetes.Interface, obj runtime.Object) (runtime.Object, Outcome, error) {
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		return result(ensure(ctx, b, cs.CoreV1().ConfigMaps(o.Namespace), o, mergeConfigMap))
	case *corev1.Secret:
		return result(ensure(ctx, b, cs.CoreV1().Secrets(o.Namespace), o, mergeSecret))
	case *rbacv1.Role:
		return result(ensure(ctx, b, cs.RbacV1().Roles(o.Namespace), o, mergeRole))
	case *rbacv1.RoleBinding:
		return result(ensure(ctx, b, cs.RbacV1().RoleBindings(o.Namespace), o, mergeRoleBinding))
	case *rbacv1.ClusterRole:
		return result(ensure(ctx, b, cs.RbacV1().ClusterRoles(), o, mergeClusterRole))
	case *rbacv1.ClusterRoleBinding:
		return result(ensure(ctx, b, cs.RbacV1().ClusterRoleBindings(), o, mergeClusterRoleBinding))
	}
	return nil, Unchanged, fmt.Errorf("ensuring %s: kforge cannot apply a %T", Describe(obj), obj)
}

func result[T Object](got T, out Outcome, err error) (runtime.Object, Outcome, error) {
	if err != nil {
		return nil, out, err
	}
	return got, out, nil
}

// Describe names obj for messages: "ConfigMap kube-system/kubeadm-config". The kind is
// obj's own TypeMeta's, else the one client-go's scheme knows its type as.
func Describe(obj runtime.Object) string {
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	if kind == "" {
		kind = fmt.Sprintf("%T", obj)
		if kinds, _, err := scheme.Scheme.ObjectKinds(obj); err == nil {
			kind = kinds[0].Kind
		}
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return kind
	}
	if m.GetNamespace() == "" {
		return kind + " " + m.GetName()
	}
	return kind + " " + m.GetNamespace() + "/" + m.GetName()
}

// typedClient is what every typed client-go resource interface offers.
type typedClient[T Object] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error)
	Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
}

// ensure creates want, or merges it into the existing object and updates that when merge
// changed it. merge edits cur in place.
func ensure[T Object](ctx context.Context, b wait.Backoff, c typedClient[T], want T, merge func(cur, want T) (bool, error)) (T, Outcome, error) {
	what := Describe(want)
	var (
		got T
		out Outcome
	)
	err := wait.Retry(ctx, b, retriable, func(ctx context.Context) error {
		cur, err := c.Get(ctx, want.GetName(), metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			created, err := c.Create(ctx, want.DeepCopyObject().(T), metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("creating %s: %w", what, err)
			}
			got, out = created, Created
			return nil
		case err != nil:
			return fmt.Errorf("reading %s: %w", what, err)
		}
		changed := mergeMeta(cur, want)
		dataChanged, err := merge(cur, want)
		if err != nil {
			return fmt.Errorf("updating %s: %w", what, err)
		}
		if !changed && !dataChanged {
			got, out = cur, Unchanged
			return nil
		}
		updated, err := c.Update(ctx, cur, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("updating %s: %w", what, err)
		}
		got, out = updated, Updated
		return nil
	})
	return got, out, err
}

func mergeMeta(cur, want metav1.Object) bool {
	changed := false
	if l, ok := mergeStrings(cur.GetLabels(), want.GetLabels()); ok {
		cur.SetLabels(l)
		changed = true
	}
	if a, ok := mergeStrings(cur.GetAnnotations(), want.GetAnnotations()); ok {
		cur.SetAnnotations(a)
		changed = true
	}
	if refs := want.GetOwnerReferences(); len(refs) > 0 && !apiequality.Semantic.DeepEqual(cur.GetOwnerReferences(), refs) {
		cur.SetOwnerReferences(refs)
		changed = true
	}
	return changed
}

// mergeStrings sets want's keys in a copy of cur and reports whether that changed it.
func mergeStrings(cur, want map[string]string) (map[string]string, bool) {
	changed := false
	for k, v := range want {
		if old, ok := cur[k]; !ok || old != v {
			changed = true
			break
		}
	}
	if !changed {
		return cur, false
	}
	out := maps.Clone(cur)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, want)
	return out, true
}

func mergeConfigMap(cur, want *corev1.ConfigMap) (bool, error) {
	data, changed := mergeStrings(cur.Data, want.Data)
	cur.Data = data
	for k, v := range want.BinaryData {
		if old, ok := cur.BinaryData[k]; !ok || string(old) != string(v) {
			if cur.BinaryData == nil {
				cur.BinaryData = map[string][]byte{}
			}
			cur.BinaryData[k] = v
			changed = true
		}
	}
	return changed, nil
}

func mergeSecret(cur, want *corev1.Secret) (bool, error) {
	if cur.Type != want.Type {
		return false, fmt.Errorf("it has type %q, want %q, and the type of a Secret cannot change: delete it and run again", cur.Type, want.Type)
	}
	if apiequality.Semantic.DeepEqual(cur.Data, want.Data) {
		return false, nil
	}
	cur.Data = want.Data
	return true, nil
}

func mergeRole(cur, want *rbacv1.Role) (bool, error) {
	if apiequality.Semantic.DeepEqual(cur.Rules, want.Rules) {
		return false, nil
	}
	cur.Rules = want.Rules
	return true, nil
}

func mergeClusterRole(cur, want *rbacv1.ClusterRole) (bool, error) {
	if apiequality.Semantic.DeepEqual(cur.Rules, want.Rules) {
		return false, nil
	}
	cur.Rules = want.Rules
	return true, nil
}

func mergeRoleBinding(cur, want *rbacv1.RoleBinding) (bool, error) {
	return mergeBinding(&cur.RoleRef, want.RoleRef, &cur.Subjects, want.Subjects)
}

func mergeClusterRoleBinding(cur, want *rbacv1.ClusterRoleBinding) (bool, error) {
	return mergeBinding(&cur.RoleRef, want.RoleRef, &cur.Subjects, want.Subjects)
}

func mergeBinding(curRef *rbacv1.RoleRef, wantRef rbacv1.RoleRef, curSubjects *[]rbacv1.Subject, wantSubjects []rbacv1.Subject) (bool, error) {
	if *curRef != wantRef {
		return false, fmt.Errorf("it refers to %s %s, want %s %s, and the role of a binding cannot change: delete it and run again",
			curRef.Kind, curRef.Name, wantRef.Kind, wantRef.Name)
	}
	if apiequality.Semantic.DeepEqual(*curSubjects, wantSubjects) {
		return false, nil
	}
	*curSubjects = wantSubjects
	return true, nil
}

// Client rates: kubectl's (QPS 50, burst 300) rather than client-go's default of 5 and 10,
// which made up's addons phase wait on its own rate limiter for most of its time (about
// 1.6 of 1.8 s on a no-op run with some forty objects read and applied).
const (
	clientQPS   = 50
	clientBurst = 300
)

// Configure sets what every kforge API client shares on rc: its user agent and its rates.
func Configure(rc *rest.Config, agent string) *rest.Config {
	rc.UserAgent = agent
	rc.QPS, rc.Burst = clientQPS, clientBurst
	return rc
}
