package cmd

import (
	"fmt"
	"net"

	"github.com/spf13/cobra"

	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/phases"
	"github.com/kforge/kforge/preflight"
)

// newPreflightCommand is `kforge preflight`, which `kforge up` runs on every host it is
// about to set up, before anything is installed there.
func newPreflightCommand(root *rootOptions) *cobra.Command {
	var (
		configPath, node, role string
		provides, ignore       []string
	)
	c := &cobra.Command{
		Use:    "preflight",
		Short:  "Run the pre-flight checks of init or join on this host, changing nothing",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := config.Load(configPath)
			if err != nil {
				return err
			}
			h, ok := cl.HostByName(node)
			if !ok {
				return fmt.Errorf("--node %q is not in %s", node, configPath)
			}
			ign, err := preflight.ParseIgnore(ignore)
			if err != nil {
				return err
			}
			p := preflight.InitParams{
				Cluster:          cl,
				NodeName:         h.Name,
				AdvertiseAddress: net.ParseIP(h.NodeIP()).String(),
				System:           root.preflight,
				BundleBinaries:   provides,
			}
			var checks []preflight.Checker
			switch role {
			case "init":
				checks = preflight.InitChecks(p)
			case config.RoleControlPlane:
				checks = preflight.JoinChecks(p, true)
			case config.RoleWorker:
				checks = preflight.JoinChecks(p, false)
			default:
				return fmt.Errorf("--role %q: want init, %s or %s", role, config.RoleControlPlane, config.RoleWorker)
			}
			out := phases.NewPrinter(root.streams.Out)
			return preflight.Run(cmd.Context(), checks, ign, out.Writer())
		},
	}
	fs := c.Flags()
	fs.StringVarP(&configPath, "config", "f", "", "path of cluster.toml")
	fs.StringVar(&node, "node", "", "which host of the file this is")
	fs.StringVar(&role, "role", "", "init, control-plane or worker")
	fs.StringSliceVar(&provides, "bundle-provides", nil, "binaries the bundle will install")
	fs.StringSliceVar(&ignore, "ignore-preflight-errors", nil, "checks whose errors become warnings")
	_ = c.MarkFlagRequired("config")
	_ = c.MarkFlagRequired("node")
	_ = c.MarkFlagRequired("role")
	return c
}
