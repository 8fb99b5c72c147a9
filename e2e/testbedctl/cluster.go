package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	ebundle "github.com/kforge/kforge/e2e/bundle"
	"github.com/kforge/kforge/e2e/lab"
	"github.com/kforge/kforge/e2e/testbed"
)

// newCluster is `testbedctl cluster`: a real cluster on this machine, for people who want
// to try kforge without spare servers.
func newCluster(g *globalOptions) *cobra.Command {
	var kubeconfigOut string
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Build (or reuse) the bundle, create host h1 and run kforge init in it; write the admin kubeconfig",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			start := time.Now()
			root, err := ebundle.RepoRoot(".")
			if err != nil {
				return err
			}
			fmt.Fprintln(g.out, "[cluster] building or reusing the air-gap bundle (about 15 minutes the first time)")
			b, err := ebundle.Build(ctx, ebundle.Options{RepoRoot: root, Log: g.out})
			if err != nil {
				return err
			}
			tb, err := testbed.Up(ctx, testbed.Options{Hosts: 1, StateDir: g.stateDir, Out: g.out, Logger: g.logger()})
			if err != nil {
				return err
			}
			l, err := lab.Stage(tb, b.Dir, root)
			if err != nil {
				return err
			}
			h, _ := tb.Host("h1")
			if err := l.WriteConfig(ctx, h, l.ClusterConfig(h)); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "[cluster] running kforge init on %s (%s)\n", h.Name, h.Address)
			if _, err := l.Run(ctx, h, g.out, "init", "-f", lab.ConfigPath, "--node", h.Name); err != nil {
				return err
			}
			kc, err := lab.AdminKubeconfig(ctx, h)
			if err != nil {
				return err
			}
			if err := os.WriteFile(kubeconfigOut, kc, 0o600); err != nil {
				return fmt.Errorf("writing %s: %w", kubeconfigOut, err)
			}
			kubectl := b.Path("kubectl")
			abs, _ := filepath.Abs(kubeconfigOut)
			fmt.Fprintln(g.out, "[cluster] waiting for the node to be Ready")
			if out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", abs, "wait", "--for=condition=Ready",
				"node/"+h.Name, "--timeout=180s").CombinedOutput(); err != nil {
				return fmt.Errorf("node %s did not become Ready: %w: %s", h.Name, err, out)
			}
			out, _ := exec.CommandContext(ctx, kubectl, "--kubeconfig", abs, "get", "nodes", "-o", "wide").CombinedOutput()
			fmt.Fprintf(g.out, "\n%s\n[cluster] ready in %s. Try:\n\n  %s --kubeconfig %s get pods -A\n\n", strings.TrimSpace(string(out)),
				time.Since(start).Round(time.Second), kubectl, abs)
			fmt.Fprintf(g.out, "Enter the host with: %s\nRemove everything with: make testbed-down\n", h.EnterCommand())
			return nil
		},
	}
	cmd.Flags().StringVar(&kubeconfigOut, "kubeconfig-out", "kforge-admin.conf", "where to write the cluster's admin kubeconfig")
	return cmd
}
