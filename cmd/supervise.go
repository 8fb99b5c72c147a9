package cmd

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/kforge/kforge/service"
)

// newSuperviseCommand is the hidden `kforge supervise`, which keeps a service running on
// hosts without systemd. kforge starts it itself; people have no reason to.
func newSuperviseCommand(root *rootOptions) *cobra.Command {
	var opts service.SuperviseOptions
	c := &cobra.Command{
		Use:    "supervise --name NAME [--env-file F]... -- COMMAND [ARG]...",
		Short:  "Run a service and restart it when it exits (used on hosts without systemd)",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return errors.New("supervise needs a command after --")
			}
			opts.Command = args
			opts.Log = root.streams.Out
			return service.Supervise(cmd.Context(), opts)
		},
	}
	c.Flags().StringVar(&opts.Name, "name", "", "service name, for pid files and log lines")
	c.Flags().StringVar(&opts.StateDir, "state-dir", service.DefaultStateDir, "where the pid files live")
	c.Flags().StringSliceVar(&opts.EnvFiles, "env-file", nil, "env files whose variables the command's $VAR arguments expand")
	_ = c.MarkFlagRequired("name")
	return c
}
