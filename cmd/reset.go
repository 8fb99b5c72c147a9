package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/fleet"
	"github.com/kforge/kforge/phases"
	"github.com/kforge/kforge/preflight"
)

type resetOptions struct {
	root            *rootOptions
	configPath      string
	node            string
	dryRun          bool
	skipPhases      []string
	ignorePreflight []string
	certDir         string
	kubeconfigDir   string
	manifestsDir    string
	force           bool
	hosts           []string
	ssh             sshOptions
	concurrency     int
}

func newResetCommand(root *rootOptions) *cobra.Command {
	wf := phases.ResetWorkflow()
	o := &resetOptions{root: root}
	c := &cobra.Command{
		Use:   "reset",
		Short: "Undo init or join on this host, so that it can init or join again",
		Long: `Undo init or join on this host: stop the kubelet and every pod, unmount the pods'
volumes, and remove the certificates, kubeconfigs, static pod manifests, etcd data, kubelet
state, CNI config and the iptables chains of kube-proxy and flannel.

kforge leaves containerd's config, the installed binaries and its logs in place.

The reset workflow runs these phases, in order:

` + wf.Describe() + `
With -f cluster.toml and no --node, kforge resets hosts of the file over SSH instead,
in these phases:

` + phases.ResetHostsWorkflow().Describe(),
		Example: `  # see what would be removed
  kforge reset --dry-run

  # reset this host
  kforge reset

  # reset hosts of a cluster file over SSH (all of them without --hosts)
  kforge reset -f cluster.toml --hosts w1,w2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd.Context(), wf) },
	}
	fs := c.Flags()
	fs.StringVarP(&o.configPath, "config", "f", "", "path of cluster.toml; with --node, the settings for this host; without, reset the file's hosts over SSH")
	fs.StringVar(&o.node, "node", "", "which host of the file this is: reset this machine (default without -f: the hostname)")
	fs.StringSliceVar(&o.hosts, "hosts", nil, "with -f and no --node: the hosts to reset over SSH (default: all of the file's)")
	fs.IntVar(&o.concurrency, "concurrency", 20, "with -f and no --node: how many workers are reset at once")
	o.ssh.addFlags(fs)
	fs.BoolVar(&o.dryRun, "dry-run", false, "list what would be stopped and removed; change nothing")
	fs.StringSliceVar(&o.skipPhases, "skip-phases", nil, "phases to skip")
	fs.StringSliceVar(&o.ignorePreflight, "ignore-preflight-errors", nil, "preflight checks whose errors become warnings: names, or all")
	fs.StringVar(&o.certDir, "cert-dir", phases.DefaultCertDir, "where the certificates live")
	fs.StringVar(&o.kubeconfigDir, "kubeconfig-dir", phases.DefaultKubeconfigDir, "where the kubeconfig files live")
	fs.StringVar(&o.manifestsDir, "manifests-dir", phases.DefaultManifestsDir, "where the static pod manifests live")
	fs.BoolVar(&o.force, "force", false, "reset even where kforge would refuse: remove this host's etcd member although the others would lose quorum, and go on if that fails")
	return c
}

func (o *resetOptions) run(ctx context.Context, wf *phases.Workflow) error {
	if err := checkDirFlags(
		dirFlag{"cert-dir", o.certDir, phases.DefaultCertDir},
		dirFlag{"kubeconfig-dir", o.kubeconfigDir, phases.DefaultKubeconfigDir},
		dirFlag{"manifests-dir", o.manifestsDir, phases.DefaultManifestsDir},
	); err != nil {
		return err
	}
	if o.configPath != "" && o.node == "" {
		return o.runRemote(ctx)
	}
	if len(o.hosts) > 0 {
		return errors.New("--hosts resets hosts over SSH: pass -f cluster.toml without --node")
	}
	c := config.Default()
	if o.configPath != "" {
		var err error
		if c, err = config.Load(o.configPath); err != nil {
			return err
		}
	}
	name := o.node
	if name == "" {
		hn, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("reading the hostname (pass --node): %w", err)
		}
		name = strings.ToLower(hn)
	}
	node, ok := c.HostByName(name)
	if !ok {
		node = &config.Host{Name: name}
	}
	ignore, err := preflight.ParseIgnore(o.ignorePreflight)
	if err != nil {
		return err
	}
	out := phases.NewPrinter(o.root.streams.Out)
	s := phases.DataSpec{
		Cluster:         c,
		Node:            node,
		CertDir:         o.certDir,
		KubeconfigDir:   o.kubeconfigDir,
		ManifestsDir:    o.manifestsDir,
		IgnorePreflight: ignore,
		PreflightSystem: o.root.preflight,
		Out:             out,
		Log:             o.root.logger(),
		Force:           o.force,
	}
	deps := phases.RealDeps(s)
	if o.dryRun {
		// Reset writes nothing, so its dry run has no scratch root: it reads the host as it
		// is to say what it would remove.
		deps = phases.DryRunDeps(s, "")
	}
	d := phases.NewData(s, deps)
	if err := wf.Run(ctx, d, "", o.skipPhases); err != nil {
		return err
	}
	if !o.dryRun {
		out.Plain("\nhost %q is reset; kforge left containerd's config, the installed binaries and the logs in /var/log/kforge.", node.Name)
	}
	return nil
}

// runRemote resets hosts of the file over SSH.
func (o *resetOptions) runRemote(ctx context.Context) error {
	c, err := config.Load(o.configPath)
	if err != nil {
		return err
	}
	for _, name := range o.hosts {
		if _, ok := c.HostByName(name); !ok {
			return fmt.Errorf("--hosts: %q is not a host of the file", name)
		}
	}
	out := phases.NewPrinter(o.root.streams.Out)
	d, err := o.root.fleetData(phases.DataSpec{Cluster: c, Out: out, Force: o.force,
		Fleet: fleet.Options{Concurrency: o.concurrency, Hosts: o.hosts}}, &o.ssh, o.dryRun)
	if err != nil {
		return err
	}
	runErr := phases.ResetHostsWorkflow().Run(ctx, d, "", o.skipPhases)
	rep := d.CloseFleet(ctx)
	if rep == nil {
		return runErr
	}
	if perr := printFleetReport(o.root.streams.Out, rep, "text"); perr != nil {
		return perr
	}
	if failed := rep.Failed(); failed != nil {
		return fmt.Errorf("reset failed on some hosts; run it again for those:\n%w", failed)
	}
	return runErr
}
