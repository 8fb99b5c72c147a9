package phases

import (
	"context"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/host"
)

// ResetHostsOptions configure ResetHosts.
type ResetHostsOptions struct {
	UpOptions
	// Hosts names the hosts to reset; empty means every host of the file.
	Hosts []string
	// Force is passed to each host's reset.
	Force bool
}

// ResetHosts runs `kforge reset` on hosts of the file over SSH: the workers in parallel,
// then the control-plane hosts one at a time, the first one of the file last, so that each
// etcd member leaves while the others keep quorum. The Nodes of reset workers are deleted
// with the cluster's admin credentials when a control-plane host still serves them.
func ResetHosts(ctx context.Context, o ResetHostsOptions) (*UpReport, error) {
	start := time.Now()
	if o.Concurrency <= 0 {
		o.Concurrency = host.DefaultConcurrency
	}
	for _, name := range o.Hosts {
		if _, ok := o.Cluster.HostByName(name); !ok {
			return nil, fmt.Errorf("--hosts: %q is not a host of the file", name)
		}
	}
	u := &up{o: o.UpOptions, c: o.Cluster, hosts: map[string]host.Host{}, reports: map[string]*HostReport{}}
	defer u.closeAll()
	var picked []*config.Host
	for i := range u.c.Hosts {
		h := &u.c.Hosts[i]
		if len(o.Hosts) > 0 && !slices.Contains(o.Hosts, h.Name) {
			continue
		}
		role := config.RoleWorker
		if h.IsControlPlane() {
			role = config.RoleControlPlane
		}
		u.reports[h.Name] = &HostReport{Host: h.Name, Role: role, Action: "reset", Result: ResultPlanned}
		picked = append(picked, h)
	}
	if err := u.prepareLocal(); err != nil {
		return nil, err
	}
	// Only the picked hosts are connected; the cluster is asked through one of them.
	whole := o.Cluster.ControlPlaneHosts()
	sub := *o.Cluster
	sub.Hosts = nil
	for _, h := range picked {
		sub.Hosts = append(sub.Hosts, *h)
	}
	u.c = &sub
	u.connectAll(ctx)
	// A control-plane host that is not being reset serves the admin credentials that
	// delete the workers' Nodes.
	for _, h := range whole {
		if _, ok := u.hosts[h.Name]; ok || slices.Contains(o.Hosts, h.Name) || len(o.Hosts) == 0 {
			continue
		}
		if conn, err := o.Connect(ctx, h); err == nil {
			u.hosts[h.Name] = conn
			break
		}
	}
	if err := u.findCluster(ctx, whole); err != nil {
		u.o.Out.Phase("reset", "WARNING: %v; Nodes of reset workers are left for kubectl delete node", err)
	}
	if o.DryRun {
		for _, h := range picked {
			if u.reports[h.Name].Result == ResultPlanned {
				u.o.Out.Phase(h.Name, "would reset")
			}
		}
		return u.report(start), nil
	}
	reset := func(ctx context.Context, h *config.Host) error {
		if _, err := u.ensureKforge(ctx, h); err != nil {
			return err
		}
		args := []string{"reset", "-f", RemoteConfig, "--node", h.Name}
		if o.Force {
			args = append(args, "--force")
		}
		if err := u.timed(h.Name, func() error { return u.kforge(ctx, h, args, nil) }); err != nil {
			return err
		}
		if u.cs != nil && !h.IsControlPlane() {
			err := u.cs.CoreV1().Nodes().Delete(ctx, h.Name, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				u.o.Out.Phase(h.Name, "WARNING: deleting Node %s: %v", h.Name, err)
			}
		}
		u.done(h.Name, "reset")
		return nil
	}
	var workers, cps []*config.Host
	for _, h := range picked {
		if h.IsControlPlane() {
			cps = append([]*config.Host{h}, cps...)
		} else {
			workers = append(workers, h)
		}
	}
	u.forEach(ctx, workers, reset)
	for _, h := range cps {
		if u.reports[h.Name].Result != ResultPlanned {
			continue
		}
		if err := reset(ctx, h); err != nil {
			u.fail(h.Name, err)
		}
	}
	return u.report(start), ctx.Err()
}
