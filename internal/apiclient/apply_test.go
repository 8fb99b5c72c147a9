package apiclient

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/kforge/kforge/internal/wait"
)

// corefile is an add-on ConfigMap as the addons package builds it: TypeMeta set.
func corefile(data string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "coredns"},
		Data:       map[string]string{"Corefile": data},
	}
}

func TestApplyOutcomes(t *testing.T) {
	ctx := t.Context()
	deploy := func(replicas int32) *appsv1.Deployment {
		// No TypeMeta: Apply finds the kind in the client scheme.
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "coredns"},
			Spec:       appsv1.DeploymentSpec{Replicas: ptr.To(replicas)},
		}
	}
	cs := fake.NewClientset()
	steps := []struct {
		name   string
		before func(t *testing.T) // what other writers do first
		obj    Object
		want   Outcome
	}{
		{name: "create", obj: corefile("a"), want: Created},
		{name: "same again", obj: corefile("a"), want: Unchanged},
		{name: "new data", obj: corefile("b"), want: Updated},
		{name: "deployment without TypeMeta", obj: deploy(2), want: Created},
		{
			name: "a controller wrote status in between",
			before: func(t *testing.T) {
				d, err := cs.AppsV1().Deployments("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				d.Status.ReadyReplicas = 2
				if _, err := cs.AppsV1().Deployments("kube-system").UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			},
			obj: deploy(2), want: Unchanged,
		},
		{name: "scaled", obj: deploy(3), want: Updated},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before(t)
		}
		got, err := Apply(ctx, cs, s.obj)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got.Outcome != s.want {
			t.Errorf("%s: outcome %s, want %s", s.name, got.Outcome, s.want)
		}
	}
	cm, err := cs.CoreV1().ConfigMaps("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"Corefile": "b"}, cm.Data); diff != "" {
		t.Errorf("stored data (-want +got):\n%s", diff)
	}
	mf := cm.ManagedFields
	if len(mf) != 1 || mf[0].Manager != FieldManager || mf[0].Operation != metav1.ManagedFieldsOperationApply {
		t.Errorf("managed fields %+v, want one Apply entry by %q", mf, FieldManager)
	}
	for _, a := range cs.Actions() {
		pa, ok := a.(k8stesting.PatchActionImpl)
		if !ok {
			continue
		}
		if pa.GetPatchType() != types.ApplyPatchType || pa.PatchOptions.FieldManager != FieldManager ||
			pa.PatchOptions.Force == nil || !*pa.PatchOptions.Force {
			t.Errorf("patch of %s %s: type %s, options %+v; want a forced apply by %q",
				pa.GetResource().Resource, pa.GetName(), pa.GetPatchType(), pa.PatchOptions, FieldManager)
		}
	}
}

func connRefused() error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
}

func TestApplyRetries(t *testing.T) {
	threeTries := wait.Backoff{Steps: 3, Initial: time.Millisecond, Max: 2 * time.Millisecond}
	tests := []struct {
		name      string
		verb      string
		failures  int
		err       error
		wantCalls int
		wantErr   string
		wantIs    func(error) bool
	}{
		{name: "service unavailable", verb: "patch", failures: 2, err: apierrors.NewServiceUnavailable("starting"), wantCalls: 3},
		{name: "server timeout", verb: "patch", failures: 1, err: apierrors.NewServerTimeout(gr, "patch", 1), wantCalls: 2},
		{name: "too many requests", verb: "patch", failures: 1, err: apierrors.NewTooManyRequests("slow down", 1), wantCalls: 2},
		{name: "internal error", verb: "patch", failures: 1, err: apierrors.NewInternalError(errors.New("etcd leader changed")), wantCalls: 2},
		{name: "conflict", verb: "patch", failures: 1, err: apierrors.NewConflict(gr, "coredns", errors.New("modified")), wantCalls: 2},
		{name: "connection refused on read", verb: "get", failures: 2, err: connRefused(), wantCalls: 3},
		{
			name: "gives up after the last attempt", verb: "patch", failures: 99,
			err: apierrors.NewServiceUnavailable("starting"), wantCalls: threeTries.Steps,
			wantErr: `applying ConfigMap kube-system/coredns: gave up after 3 attempts`,
			wantIs:  apierrors.IsServiceUnavailable,
		},
		{
			name: "forbidden is not retried", verb: "patch", failures: 99,
			err: apierrors.NewForbidden(gr, "coredns", errors.New("RBAC")), wantCalls: 1,
			wantErr: `applying ConfigMap kube-system/coredns: `,
			wantIs:  apierrors.IsForbidden,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cs := fake.NewClientset()
			calls := failN(cs, tc.verb, "configmaps", tc.failures, tc.err)
			_, err := applyWith(t.Context(), threeTries, cs, corefile("a"), false)
			if *calls != tc.wantCalls {
				t.Errorf("%d %s calls on configmaps, want %d", *calls, tc.verb, tc.wantCalls)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("apply failed: %v", err)
				}
				if _, err := cs.CoreV1().ConfigMaps("kube-system").Get(t.Context(), "coredns", metav1.GetOptions{}); err != nil {
					t.Errorf("the Corefile ConfigMap was not applied: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
			}
			if !tc.wantIs(err) {
				t.Errorf("error %v does not unwrap to the API error", err)
			}
		})
	}
}

func TestApplyStopsOnCancel(t *testing.T) {
	cs := fake.NewClientset()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cs.PrependReactor("patch", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
		cancel() // Ctrl-C while the server is still unavailable
		return true, nil, apierrors.NewServiceUnavailable("starting")
	})
	slow := wait.Backoff{Steps: 5, Initial: time.Hour, Max: time.Hour}

	done := make(chan error, 1)
	go func() {
		_, err := applyWith(ctx, slow, cs, corefile("a"), false)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the apply kept waiting after its context was cancelled")
	}
}

func TestApplyUnknownKind(t *testing.T) {
	_, err := Apply(t.Context(), fake.NewClientset(), &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
	})
	if want := "applying Pod default/p: no client for *v1.Pod"; err == nil || err.Error() != want {
		t.Errorf("applying a Pod: error = %v, want %q", err, want)
	}
}

// TestApplyReportsFields: an update says which fields it changed, from the objects as the
// server had them before and after.
func TestApplyReportsFields(t *testing.T) {
	cs := fake.NewClientset()
	if _, err := Apply(t.Context(), cs, corefile("a")); err != nil {
		t.Fatal(err)
	}
	got, err := Apply(t.Context(), cs, corefile("b"))
	if err != nil {
		t.Fatal(err)
	}
	want := Change{Object: "ConfigMap kube-system/coredns", Outcome: Updated, Fields: []FieldChange{{Path: "data.Corefile", Old: "a", New: "b"}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("change (-want +got):\n%s", diff)
	}
}

// dryRunApplier answers server-side apply patches as a dry run would, from a copy of the
// stored object with edit applied, and fails every write that is not a dry run; the fake
// clientset itself would store a dry-run patch.
func dryRunApplier(t *testing.T, cs *fake.Clientset, edit func(runtime.Object)) *int {
	t.Helper()
	dryRuns := 0
	cs.PrependReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		switch a.GetVerb() {
		case "get", "list", "watch":
			return false, nil, nil
		}
		p, ok := a.(k8stesting.PatchActionImpl)
		if !ok || p.PatchType != types.ApplyPatchType || !cmp.Equal(p.PatchOptions.DryRun, []string{metav1.DryRunAll}) ||
			p.PatchOptions.FieldManager != FieldManager || p.PatchOptions.Force == nil || !*p.PatchOptions.Force {
			t.Errorf("a write that is not a forced dry-run apply by %q: %s %s %+v", FieldManager, a.GetVerb(), a.GetResource().Resource, a)
			return true, nil, errors.New("write during a plan")
		}
		dryRuns++
		cur, err := cs.Tracker().Get(p.GetResource(), p.GetNamespace(), p.Name)
		if err != nil {
			return true, nil, err
		}
		cur = cur.DeepCopyObject()
		edit(cur)
		cur.(metav1.Object).SetResourceVersion("999") // the server bumps it; not a change
		return true, cur, nil
	})
	return &dryRuns
}

// TestPlanApply: a plan sends a forced dry-run apply, compares the live object with what
// the server answers, and writes nothing.
func TestPlanApply(t *testing.T) {
	deploy := func(replicas int32) *appsv1.Deployment {
		return &appsv1.Deployment{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "coredns"},
			Spec:       appsv1.DeploymentSpec{Replicas: ptr.To(replicas)},
		}
	}
	t.Run("update", func(t *testing.T) {
		cs := fake.NewClientset(deploy(2))
		dryRuns := dryRunApplier(t, cs, func(o runtime.Object) { o.(*appsv1.Deployment).Spec.Replicas = ptr.To[int32](3) })
		got, err := PlanApply(t.Context(), cs, deploy(3))
		if err != nil {
			t.Fatal(err)
		}
		want := Change{Object: "Deployment kube-system/coredns", Outcome: Updated, Fields: []FieldChange{{Path: "spec.replicas", Old: int64(2), New: int64(3)}}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("change (-want +got):\n%s", diff)
		}
		if *dryRuns != 1 {
			t.Errorf("%d dry-run applies, want 1", *dryRuns)
		}
		live, err := cs.AppsV1().Deployments("kube-system").Get(t.Context(), "coredns", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if *live.Spec.Replicas != 2 {
			t.Errorf("the plan changed the stored Deployment: replicas %d", *live.Spec.Replicas)
		}
	})
	t.Run("unchanged", func(t *testing.T) {
		cs := fake.NewClientset(deploy(2))
		dryRunApplier(t, cs, func(runtime.Object) {})
		got, err := PlanApply(t.Context(), cs, deploy(2))
		if err != nil {
			t.Fatal(err)
		}
		if got.Outcome != Unchanged || len(got.Fields) != 0 {
			t.Errorf("change %+v, want unchanged", got)
		}
	})
	t.Run("create in a namespace the plan creates", func(t *testing.T) {
		cs := fake.NewClientset()
		dryRuns := 0
		cs.PrependReactor("patch", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
			dryRuns++
			if p := a.(k8stesting.PatchActionImpl); !cmp.Equal(p.PatchOptions.DryRun, []string{metav1.DryRunAll}) {
				t.Errorf("patch without DryRun: %+v", p.PatchOptions)
			}
			return true, nil, apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "kube-flannel")
		})
		got, err := PlanApply(t.Context(), cs, corefile("a"))
		if err != nil {
			t.Fatal(err)
		}
		if got.Outcome != Created || dryRuns != 1 {
			t.Errorf("change %+v after %d dry runs, want created after 1", got, dryRuns)
		}
		if _, err := cs.CoreV1().ConfigMaps("kube-system").Get(t.Context(), "coredns", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("the plan created the ConfigMap: %v", err)
		}
	})
	t.Run("a refusal is an error", func(t *testing.T) {
		cs := fake.NewClientset(deploy(2))
		cs.PrependReactor("patch", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewInvalid(schema.GroupKind{Group: "apps", Kind: "Deployment"}, "coredns", nil)
		})
		if _, err := PlanApply(t.Context(), cs, deploy(3)); err == nil || !strings.Contains(err.Error(), "planning the apply of Deployment kube-system/coredns") {
			t.Errorf("error = %v, want the invalid object named", err)
		}
	})
}

func TestApplyObjects(t *testing.T) {
	cs := fake.NewClientset()
	objs := []*corev1.ConfigMap{corefile("a")}
	changes, err := ApplyObjects(t.Context(), cs, objs, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := ApplySummary("CoreDNS", changes); got != "applied CoreDNS (1 objects)" {
		t.Errorf("first summary %q", got)
	}
	changes, err = ApplyObjects(t.Context(), cs, objs, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := ApplySummary("CoreDNS", changes); got != "using existing CoreDNS (1 objects unchanged)" {
		t.Errorf("second summary %q", got)
	}
}
