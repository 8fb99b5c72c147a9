package phases

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kforge/kforge/etcd"
)

// DryRunClient is a fake clientset that reports every write it receives, for the plan of a
// dry run. Reads see what earlier writes of the same run created.
// The node itself is there, as the kubelet would have registered it.
func DryRunClient(say func(format string, args ...any), nodeName string) kubernetes.Interface {
	c := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}})
	c.PrependReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		switch a.GetVerb() {
		case "create", "update", "patch", "delete":
			ns := a.GetNamespace()
			if ns != "" {
				ns += "/"
			}
			name := ""
			switch act := a.(type) {
			case interface{ GetName() string }:
				name = act.GetName()
			case interface{ GetObject() runtime.Object }:
				if m, err := meta.Accessor(act.GetObject()); err == nil {
					name = m.GetName()
				}
			}
			say("would %s %s %s%s", a.GetVerb(), a.GetResource().Resource, ns, name)
		}
		return false, nil, nil
	})
	return c
}

// DryRunEtcd connects to an etcd.DryRun with one healthy started member per endpoint,
// which reports membership changes through say instead of making them.
func DryRunEtcd(say func(format string, args ...any)) func(d *Data, endpoints []string) (etcd.Cluster, error) {
	return func(_ *Data, endpoints []string) (etcd.Cluster, error) {
		return etcd.NewDryRun(say, endpoints), nil
	}
}
