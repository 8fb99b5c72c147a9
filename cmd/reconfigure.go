package cmd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kforge/kforge/bundle"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/fleet"
	"github.com/kforge/kforge/internal/overlay"
	"github.com/kforge/kforge/phases"
)

// reconfigureOptions are the flags of `kforge reconfigure` and its phase commands.
type reconfigureOptions struct {
	root       *rootOptions
	configPath string
	node       string
	hostFlags
	skipPhases []string
	wait       time.Duration
	output     string
	// expectSHA256 makes the run refuse to start unless this binary's sha256 is it.
	expectSHA256 string
}

func (o *reconfigureOptions) addFlags(fs *pflag.FlagSet, whole bool) {
	fs.StringVarP(&o.configPath, "config", "f", "", "path of cluster.toml (required)")
	fs.StringVar(&o.node, "node", "", "which host of the file this is (default: the host with one of this machine's addresses)")
	o.hostFlags.addFlags(fs, "; with -o json, the plan as JSON")
	fs.DurationVar(&o.wait, "timeout", phases.DefaultWait, "how long to wait for each restarted component to be healthy")
	fs.StringVarP(&o.output, "output", "o", "text", "format of the --dry-run plan: text or json (progress then goes to stderr)")
	if whole {
		fs.StringSliceVar(&o.skipPhases, "skip-phases", nil, "phases to skip (see the list above)")
	}
	fs.StringVar(&o.expectSHA256, "expect-sha256", "", "do nothing and fail unless this kforge binary's sha256 is this (kforge up checks so that the installed kforge is its own build)")
}

func newReconfigureCommand(root *rootOptions) *cobra.Command {
	wf := phases.ReconfigureWorkflow()
	o := &reconfigureOptions{root: root}
	c := &cobra.Command{
		Use:   "reconfigure",
		Short: "Make this host, already in the cluster, match cluster.toml",
		Long: `Make this host, already in the cluster, match cluster.toml: containerd's
configuration, the kubelet's configuration and flags and, on a control-plane host, the
static pods of etcd and the control plane and the files they read. A certificate that
lacks a name the file adds (apiserver.cert_sans, etcd.local.server_cert_sans) is signed
again for its own key, and the static pods that read it restart (a manifest's
kforge.io/config-hash covers the certificates and kubeconfigs its component reads). Other
certificates, keys and kubeconfigs are left as they are.

Each static pod whose manifest changes is waited for: the kubelet must have restarted it
and it must answer its health endpoint before the run goes on. kforge up runs this on
one host at a time; --dry-run prints the plan: every file that would change, with a diff
(keys and credentials left out), and what would restart.

The reconfigure workflow runs these phases, in order:

` + wf.Describe(),
		Example: `  # what would change on this host, as a diff
  kforge reconfigure -f cluster.toml --dry-run
  # the same plan for a pipeline
  kforge reconfigure -f cluster.toml --node cp1 --dry-run -o json
  # apply it
  kforge reconfigure -f cluster.toml --node cp1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), wf, "")
		},
	}
	o.addFlags(c.Flags(), true)
	_ = c.RegisterFlagCompletionFunc("skip-phases", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return wf.Paths(), cobra.ShellCompDirectiveNoFileComp
	})
	c.AddCommand(newPhaseCommand(wf, func() phaseRunner { return &reconfigureOptions{root: root} }))
	return c
}

func (o *reconfigureOptions) runPhases(ctx context.Context, wf *phases.Workflow, only string, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected arguments %q", args)
	}
	return o.run(ctx, wf, only)
}

func (o *reconfigureOptions) run(ctx context.Context, wf *phases.Workflow, only string) error {
	if o.expectSHA256 != "" {
		if err := checkOwnSHA256(o.expectSHA256); err != nil {
			return err
		}
	}
	switch {
	case o.output != "text" && o.output != "json":
		return fmt.Errorf("--output %q: want text or json", o.output)
	case o.output == "json" && !o.dryRun:
		return errors.New("--output json prints the plan of a --dry-run; add --dry-run (a real run reports its progress as text)")
	}
	d, cleanup, err := o.data()
	if err != nil {
		return err
	}
	defer cleanup()
	start := time.Now()
	if err := wf.Run(ctx, d, only, o.skipPhases); err != nil {
		return err
	}
	if !d.DryRun {
		if only == "" {
			d.Out.Plain("\nkforge reconfigure finished in %s: %q matches the file.", time.Since(start).Round(time.Millisecond), d.Node.Name)
		}
		return nil
	}
	if o.output == "text" {
		return printPlan(d)
	}
	changes, err := d.PlannedChanges()
	if err != nil {
		return fmt.Errorf("comparing the dry run's files with the host's: %w", err)
	}
	plan := fleet.HostPlan{Node: d.Node.Name, Role: config.RoleWorker, Changes: changes, Restarts: d.PlannedRestarts(changes)}
	if d.Join.ControlPlane {
		plan.Role = config.RoleControlPlane
	}
	if plan.Changes == nil {
		plan.Changes = []overlay.FileChange{}
	}
	if plan.Restarts == nil {
		plan.Restarts = []string{}
	}
	return writeJSON(o.root.streams.Out, plan)
}

// data builds the run's Data from the file: this host's entry, and its role there.
func (o *reconfigureOptions) data() (*phases.Data, func(), error) {
	if o.configPath == "" {
		return nil, func() {}, errors.New("--config (-f) is required: reconfigure makes this host match cluster.toml")
	}
	d, cleanup, err := o.root.fileHostData(o.configPath, o.node, o.hostFlags, o.wait, o.output == "json")
	if d != nil {
		d.ReissueSANs = true
	}
	return d, cleanup, err
}

// fileHostData builds the Data of a run on this host from cluster.toml at configPath: the
// host named node (default: the host with one of this machine's addresses) and its role
// there. With jsonOut, progress goes to stderr, leaving stdout to the JSON.
func (root *rootOptions) fileHostData(configPath, node string, h hostFlags, wait time.Duration, jsonOut bool) (*phases.Data, func(), error) {
	noop := func() {}
	if err := h.checkDirs(); err != nil {
		return nil, noop, err
	}
	c, err := config.Load(configPath)
	if err != nil {
		return nil, noop, err
	}
	if h.bundle != "" {
		c.Bundle = h.bundle
	}
	local, err := phases.LocalAddresses()
	if err != nil {
		return nil, noop, err
	}
	host, err := phases.SelectNode(c, node, local)
	if err != nil {
		return nil, noop, err
	}
	adv := net.ParseIP(host.NodeIP())
	if adv == nil {
		return nil, noop, fmt.Errorf("host %q: internal_address %q must be an IP address", host.Name, host.NodeIP())
	}
	s, err := root.hostSpec(c, host, adv, h, wait)
	if err != nil {
		return nil, noop, err
	}
	if jsonOut {
		s.Out = phases.NewPrinter(root.streams.Err)
	}
	s.JoinControlPlane = host.IsControlPlane()
	return hostData(s, h.dryRun)
}

// checkOwnSHA256 fails unless the running binary's sha256 is want.
func checkOwnSHA256(want string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("--expect-sha256: finding this binary: %w", err)
	}
	got, _, err := bundle.HashFile(self)
	if err != nil {
		return fmt.Errorf("--expect-sha256: %w", err)
	}
	if got != want {
		return fmt.Errorf("--expect-sha256: %s is another build (sha256 %s, not %s); nothing was done", self, got, want)
	}
	return nil
}
