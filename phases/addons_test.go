package phases

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kforge/kforge/addons"
	"github.com/kforge/kforge/config"
)

// fastBackoff keeps retry tests quick while still exercising every attempt.
var fastBackoff = applyBackoff{initial: time.Millisecond, max: 2 * time.Millisecond, attempts: 3}

// addonCluster is the default configuration with one control-plane host.
func addonCluster(t *testing.T, edit func(c *config.Cluster)) *config.Cluster {
	t.Helper()
	c := &config.Cluster{Hosts: []config.Host{{Name: "cp1", Address: "10.77.0.11", Roles: []string{config.RoleControlPlane}}}}
	if edit != nil {
		edit(c)
	}
	config.SetDefaults(c)
	if err := c.Validate(); err != nil {
		t.Fatalf("test configuration is invalid: %v", err)
	}
	return c
}

// runAddons runs the addon phase tree against cs and returns its progress lines, without
// the timing line.
func runAddons(t *testing.T, ctx context.Context, c *config.Cluster, cs kubernetes.Interface, b applyBackoff) ([]string, error) {
	t.Helper()
	var out bytes.Buffer
	d := &Data{
		Cluster: c,
		Out:     NewPrinter(&out),
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Client:  func() (kubernetes.Interface, error) { return cs, nil },
	}
	w := &Workflow{Name: "test", Phases: []Phase{addonPhase(b)}}
	err := w.Run(ctx, d, "", nil)
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if l != "" && !strings.Contains(l, "done in") {
			lines = append(lines, l)
		}
	}
	return lines, err
}

// stored returns every add-on object as the fake API server stores it, as generic maps
// keyed by "Kind namespace/name". Objects that are not stored are left out.
func stored(t *testing.T, c *config.Cluster, cs *fake.Clientset) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, a := range addons.All() {
		objs, err := a.Objects(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			gvr, _ := meta.UnsafeGuessKindToResource(o.GetObjectKind().GroupVersionKind())
			got, err := cs.Tracker().Get(gvr, o.GetNamespace(), o.GetName())
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				t.Fatalf("reading %s: %v", addons.Describe(o), err)
			}
			m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(got)
			if err != nil {
				t.Fatal(err)
			}
			out[addons.Describe(o)] = m
		}
	}
	return out
}

func TestAddonPhaseTree(t *testing.T) {
	w := &Workflow{Name: "init", Phases: []Phase{AddonPhase()}}
	want := []string{"addon", "addon/coredns", "addon/kube-proxy", "addon/flannel"}
	if diff := cmp.Diff(want, w.Paths()); diff != "" {
		t.Errorf("phase paths (-want +got):\n%s", diff)
	}
}

func TestAddonApplyConverges(t *testing.T) {
	c := addonCluster(t, nil)
	cs := fake.NewClientset()

	lines, err := runAddons(t, t.Context(), c, cs, fastBackoff)
	if err != nil {
		t.Fatalf("first run: %v", err)
	}
	want := []string{
		"[addon] applied CoreDNS (6 objects)",
		"[addon] applied kube-proxy (6 objects)",
		"[addon] applied flannel (6 objects)",
	}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("first run output (-want +got):\n%s", diff)
	}
	first := stored(t, c, cs)
	if len(first) != 18 {
		t.Fatalf("%d objects stored after the first run, want 18", len(first))
	}
	for name, m := range first {
		var om metav1.ObjectMeta
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m["metadata"].(map[string]any), &om); err != nil {
			t.Fatal(err)
		}
		mf := om.ManagedFields
		if len(mf) != 1 || mf[0].Manager != FieldManager || mf[0].Operation != metav1.ManagedFieldsOperationApply {
			t.Errorf("%s: managed fields %+v, want one Apply entry by %q", name, mf, FieldManager)
		}
	}

	// The second run applies the same objects and must change nothing the server stores:
	// not the content, not managedFields (whose time an effective apply would bump), not
	// resourceVersion.
	cs.ClearActions()
	lines, err = runAddons(t, t.Context(), c, cs, fastBackoff)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	want = []string{
		"[addon] using existing CoreDNS (6 objects unchanged)",
		"[addon] using existing kube-proxy (6 objects unchanged)",
		"[addon] using existing flannel (6 objects unchanged)",
	}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("second run output (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(first, stored(t, c, cs)); diff != "" {
		t.Errorf("the second apply changed stored objects (-first +second):\n%s", diff)
	}
	patches := 0
	for _, a := range cs.Actions() {
		switch a := a.(type) {
		case k8stesting.PatchAction:
			patches++
			pa := a.(k8stesting.PatchActionImpl)
			if pa.GetPatchType() != types.ApplyPatchType || pa.PatchOptions.FieldManager != FieldManager ||
				pa.PatchOptions.Force == nil || !*pa.PatchOptions.Force {
				t.Errorf("patch of %s %s: type %s, options %+v; want a forced apply by %q",
					pa.GetResource().Resource, pa.GetName(), pa.GetPatchType(), pa.PatchOptions, FieldManager)
			}
		case k8stesting.GetAction:
		default:
			t.Errorf("unexpected %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
	if patches != 18 {
		t.Errorf("second run sent %d apply patches, want 18", patches)
	}
}

// TestAddonApplyRevertsDrift edits applied objects as another field manager would; the
// next run takes the fields back and reports the change.
func TestAddonApplyRevertsDrift(t *testing.T) {
	c := addonCluster(t, nil)
	cs := fake.NewClientset()
	if _, err := runAddons(t, t.Context(), c, cs, fastBackoff); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	cm, err := cs.CoreV1().ConfigMaps("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := cm.Data["Corefile"]
	cm.Data["Corefile"] = ".:53 {\n    whoami\n}\n"
	if _, err := cs.CoreV1().ConfigMaps("kube-system").Update(ctx, cm, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}

	lines, err := runAddons(t, ctx, c, cs, fastBackoff)
	if err != nil {
		t.Fatal(err)
	}
	wantLines := []string{
		"[addon] applied CoreDNS (6 objects)",
		"[addon] using existing kube-proxy (6 objects unchanged)",
		"[addon] using existing flannel (6 objects unchanged)",
	}
	if diff := cmp.Diff(wantLines, lines); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
	cm, err = cs.CoreV1().ConfigMaps("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, cm.Data["Corefile"]); diff != "" {
		t.Errorf("Corefile was not restored (-want +got):\n%s", diff)
	}
}

func connRefused() error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
}

// failFirst makes the first n calls of verb on resource fail with err, and counts calls.
func failFirst(cs *fake.Clientset, verb, resource string, n int, err error) *int {
	calls := new(int)
	cs.PrependReactor(verb, resource, func(k8stesting.Action) (bool, runtime.Object, error) {
		*calls++
		if *calls <= n {
			return true, nil, err
		}
		return false, nil, nil
	})
	return calls
}

func TestAddonApplyRetries(t *testing.T) {
	gr := schema.GroupResource{Resource: "configmaps"}
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
			err: apierrors.NewServiceUnavailable("starting"), wantCalls: fastBackoff.attempts,
			wantErr: `phase "addon/coredns": applying ConfigMap kube-system/coredns: giving up after 3 attempts`,
			wantIs:  apierrors.IsServiceUnavailable,
		},
		{
			name: "forbidden is not retried", verb: "patch", failures: 99,
			err: apierrors.NewForbidden(gr, "coredns", errors.New("RBAC")), wantCalls: 1,
			wantErr: `phase "addon/coredns": applying ConfigMap kube-system/coredns: `,
			wantIs:  apierrors.IsForbidden,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := addonCluster(t, func(c *config.Cluster) {
				c.Addons.KubeProxy.Disabled, c.Addons.CNI.Plugin = true, config.CNINone
			})
			cs := fake.NewClientset()
			calls := failFirst(cs, tc.verb, "configmaps", tc.failures, tc.err)
			_, err := runAddons(t, t.Context(), c, cs, fastBackoff)
			if *calls != tc.wantCalls {
				t.Errorf("%d %s calls on configmaps, want %d", *calls, tc.verb, tc.wantCalls)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("run failed: %v", err)
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

func TestAddonApplyStopsOnCancel(t *testing.T) {
	c := addonCluster(t, nil)
	cs := fake.NewClientset()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cs.PrependReactor("patch", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
		cancel() // Ctrl-C while the server is still unavailable
		return true, nil, apierrors.NewServiceUnavailable("starting")
	})
	slow := applyBackoff{initial: time.Hour, max: time.Hour, attempts: 5}

	done := make(chan error, 1)
	go func() {
		_, err := runAddons(t, ctx, c, cs, slow)
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

func TestAddonSkips(t *testing.T) {
	tests := []struct {
		name      string
		edit      func(c *config.Cluster)
		wantLines []string
		absent    []string // "Kind namespace/name" that must not be stored
	}{
		{
			name: "dns disabled",
			edit: func(c *config.Cluster) { c.Addons.DNS.Disabled = true },
			wantLines: []string{
				"[addon] skipped: addons.dns.disabled is true",
				"[addon] applied kube-proxy (6 objects)",
				"[addon] applied flannel (6 objects)",
			},
			absent: []string{"Deployment kube-system/coredns", "Service kube-system/kube-dns"},
		},
		{
			name: "kube-proxy disabled",
			edit: func(c *config.Cluster) { c.Addons.KubeProxy.Disabled = true },
			wantLines: []string{
				"[addon] applied CoreDNS (6 objects)",
				"[addon] skipped: addons.kube_proxy.disabled is true",
				"[addon] applied flannel (6 objects)",
			},
			absent: []string{"DaemonSet kube-system/kube-proxy", "ConfigMap kube-system/kube-proxy"},
		},
		{
			name: "no CNI",
			edit: func(c *config.Cluster) { c.Addons.CNI.Plugin = config.CNINone },
			wantLines: []string{
				"[addon] applied CoreDNS (6 objects)",
				"[addon] applied kube-proxy (6 objects)",
				`[addon] skipped: addons.cni.plugin is "none"`,
			},
			absent: []string{"Namespace kube-flannel", "DaemonSet kube-flannel/kube-flannel-ds"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := addonCluster(t, tc.edit)
			cs := fake.NewClientset()
			lines, err := runAddons(t, t.Context(), c, cs, fastBackoff)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantLines, lines); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
			got := stored(t, c, cs)
			for _, name := range tc.absent {
				if _, ok := got[name]; ok {
					t.Errorf("%s was applied", name)
				}
			}
			if len(got) != 12 {
				t.Errorf("%d objects stored, want 12", len(got))
			}
		})
	}
}

func TestAddonClientError(t *testing.T) {
	c := addonCluster(t, nil)
	d := &Data{
		Cluster: c,
		Out:     NewPrinter(io.Discard),
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Client:  func() (kubernetes.Interface, error) { return nil, errors.New("admin.conf: no such file") },
	}
	w := &Workflow{Name: "test", Phases: []Phase{addonPhase(fastBackoff)}}
	err := w.Run(t.Context(), d, "addon/coredns", nil)
	want := `phase "addon/coredns": building the API client: admin.conf: no such file`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

// TestApplyObjectKnowsEveryKind guards the type switch in applyObject: every kind the
// add-ons build has a client.
func TestApplyObjectKnowsEveryKind(t *testing.T) {
	c := addonCluster(t, nil)
	for _, a := range addons.All() {
		objs, err := a.Objects(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if _, err := applyObject(t.Context(), fake.NewClientset(), o, fastBackoff); err != nil {
				t.Errorf("%s: %v", addons.Describe(o), err)
			}
		}
	}
	if _, err := applyObject(t.Context(), fake.NewClientset(), &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
	}, fastBackoff); err == nil || !strings.Contains(err.Error(), "no client for *v1.Pod") {
		t.Errorf("applying a Pod: error = %v, want one about the missing client", err)
	}
}
