package main

import (
	"context"
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
// to try kforge without spare servers. It runs the real thing: kforge up from this machine
// over SSH to three test hosts.
func newCluster(g *globalOptions) *cobra.Command {
	var kubeconfigOut string
	var hosts int
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Build (or reuse) the bundle, create test hosts and run kforge up against them; write the admin kubeconfig",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			start := time.Now()
			root, err := ebundle.RepoRoot(".")
			if err != nil {
				return err
			}
			if err := ensureMachinePackages(ctx, g, "cluster"); err != nil {
				return err
			}
			fmt.Fprintln(g.out, "[cluster] building or reusing the air-gap bundle (about 15 minutes the first time)")
			b, err := ebundle.Build(ctx, ebundle.Options{RepoRoot: root, Log: g.out})
			if err != nil {
				return err
			}
			tb, err := testbed.Up(ctx, testbed.Options{Hosts: hosts, StateDir: g.stateDir, Out: g.out, Logger: g.logger()})
			if err != nil {
				return err
			}
			l, err := lab.Stage(tb, b.Dir, root)
			if err != nil {
				return err
			}
			hs := tb.Hosts()[:hosts]
			cfg := filepath.Join(tb.Dir(), "cluster.toml")
			if err := os.WriteFile(cfg, []byte(l.UpConfig("kforge", "", 1, hs...)), 0o600); err != nil {
				return err
			}
			abs, err := filepath.Abs(kubeconfigOut)
			if err != nil {
				return err
			}
			// The testbed's hosts are this cluster's: a kubeconfig left here by an earlier
			// testbed is replaced (kept as .old), where up would refuse by default.
			args := []string{"up", "-f", cfg, "-i", tb.SSHKey(), "--known-hosts", tb.KnownHosts(), "--kubeconfig-out", abs, "--init-new-cluster"}
			fmt.Fprintf(g.out, "[cluster] %s %s\n", l.Kforge, strings.Join(args, " "))
			up := exec.CommandContext(ctx, l.Kforge, args...)
			up.Stdout, up.Stderr = g.out, g.out
			if err := up.Run(); err != nil {
				return fmt.Errorf("kforge up: %w", err)
			}
			kubectl := b.Path("kubectl")
			fmt.Fprintln(g.out, "[cluster] waiting for the nodes to be Ready")
			if out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", abs, "wait", "--for=condition=Ready",
				"nodes", "--all", "--timeout=180s").CombinedOutput(); err != nil {
				return fmt.Errorf("the nodes did not become Ready: %w: %s", err, out)
			}
			out, _ := exec.CommandContext(ctx, kubectl, "--kubeconfig", abs, "get", "nodes", "-o", "wide").CombinedOutput()
			fmt.Fprintf(g.out, "\n%s\n[cluster] ready in %s; the admin kubeconfig is %s. Try:\n\n  %s --kubeconfig %s get pods -A\n\n", strings.TrimSpace(string(out)),
				time.Since(start).Round(time.Second), abs, kubectl, abs)
			fmt.Fprintf(g.out, "The cluster file is %s; run kforge up -f on it again and nothing changes.\n", cfg)
			fmt.Fprintf(g.out, "Enter a host with: %s\nRemove everything with: make testbed-down\n", hs[0].EnterCommand())
			return nil
		},
	}
	cmd.Flags().StringVar(&kubeconfigOut, "kubeconfig-out", "kforge-admin.conf", "where to write the cluster's admin kubeconfig")
	cmd.Flags().IntVar(&hosts, "hosts", 3, "how many test hosts: the first is the control plane, the others workers")
	return cmd
}

// ensureMachinePackages checks this machine for what the bundle build, the testbed and the
// tests need (testbed.MachinePackages, then the hosts' testbed.Packages) and installs what
// is missing, saying which ones.
func ensureMachinePackages(ctx context.Context, g *globalOptions, prefix string) error {
	var pkgs []string
	seen := map[string]bool{}
	for _, p := range append(append([]string{}, testbed.MachinePackages...), testbed.Packages...) {
		if !seen[p] {
			seen[p] = true
			pkgs = append(pkgs, p)
		}
	}
	fmt.Fprintf(g.out, "[%s] checking Debian packages: %s\n", prefix, strings.Join(pkgs, " "))
	progress := func(s string) { fmt.Fprintf(g.out, "[%s] %s\n", prefix, s) }
	if err := testbed.EnsurePackages(ctx, pkgs, progress, g.out); err != nil {
		return fmt.Errorf("installing this machine's prerequisites: %w", err)
	}
	return nil
}

// newPrereqs is `testbedctl prereqs`: the machine's prerequisites alone, as `cluster`
// installs them first; .ci/run uses it so CI and `make cluster` share one list.
func newPrereqs(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "prereqs",
		Short: "Install the Debian packages the bundle build, the test hosts and the tests need (what is missing only)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return ensureMachinePackages(cmd.Context(), g, "prereqs")
		},
	}
}
