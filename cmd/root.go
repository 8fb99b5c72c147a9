// Package cmd holds kforge's cobra commands, one file per verb. Flags are parsed into a
// local options struct per command, never into globals.
package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
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
	// secrets are the secrets Execute took from the environment at startup.
	secrets secretEnv
}

// secretEnv holds the secrets kforge accepts from its environment instead of flags, so that
// they stay out of process listings and shell history.
type secretEnv struct {
	token          string // KFORGE_TOKEN
	certificateKey string // KFORGE_CERTIFICATE_KEY
}

// takeSecretEnv reads the secret environment variables and unsets them, so that no process
// kforge starts inherits them: the kubelet and containerd would otherwise keep them in
// /proc/<pid>/environ for life.
func takeSecretEnv() secretEnv {
	take := func(name string) string {
		v := os.Getenv(name)
		_ = os.Unsetenv(name)
		return v
	}
	return secretEnv{token: take(envToken), certificateKey: take(envCertificateKey)}
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
		newStatusCommand(o),
		newReconfigureCommand(o),
		newConfigCommand(o),
		newResetCommand(o),
		newSuperviseCommand(o),
		newTokenCommand(o),
	)
	return root
}

// Execute runs kforge with args. It takes the secrets out of the environment first (see
// takeSecretEnv), before anything can start a process.
func Execute(ctx context.Context, s Streams, args []string) error {
	root := newRootCommand(&rootOptions{
		streams:   s,
		preflight: preflight.LocalSystem(),
		apiClient: phases.ClientFromKubeconfig,
		now:       time.Now,
		secrets:   takeSecretEnv(),
	})
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

// writeJSON writes v as indented JSON and a newline: every command's -o json.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
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
