package fleet

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kforge/kforge/host"
	"github.com/kforge/kforge/internal/wait"
)

// listNodesTimeout bounds how long Observe waits for a cluster whose admin.conf it found.
const listNodesTimeout = 20 * time.Second

// Observe finds out what the cluster already holds: it reads admin.conf from the first
// reachable control-plane host of the file that has one and lists the cluster's Nodes
// with it, then asks every reachable host that has a Node whether it still holds its
// kubelet.conf. No admin.conf anywhere means there is no cluster yet.
func (f *Fleet) Observe(ctx context.Context) (Observed, error) {
	o := Observed{Unreachable: map[string]bool{}, Nodes: map[string]Node{}, Stale: map[string]bool{}}
	defer func() {
		f.mu.Lock()
		f.observed = o
		f.mu.Unlock()
	}()
	for _, h := range f.c.Hosts {
		if f.conn(h.Name) == nil {
			o.Unreachable[h.Name] = true
		}
	}
	nodes, err := f.findCluster(ctx)
	if err != nil {
		return o, err
	}
	if nodes == nil {
		return o, nil
	}
	o.Cluster = true
	for i := range nodes {
		n := &nodes[i]
		_, cp := n.Labels["node-role.kubernetes.io/control-plane"]
		o.Nodes[n.Name] = Node{ControlPlane: cp, Ready: nodeReady(n)}
	}
	var joined []host.Host
	for name := range o.Nodes {
		if conn := f.conn(name); conn != nil {
			joined = append(joined, conn)
		}
	}
	var mu sync.Mutex
	// A host that does not answer here keeps its Node: the plan leaves it alone.
	_ = host.ForEach(ctx, joined, f.o.Concurrency, func(ctx context.Context, conn host.Host) error {
		res, err := conn.Run(ctx, host.Cmd{Script: "test -f /etc/kubernetes/kubelet.conf && echo joined || echo reset", Display: "check kubelet.conf"})
		if err == nil && strings.TrimSpace(string(res.Stdout)) == "reset" {
			mu.Lock()
			o.Stale[conn.Name()] = true
			mu.Unlock()
		}
		return err
	})
	return o, nil
}

// findCluster reads admin.conf from the first control-plane host that has one and lists
// the cluster's Nodes through it; nil when no host has an admin.conf that answers.
func (f *Fleet) findCluster(ctx context.Context) ([]corev1.Node, error) {
	var silent []string
	for _, h := range f.c.ControlPlaneHosts() {
		conn := f.conn(h.Name)
		if conn == nil {
			continue
		}
		res, err := conn.Run(ctx, host.Cmd{Script: "cat /etc/kubernetes/admin.conf 2>/dev/null || true", Display: "read admin.conf"})
		if err != nil {
			return nil, fmt.Errorf("%s: reading admin.conf: %w", h.Name, err)
		}
		if len(bytes.TrimSpace(res.Stdout)) == 0 {
			continue
		}
		nodes, err := f.useAdmin(ctx, res.Stdout)
		if err != nil {
			f.out().Phase(h.Name, "WARNING: it has admin.conf, but the cluster does not answer through it: %v", err)
			silent = append(silent, h.Name)
			continue
		}
		f.out().Say("cluster %q found through %s: %d nodes", f.c.Name, h.Name, len(nodes))
		return nodes, nil
	}
	if len(silent) > 0 {
		// An init that stopped half-way, or a control plane that is down: init converges,
		// so running it again on the first control-plane host brings the cluster back.
		f.out().Say("no control-plane host answers (%s); init runs again on the first one", strings.Join(silent, ", "))
	}
	return nil, nil
}

// useAdmin builds the admin client from admin.conf and lists the Nodes with it; on
// success the fleet keeps both.
func (f *Fleet) useAdmin(ctx context.Context, admin []byte) ([]corev1.Node, error) {
	cs, err := f.o.Client(admin)
	if err != nil {
		return nil, err
	}
	var list *corev1.NodeList
	err = wait.Poll(ctx, f.o.PollInterval, listNodesTimeout, func(ctx context.Context) error {
		list, err = cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	f.mu.Lock()
	f.admin, f.cs = admin, cs
	f.mu.Unlock()
	return list.Items, nil
}

// readAdmin reads admin.conf from a host that has just run init and keeps the client.
func (f *Fleet) readAdmin(ctx context.Context, name string) error {
	res, err := f.conn(name).Run(ctx, host.Cmd{Script: "cat /etc/kubernetes/admin.conf", Display: "read admin.conf"})
	if err != nil {
		return fmt.Errorf("%s: reading admin.conf: %w", name, err)
	}
	_, err = f.useAdmin(ctx, res.Stdout)
	return err
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
