package apiclient

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// TestPlanNode: a plan of a Node's labels and taints reads the Node, says what would be
// added and removed, and patches nothing; MutateNode then does exactly that.
func TestPlanNode(t *testing.T) {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "w1", Labels: map[string]string{"old": "x", "zone": "a", "keep": "1"}},
		Spec:       corev1.NodeSpec{Taints: []corev1.Taint{{Key: "gone", Effect: corev1.TaintEffectNoSchedule}}},
	}
	mutate := func(n *corev1.Node) bool {
		delete(n.Labels, "old")
		n.Labels["zone"] = "b"
		n.Labels["node-role.kubernetes.io/worker"] = ""
		n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}
		return true
	}
	want := NodeChange{
		Changed: true,
		Added:   []string{"label node-role.kubernetes.io/worker", "label zone=b", "taint dedicated=gpu:NoSchedule"},
		Removed: []string{"label old=x", "label zone=a", "taint gone:NoSchedule"},
	}
	cs := fake.NewClientset(node)
	got, err := PlanNode(t.Context(), cs, "w1", mutate)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
	for _, a := range cs.Actions() {
		if a.GetVerb() != "get" {
			t.Errorf("a plan sent %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
	got, err = MutateNode(t.Context(), cs, "w1", mutate)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mutation (-want +got):\n%s", diff)
	}
	n, err := cs.CoreV1().Nodes().Get(t.Context(), "w1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"zone": "b", "keep": "1", "node-role.kubernetes.io/worker": ""}, n.Labels); diff != "" {
		t.Errorf("labels after MutateNode (-want +got):\n%s", diff)
	}
	got, err = PlanNode(t.Context(), cs, "w1", func(*corev1.Node) bool { return false })
	if err != nil || got.Changed || got.Added != nil || got.Removed != nil {
		t.Errorf("plan of no change: %+v, %v", got, err)
	}
}
