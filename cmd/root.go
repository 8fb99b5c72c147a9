// Package cmd holds kforge's cobra commands, one file per verb. Flags are parsed into a
// local options struct per command, never into globals.
package cmd

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/kforge/kforge/phases"
	"github.com/kforge/kforge/preflight"
)

// Streams are the standard streams a command uses: progress to Out, diagnostics to Err.
type Streams struct {
	In       io.Reader
	Out, Err io.Writer
}

// rootOptions are the flags every command shares.
type rootOptions struct {
	streams   Streams
	verbosity int
	// preflight is how preflight checks read the machine; tests swap in a fake.
	preflight preflight.System
	// apiClient builds an API client from a kubeconfig file; tests swap in a fake clientset.
	apiClient func(kubeconfig string) (kubernetes.Interface, error)
	// now is the clock of commands that compute expiries; tests pin it.
	now func() time.Time
}

// logger returns the diagnostics logger: warnings by default, -v 1 info, -v 2 debug.
func (o *rootOptions) logger() *slog.Logger {
	level := slog.LevelWarn
	switch {
	case o.verbosity >= 2:
		level = slog.LevelDebug
	case o.verbosity == 1:
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(o.streams.Err, &slog.HandlerOptions{Level: level}))
}

// NewRootCommand builds the kforge command tree.
func NewRootCommand(s Streams) *cobra.Command {
	return newRootCommand(&rootOptions{
		streams:   s,
		preflight: preflight.LocalSystem(),
		apiClient: phases.ClientFromKubeconfig,
		now:       time.Now,
	})
}

func newRootCommand(o *rootOptions) *cobra.Command {
	s := o.streams
	root := &cobra.Command{
		Use:   "kforge",
		Short: "Bootstrap Kubernetes clusters on your own machines",
		Long: `kforge bootstraps Kubernetes clusters on bare metal, VMs and air-gapped sites.

It does what kubeadm does, host by host, and keeps kubeadm's file layout and
bootstrap contract, so kubectl and stock kubeadm work against a kforge cluster.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	root.PersistentFlags().IntVarP(&o.verbosity, "v", "v", 0, "diagnostics on stderr: 0 warnings, 1 info, 2 debug")
	root.AddCommand(
		newVersionCommand(o),
		newInitCommand(o),
		newJoinCommand(o),
		newCertsCommand(o),
		newPreflightCommand(o),
		newUpCommand(o),
		newConfigCommand(o),
		newResetCommand(o),
		newSuperviseCommand(o),
		newTokenCommand(o),
	)
	return root
}

// Execute runs kforge with args.
func Execute(ctx context.Context, s Streams, args []string) error {
	root := NewRootCommand(s)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

// ExitCode maps an error to the process exit code: 130 for an interrupt, 1 otherwise.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, context.Canceled):
		return 130
	}
	return 1
}
