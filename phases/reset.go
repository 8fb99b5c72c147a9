package phases

import (
	"context"
	"errors"
	"fmt"

	"github.com/kforge/kforge/nodecleanup"
)

// ResetWorkflow is `kforge reset`: it undoes init and join on this host, so that the host
// is ready for another init or join.
func ResetWorkflow() *Workflow {
	return &Workflow{
		Name: "reset",
		Phases: []Phase{
			{
				Name:  "preflight",
				Short: "Check that reset can run here",
				Run: func(_ context.Context, d *Data) error {
					if d.PreflightSystem != nil && d.PreflightSystem.Euid() != 0 && !d.IgnorePreflight.Has("IsPrivilegedUser") && !d.IgnorePreflight.All() {
						return errors.New("reset must run as root (or pass --ignore-preflight-errors=IsPrivilegedUser to try anyway)")
					}
					d.Out.Phase("preflight", "resetting host %q: the kubelet, its pods and every file init or join wrote will be removed", d.Node.Name)
					return nil
				},
			},
			removeEtcdMemberPhase(),
			removeNodePhase(),
			{
				Name:  "cleanup-node",
				Short: "Stop the kubelet and every pod, and remove the cluster's files, mounts, network links and iptables chains",
				Run:   cleanupNode,
			},
		},
	}
}

// Act carries out one step of a destructive workflow: a real run does it, a dry run
// prints it.
type Act func(desc string, do func() error) error

// RealAct does the step and reports it.
func RealAct(p *Printer, phase string) Act {
	return func(desc string, do func() error) error {
		p.Phase(phase, "%s", desc)
		return do()
	}
}

// DryRunAct reports the step as a plan and does nothing.
func DryRunAct(p *Printer, phase string) Act {
	return func(desc string, _ func() error) error {
		p.Phase(phase, "would %s", desc)
		return nil
	}
}

func cleanupNode(ctx context.Context, d *Data) error {
	var errs []error
	step := func(desc string, do func() error) {
		if err := d.Act(desc, do); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", desc, err))
		}
	}

	step("stop the kubelet", func() error { return d.Services.Stop(ctx, "kubelet") })

	node := nodecleanup.Node{
		Dirs:            nodecleanup.Dirs{ManifestsDir: d.ManifestsDir, KubeconfigDir: d.KubeconfigDir, CertDir: d.CertDir},
		RuntimeEndpoint: d.Cluster.Kubelet.ContainerRuntimeEndpoint,
		At:              d.Path,
		Warn:            func(err error) { d.Out.Phase("cleanup-node", "WARNING: %v", err) },
	}
	if d.Cluster.Etcd.Local != nil {
		node.EtcdDataDir = d.Cluster.Etcd.Local.DataDir
	}
	for s := range nodecleanup.Steps(ctx, node) {
		step(s.Desc, s.Do)
	}
	return errors.Join(errs...)
}
