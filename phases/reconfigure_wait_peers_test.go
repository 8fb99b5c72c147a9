package phases

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kforge/kforge/manifests"
)

func TestPeerAPIServers(t *testing.T) {
	pod := func(node, endpoint string) corev1.Pod {
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "kube-apiserver-" + node}, Spec: corev1.PodSpec{NodeName: node}}
		if endpoint != "" {
			p.Annotations = map[string]string{manifests.APIServerEndpointAnnotation: endpoint}
		}
		return p
	}
	got := peerAPIServers([]corev1.Pod{
		pod("cp3", "10.0.0.3:6443"),
		pod("cp1", "10.0.0.1:6443"),
		pod("cp2", "10.0.0.2:6443"),
		pod("odd", ""),
	}, "cp1")
	want := []peerAPIServer{{"cp2", "10.0.0.2:6443"}, {"cp3", "10.0.0.3:6443"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("peerAPIServers = %v, want %v (self and the pod without an endpoint left out, by node)", got, want)
	}
}
