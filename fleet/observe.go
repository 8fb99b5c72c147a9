package fleet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/host"
	"github.com/kforge/kforge/internal/apiclient"
	"github.com/kforge/kforge/internal/wait"
	"github.com/kforge/kforge/manifests"
)

// listNodesTimeout bounds how long Observe waits for a cluster whose admin.conf it found.
const listNodesTimeout = 20 * time.Second

// Observe finds out what the cluster already holds. It asks every reachable
// control-plane host which cluster state it holds (a CA, etcd data, kubelet.conf,
// admin.conf, static pod manifests) and whether a kforge init there is unfinished
// (InitMarker); a host that cannot be asked (an SSH or sudo failure)
// is marked failed and counts as unreachable. It then reads admin.conf from the first
// control-plane host that has one that reaches the cluster and lists the cluster's Nodes
// with it, and asks every reachable host that has a Node whether it still holds its
// kubelet.conf. Whether there is a cluster to init is MakePlan's decision, from all of
// this.
func (f *Fleet) Observe(ctx context.Context) (Observed, error) {
	o := Observed{Unreachable: map[string]bool{}, Nodes: map[string]Node{}, Stale: map[string]bool{},
		State: map[string][]string{}, InitInProgress: map[string]bool{}, Silent: map[string]string{},
		Certs: map[string]HostCerts{}}
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
	if err := f.readState(ctx, &o); err != nil {
		return o, err
	}
	f.readCerts(ctx, &o)
	if expiredControlPlanes(f.c, o) {
		// The API cannot answer (or refuses everyone) until they are renewed: the plan
		// renews them first, and the run asks the cluster again after (planRecovery).
		return o, nil
	}
	nodes, err := f.findCluster(ctx, &o)
	if err != nil {
		return o, err
	}
	if nodes == nil {
		return o, nil
	}
	o.Cluster = true
	if o.Stored, err = f.readStored(ctx); err != nil {
		return o, err
	}
	for i := range nodes {
		n := &nodes[i]
		_, cp := n.Labels["node-role.kubernetes.io/control-plane"]
		o.Nodes[n.Name] = Node{ControlPlane: cp, Ready: nodeReady(n), KubeletVersion: n.Status.NodeInfo.KubeletVersion}
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

// readStored reads the configuration the cluster stores, as a joining node reads it
// (bootstrap.ReadStoredCluster); nil when the cluster holds no kubeadm-config.
func (f *Fleet) readStored(ctx context.Context) (*bootstrap.StoredCluster, error) {
	kubeadmCM, err := apiclient.GetConfigMap(ctx, f.cs, bootstrap.NamespaceSystem, bootstrap.KubeadmConfigName)
	if err != nil {
		return nil, err
	}
	if kubeadmCM == nil {
		f.out().Say("WARNING: the cluster stores no ConfigMap %s/%s: the file cannot be checked for changes the cluster cannot take; a successful run stores it",
			bootstrap.NamespaceSystem, bootstrap.KubeadmConfigName)
		return nil, nil
	}
	kubeletCM, err := apiclient.GetConfigMap(ctx, f.cs, bootstrap.NamespaceSystem, bootstrap.KubeletConfigName)
	if err != nil {
		return nil, err
	}
	s, err := bootstrap.ReadStoredCluster(kubeadmCM, kubeletCM)
	if err != nil {
		return nil, fmt.Errorf("reading the configuration the cluster stores, to compare the file with: %w", err)
	}
	return s, nil
}

// adminConf is where kforge init leaves the cluster's admin kubeconfig on a control-plane
// host.
var adminConf = path.Join(manifests.DefaultKubeconfigDir, "admin.conf")

// InitMarker is the file kforge init writes on its host before it writes anything else
// and removes once it has finished: while it exists, the cluster state on the host is that
// of an init kforge began and has not finished, which running init again completes.
const InitMarker = "/var/lib/kforge/init-in-progress"

// KubeletServingMarker is the file kforge up (and kforge certs approve-serving) writes on a
// control-plane host once every kubelet of the cluster serves a certificate signed by the
// cluster CA: while it exists and kubelet.server_tls_bootstrap is on, the apiserver's
// manifest verifies kubelets with the cluster CA (manifests.Params.VerifyKubelets). The
// control-plane phase removes it when the option is off, so that turning it on again
// waits for the kubelets once more.
const KubeletServingMarker = "/var/lib/kforge/kubelet-serving-verified"

// StatePaths are the files and directories whose presence on a control-plane host means
// that it holds (part of) a cluster: the CA, etcd's data (with a local etcd), the
// kubeconfigs of the kubelet and the admin, and the static pod manifests.
func StatePaths(c *config.Cluster) []string {
	paths := []string{
		path.Join(manifests.DefaultCertDir, "ca.crt"),
		path.Join(manifests.DefaultCertDir, "ca.key"),
	}
	if c.Etcd.Local != nil {
		paths = append(paths, path.Join(c.Etcd.Local.DataDir, "member"))
	}
	paths = append(paths, path.Join(manifests.DefaultKubeconfigDir, "kubelet.conf"), adminConf)
	for _, name := range []string{manifests.NameEtcd, manifests.NameAPIServer, manifests.NameControllerManager, manifests.NameScheduler} {
		paths = append(paths, path.Join(manifests.DefaultManifestDir, name+".yaml"))
	}
	return paths
}

// readState asks every reachable control-plane host which of StatePaths it holds, and
// whether it holds InitMarker, in parallel. A host that does not answer is failed and
// counted as unreachable: what it holds is unknown.
func (f *Fleet) readState(ctx context.Context, o *Observed) error {
	var conns []host.Host
	for _, h := range f.c.ControlPlaneHosts() {
		if conn := f.conn(h.Name); conn != nil {
			conns = append(conns, conn)
		}
	}
	script := "for p in " + host.ShellQuote(append(StatePaths(f.c), InitMarker)...) + "; do if [ -e \"$p\" ]; then echo \"$p\"; fi; done"
	var mu sync.Mutex
	err := host.ForEach(ctx, conns, f.o.Concurrency, func(ctx context.Context, conn host.Host) error {
		res, err := conn.Run(ctx, host.Cmd{Script: script, Display: "check cluster state"})
		if err != nil {
			return fmt.Errorf("checking for cluster state: %w", err)
		}
		var found []string
		marker := false
		for _, line := range strings.Split(string(res.Stdout), "\n") {
			switch line = strings.TrimSpace(line); line {
			case "":
			case InitMarker:
				marker = true
			default:
				found = append(found, line)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if len(found) > 0 {
			o.State[conn.Name()] = found
		}
		if marker {
			o.InitInProgress[conn.Name()] = true
		}
		return nil
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var he *host.HostError
	for _, e := range unjoin(err) {
		if !errors.As(e, &he) {
			return e
		}
		o.Unreachable[he.Host] = true
		f.failIfReported(he.Host, he.Err)
	}
	return nil
}

// findCluster reads admin.conf from the first control-plane host that has one that
// reaches the cluster and lists the cluster's Nodes through it. It records in o the hosts
// whose admin.conf does not reach the cluster, and stops at one the API refuses. Nil
// Nodes mean that no admin.conf reached the cluster.
func (f *Fleet) findCluster(ctx context.Context, o *Observed) ([]corev1.Node, error) {
	for _, h := range f.c.ControlPlaneHosts() {
		conn := f.conn(h.Name)
		if conn == nil || o.Unreachable[h.Name] || !slices.Contains(o.State[h.Name], adminConf) {
			continue
		}
		res, err := conn.Run(ctx, host.Cmd{Script: "cat " + host.ShellQuote(adminConf), Display: "read admin.conf"})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			o.Unreachable[h.Name] = true
			f.failIfReported(h.Name, fmt.Errorf("reading admin.conf: %w", err))
			continue
		}
		nodes, err := f.useAdmin(ctx, res.Stdout)
		if tlsErr, ok := refused(err); ok {
			o.Rejected = &Rejection{Host: h.Name, TLS: tlsErr, Err: err.Error(), Expired: certExpired(err)}
			return nil, nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			f.out().Phase(h.Name, "WARNING: it has admin.conf, but the cluster does not answer through it: %v", err)
			o.Silent[h.Name] = err.Error()
			continue
		}
		f.out().Say("cluster %q found through %s: %d nodes", f.c.Name, h.Name, len(nodes))
		o.Via = h.Name
		return nodes, nil
	}
	return nil, nil
}

// refused reports whether err is the API refusing a client outright, which no retry
// fixes: 401 Unauthorized or 403 Forbidden, or (tlsErr) a server certificate that the
// client's CA does not vouch for.
func refused(err error) (tlsErr, ok bool) {
	if err == nil {
		return false, false
	}
	if apierrors.IsUnauthorized(err) || apierrors.IsForbidden(err) {
		return false, true
	}
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	if errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verify) {
		return true, true
	}
	return false, false
}

// useAdmin builds the admin client from admin.conf and lists the Nodes with it; on
// success the fleet keeps both. A refusal (see refused) ends the wait at once.
func (f *Fleet) useAdmin(ctx context.Context, admin []byte) ([]corev1.Node, error) {
	cs, err := f.o.Client(admin)
	if err != nil {
		return nil, err
	}
	var list *corev1.NodeList
	err = wait.Poll(ctx, f.o.PollInterval, listNodesTimeout, func(ctx context.Context) error {
		list, err = cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if _, ok := refused(err); ok {
			return wait.Permanent(err)
		}
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
