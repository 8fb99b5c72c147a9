package apiclient

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kforge/kforge/internal/wait"
)

// fastBackoff keeps retry tests quick while still exercising every attempt.
var fastBackoff = wait.Backoff{Steps: 4, Initial: time.Millisecond, Max: 2 * time.Millisecond}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

var gr = schema.GroupResource{Resource: "configmaps"}

// failN makes the first n calls of verb on resource fail with err.
func failN(cs *fake.Clientset, verb, resource string, n int, err error) *int {
	calls := 0
	cs.PrependReactor(verb, resource, func(k8stesting.Action) (bool, runtime.Object, error) {
		calls++
		if calls <= n {
			return true, nil, err
		}
		return false, nil, nil
	})
	return &calls
}

func cm(data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-public", Name: "cluster-info"}, Data: data}
}

func TestEnsureConfigMap(t *testing.T) {
	tests := []struct {
		name     string
		existing []runtime.Object
		want     *corev1.ConfigMap
		inject   func(cs *fake.Clientset)
		wantOut  Outcome
		wantData map[string]string
		wantErr  string
	}{
		{
			name:     "create",
			want:     cm(map[string]string{"kubeconfig": "a"}),
			wantOut:  Created,
			wantData: map[string]string{"kubeconfig": "a"},
		},
		{
			name:     "unchanged",
			existing: []runtime.Object{cm(map[string]string{"kubeconfig": "a", "jws-kubeconfig-abcdef": "sig"})},
			want:     cm(map[string]string{"kubeconfig": "a"}),
			wantOut:  Unchanged,
			wantData: map[string]string{"kubeconfig": "a", "jws-kubeconfig-abcdef": "sig"},
		},
		{
			name:     "update keeps other keys",
			existing: []runtime.Object{cm(map[string]string{"kubeconfig": "old", "jws-kubeconfig-abcdef": "sig"})},
			want:     cm(map[string]string{"kubeconfig": "new"}),
			wantOut:  Updated,
			wantData: map[string]string{"kubeconfig": "new", "jws-kubeconfig-abcdef": "sig"},
		},
		{
			name: "create races another writer: AlreadyExists, then update",
			want: cm(map[string]string{"kubeconfig": "new"}),
			inject: func(cs *fake.Clientset) {
				first := true
				cs.PrependReactor("create", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
					if !first {
						return false, nil, nil
					}
					first = false
					if err := cs.Tracker().Add(cm(map[string]string{"kubeconfig": "theirs", "other": "x"})); err != nil {
						return true, nil, err
					}
					return true, nil, apierrors.NewAlreadyExists(gr, "cluster-info")
				})
			},
			wantOut:  Updated,
			wantData: map[string]string{"kubeconfig": "new", "other": "x"},
		},
		{
			name:     "update conflicts twice",
			existing: []runtime.Object{cm(map[string]string{"kubeconfig": "old"})},
			want:     cm(map[string]string{"kubeconfig": "new"}),
			inject: func(cs *fake.Clientset) {
				failN(cs, "update", "configmaps", 2, apierrors.NewConflict(gr, "cluster-info", errors.New("changed")))
			},
			wantOut:  Updated,
			wantData: map[string]string{"kubeconfig": "new"},
		},
		{
			name: "server and client timeouts",
			want: cm(map[string]string{"kubeconfig": "a"}),
			inject: func(cs *fake.Clientset) {
				failN(cs, "get", "configmaps", 1, apierrors.NewServerTimeout(gr, "get", 1))
				failN(cs, "create", "configmaps", 1, &url.Error{Op: "Post", URL: "https://x", Err: timeoutErr{}})
			},
			wantOut:  Created,
			wantData: map[string]string{"kubeconfig": "a"},
		},
		{
			name: "persistent timeouts give up",
			want: cm(map[string]string{"kubeconfig": "a"}),
			inject: func(cs *fake.Clientset) {
				failN(cs, "get", "configmaps", 100, apierrors.NewServiceUnavailable("etcd leader changed"))
			},
			wantErr: "gave up after 4 attempts: reading ConfigMap kube-public/cluster-info: etcd leader changed",
		},
		{
			name: "forbidden is not retried",
			want: cm(map[string]string{"kubeconfig": "a"}),
			inject: func(cs *fake.Clientset) {
				failN(cs, "create", "configmaps", 100, apierrors.NewForbidden(gr, "cluster-info", errors.New("no")))
			},
			wantErr: "creating ConfigMap kube-public/cluster-info: configmaps \"cluster-info\" is forbidden: no",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cs := fake.NewClientset(tc.existing...)
			if tc.inject != nil {
				tc.inject(cs)
			}
			_, out, err := ensureWith(context.Background(), fastBackoff, cs, tc.want)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out != tc.wantOut {
				t.Errorf("outcome = %s, want %s", out, tc.wantOut)
			}
			got, err := cs.CoreV1().ConfigMaps("kube-public").Get(context.Background(), "cluster-info", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantData, got.Data); diff != "" {
				t.Errorf("data (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEnsureForbiddenIsOneAttempt(t *testing.T) {
	cs := fake.NewClientset()
	calls := failN(cs, "create", "configmaps", 100, apierrors.NewForbidden(gr, "cluster-info", errors.New("no")))
	if _, _, err := ensureWith(context.Background(), fastBackoff, cs, cm(nil)); err == nil {
		t.Fatal("Ensure succeeded")
	}
	if *calls != 1 {
		t.Errorf("create called %d times, want 1", *calls)
	}
}

func TestEnsureStopsOnCancel(t *testing.T) {
	b := wait.Backoff{Steps: 100, Initial: 50 * time.Millisecond, Max: 50 * time.Millisecond}
	cs := fake.NewClientset()
	failN(cs, "get", "configmaps", 1000, apierrors.NewTooManyRequests("slow down", 1))
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := ensureWith(ctx, b, cs, cm(nil))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "slow down") {
		t.Fatalf("error = %v, want the deadline and the last error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Ensure took %s after its context ended", d)
	}
}

func TestEnsureSecretAndRBAC(t *testing.T) {
	ctx := context.Background()
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "s", Labels: map[string]string{"a": "1"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Secret", Name: "owner", UID: "u2"}}},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{"new": []byte("x")},
	}
	existing := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "s", Labels: map[string]string{"b": "2"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Secret", Name: "old", UID: "u1"}}},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{"stale": []byte("y")},
	}
	roleRef := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"}
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "b"}, RoleRef: roleRef,
		Subjects: []rbacv1.Subject{{Kind: "Group", APIGroup: rbacv1.GroupName, Name: "g"}}}
	otherRef := crb.DeepCopy()
	otherRef.RoleRef.Name = "view"
	cs := fake.NewClientset(existing, otherRef)

	got, out, err := Ensure(ctx, cs, sec)
	if err != nil || out != Updated {
		t.Fatalf("Ensure secret = %s, %v", out, err)
	}
	wantMeta := metav1.ObjectMeta{Namespace: "kube-system", Name: "s", Labels: map[string]string{"a": "1", "b": "2"},
		OwnerReferences: sec.OwnerReferences}
	gs := got.(*corev1.Secret)
	if diff := cmp.Diff(wantMeta, gs.ObjectMeta, cmpIgnoreServerFields()); diff != "" {
		t.Errorf("metadata (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(sec.Data, gs.Data); diff != "" {
		t.Errorf("data replaced (-want +got):\n%s", diff)
	}
	if _, out, err := Ensure(ctx, cs, sec); err != nil || out != Unchanged {
		t.Errorf("second Ensure = %s, %v; want unchanged", out, err)
	}

	wrongType := sec.DeepCopy()
	wrongType.Type = "bootstrap.kubernetes.io/token"
	if _, _, err := Ensure(ctx, cs, wrongType); err == nil || !strings.Contains(err.Error(), "type of a Secret cannot change") {
		t.Errorf("changing the type: error = %v", err)
	}
	if _, _, err := Ensure(ctx, cs, crb); err == nil || !strings.Contains(err.Error(), "refers to ClusterRole view, want ClusterRole cluster-admin") {
		t.Errorf("changing the roleRef: error = %v", err)
	}
	if _, _, err := Ensure(ctx, cs, &corev1.Pod{}); err == nil {
		t.Error("Ensure accepted a Pod")
	}
}

func cmpIgnoreServerFields() cmp.Option {
	return cmp.FilterPath(func(p cmp.Path) bool {
		return p.String() == "ResourceVersion" || p.String() == "ManagedFields"
	}, cmp.Ignore())
}

func TestIsTransient(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{err: apierrors.NewServerTimeout(gr, "get", 1), want: true},
		{err: apierrors.NewTimeoutError("slow", 1), want: true},
		{err: apierrors.NewTooManyRequests("slow", 1), want: true},
		{err: apierrors.NewServiceUnavailable("down"), want: true},
		{err: apierrors.NewInternalError(errors.New("etcd")), want: true},
		{err: &url.Error{Op: "Get", URL: "https://x", Err: timeoutErr{}}, want: true},
		{err: &url.Error{Op: "Get", URL: "https://x", Err: &net.OpError{Op: "dial", Net: "tcp",
			Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}, want: true},
		{err: apierrors.NewForbidden(gr, "x", errors.New("no"))},
		{err: apierrors.NewConflict(gr, "x", errors.New("no"))},
		{err: apierrors.NewNotFound(gr, "x")},
		{err: errors.New("boom")},
		{err: nil},
	}
	for _, tc := range tests {
		if got := IsTransient(tc.err); got != tc.want {
			t.Errorf("IsTransient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		obj  runtime.Object
		want string
	}{
		{obj: cm(nil), want: "ConfigMap kube-public/cluster-info"},
		{obj: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cp1"}}, want: "Node cp1"},
		{obj: &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "kubeadm:cluster-admins"}}, want: "ClusterRoleBinding kubeadm:cluster-admins"},
		{obj: &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status"}}, want: "Status"},
		{obj: &runtime.Unknown{}, want: "*runtime.Unknown"},
	}
	for _, tc := range tests {
		if got := Describe(tc.obj); got != tc.want {
			t.Errorf("Describe(%T) = %q, want %q", tc.obj, got, tc.want)
		}
	}
}
