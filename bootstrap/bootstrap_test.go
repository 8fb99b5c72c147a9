package bootstrap

import (
	"bytes"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/kforge/kforge/internal/testutil"
)

// TestRBACGolden pins every RBAC object joining relies on: names, subjects and rules are
// the contract a stock kubeadm join expects.
func TestRBACGolden(t *testing.T) {
	var objs []runtime.Object
	objs = append(objs, ClusterAdminsBinding())
	objs = append(objs, KubeadmConfigRBAC()...)
	objs = append(objs, KubeletConfigRBAC()...)
	objs = append(objs, NodeJoinRBAC()...)
	objs = append(objs, ClusterInfoRBAC()...)
	objs = append(objs, CertsRBAC()...)
	var buf bytes.Buffer
	for _, o := range objs {
		out, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		buf.WriteString("---\n")
		buf.Write(out)
	}
	testutil.Golden(t, "rbac.yaml", buf.Bytes())
}
