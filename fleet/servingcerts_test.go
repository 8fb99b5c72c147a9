package fleet

import (
	"net"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kforge/kforge/internal/testutil"
)

// closedPort is a port on 127.0.0.1 where nothing listens.
func closedPort(t *testing.T) int32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return int32(port)
}

// A kubelet this machine cannot connect to at all stops the wait early, saying so, instead
// of holding up for the whole timeout.
func TestServingApprovalGivesUpOnUnreachable(t *testing.T) {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w1"}}
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
	n.Status.DaemonEndpoints.KubeletEndpoint.Port = closedPort(t)
	a := ServingApproval{
		Client: fake.NewClientset(n), CA: testutil.CAPEM(t),
		Interval: 10 * time.Millisecond, Timeout: time.Minute, GiveUpUnreachable: 100 * time.Millisecond,
	}
	start := time.Now()
	rep, err := a.Run(t.Context())
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Run took %s: it should give up after 100ms", took)
	}
	if err == nil || !strings.Contains(err.Error(), "gave up after 100ms without a connection to w1's kubelet") {
		t.Fatalf("Run error = %v, want it to give up on w1", err)
	}
	if len(rep.Kubelets) != 1 || !rep.Kubelets[0].Unreachable || rep.Kubelets[0].Verified || rep.Note == "" {
		t.Errorf("report %+v: want w1 unreachable, not verified, and a note", rep)
	}
}

func TestKubeletAddress(t *testing.T) {
	tests := []struct {
		name  string
		addrs []corev1.NodeAddress
		want  string
	}{
		{name: "InternalIP first", addrs: []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: "w1"}, {Type: corev1.NodeExternalIP, Address: "203.0.113.1"}, {Type: corev1.NodeInternalIP, Address: "10.0.0.1"}}, want: "10.0.0.1"},
		{name: "then ExternalIP", addrs: []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: "w1"}, {Type: corev1.NodeExternalIP, Address: "203.0.113.1"}}, want: "203.0.113.1"},
		{name: "then Hostname", addrs: []corev1.NodeAddress{{Type: corev1.NodeInternalDNS, Address: "w1.internal"}, {Type: corev1.NodeHostName, Address: "w1"}}, want: "w1"},
		{name: "none", addrs: []corev1.NodeAddress{{Type: corev1.NodeInternalDNS, Address: "w1.internal"}}, want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := &corev1.Node{Status: corev1.NodeStatus{Addresses: tc.addrs}}
			if got := kubeletAddress(n); got != tc.want {
				t.Errorf("kubeletAddress = %q, want %q", got, tc.want)
			}
		})
	}
}
