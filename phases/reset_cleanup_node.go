package phases

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/kforge/kforge/nodecleanup"
	"github.com/kforge/kforge/service"
)

// cleanupNodePhase stops the kubelet and every pod and removes what init or join made:
// files, mounts, network links and iptables chains (nodecleanup lists the steps). Every
// step goes through Data.Act, which a dry run swaps for one that only reports.
//
// Reads Data.Cluster, Data.Services, Data.Act and the directories of Data.
func cleanupNodePhase() Phase {
	return Phase{
		Name:  "cleanup-node",
		Short: "Stop the kubelet and every pod, and remove the cluster's files, mounts, network links and iptables chains",
		Run:   cleanupNode,
	}
}

// removeCertsRenewalFiles removes what installCertsRenewal installed and the record of
// the check's runs: exactly those.
func removeCertsRenewalFiles(ctx context.Context, d *Data, sched service.Scheduler) error {
	if _, err := sched.Unschedule(ctx, CertsRenewalName); err != nil {
		return err
	}
	for _, p := range []string{CertsRenewalConfig, CertsRenewalState} {
		if err := os.Remove(d.Path(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

func cleanupNode(ctx context.Context, d *Data) error {
	var errs []error
	step := func(desc string, do func() error) {
		if err := d.Act(d.Out, desc, do); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", desc, err))
		}
	}

	if sched, ok := d.Services.(service.Scheduler); ok {
		step("remove the certificate renewal check "+CertsRenewalName+", its configuration and its record", func() error {
			return removeCertsRenewalFiles(ctx, d, sched)
		})
	}
	step("stop the kubelet", func() error { return d.Services.Stop(ctx, "kubelet") })

	node := nodecleanup.Node{
		Dirs:            nodecleanup.Dirs{ManifestsDir: d.ManifestsDir, KubeconfigDir: d.KubeconfigDir, CertDir: d.CertDir},
		RuntimeEndpoint: d.Cluster.Kubelet.ContainerRuntimeEndpoint,
		At:              d.Path,
		Warn:            func(err error) { d.Out.Say("WARNING: %v", err) },
	}
	if d.Cluster.Etcd.Local != nil {
		node.EtcdDataDir = d.Cluster.Etcd.Local.DataDir
	}
	for s := range nodecleanup.Steps(ctx, node) {
		step(s.Desc, s.Do)
	}
	return errors.Join(errs...)
}
