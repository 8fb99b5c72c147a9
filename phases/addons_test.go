package phases

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kforge/kforge/addons"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/internal/apiclient"
)

// runAddons runs the addon phase tree against cs and returns its progress lines, without
// the timing line.
func runAddons(t *testing.T, ctx context.Context, c *config.Cluster, cs kubernetes.Interface) ([]string, error) {
	t.Helper()
	var out bytes.Buffer
	d := newTestData(t, c, "cp1", &out, cs)
	w := &Workflow{Name: "test", Phases: []Phase{AddonPhase()}}
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
	c := testCluster(t, nil)
	cs := fake.NewClientset()

	lines, err := runAddons(t, t.Context(), c, cs)
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
		if len(mf) != 1 || mf[0].Manager != apiclient.FieldManager || mf[0].Operation != metav1.ManagedFieldsOperationApply {
			t.Errorf("%s: managed fields %+v, want one Apply entry by %q", name, mf, apiclient.FieldManager)
		}
	}

	// The second run applies the same objects and must change nothing the server stores:
	// not the content, not managedFields (whose time an effective apply would bump), not
	// resourceVersion.
	cs.ClearActions()
	lines, err = runAddons(t, t.Context(), c, cs)
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
		case k8stesting.GetAction:
		default:
			t.Errorf("unexpected %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
	// How each patch is sent (a forced apply by kforge) is apiclient's TestApplyOutcomes.
	if patches != 18 {
		t.Errorf("second run sent %d apply patches, want 18", patches)
	}
}

// TestAddonApplyRevertsDrift edits applied objects as another field manager would; the
// next run takes the fields back and reports the change.
func TestAddonApplyRevertsDrift(t *testing.T) {
	c := testCluster(t, nil)
	cs := fake.NewClientset()
	if _, err := runAddons(t, t.Context(), c, cs); err != nil {
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

	lines, err := runAddons(t, ctx, c, cs)
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

// TestAddonApplyError checks that the phase reports an apply's error once, under its
// path, still unwrapping to the API error. How Apply retries is tested in apiclient.
func TestAddonApplyError(t *testing.T) {
	c := testCluster(t, func(c *config.Cluster) {
		c.Addons.KubeProxy.Disabled, c.Addons.CNI.Plugin = true, config.CNINone
	})
	cs := fake.NewClientset()
	patches := 0
	cs.PrependReactor("patch", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		patches++
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "coredns", errors.New("RBAC"))
	})
	_, err := runAddons(t, t.Context(), c, cs)
	want := `phase "addon/coredns": applying ConfigMap kube-system/coredns: `
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %v, want it to contain %q", err, want)
	}
	if !apierrors.IsForbidden(err) {
		t.Errorf("error %v does not unwrap to the API error", err)
	}
	if patches != 1 {
		t.Errorf("%d patch calls on configmaps, want 1", patches)
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
			c := testCluster(t, tc.edit)
			cs := fake.NewClientset()
			lines, err := runAddons(t, t.Context(), c, cs)
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
	c := testCluster(t, nil)
	d := newTestData(t, c, "cp1", io.Discard, nil)
	d.Client = func() (kubernetes.Interface, error) { return nil, errors.New("admin.conf: no such file") }
	w := &Workflow{Name: "test", Phases: []Phase{AddonPhase()}}
	err := w.Run(t.Context(), d, "addon/coredns", nil)
	want := `phase "addon/coredns": building the API client: admin.conf: no such file`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

// TestApplyKnowsEveryAddonKind guards the kinds apiclient.Apply has a client for: every
// kind the add-ons build is one of them.
func TestApplyKnowsEveryAddonKind(t *testing.T) {
	c := testCluster(t, nil)
	for _, a := range addons.All() {
		objs, err := a.Objects(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if _, err := apiclient.Apply(t.Context(), fake.NewClientset(), o); err != nil {
				t.Errorf("%s: %v", addons.Describe(o), err)
			}
		}
	}
}
