package cmd

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/kforge/kforge/config"
)

// version is set at build time: -ldflags "-X github.com/kforge/kforge/cmd.version=v0.1.0".
var version = "v0.0.0-dev"

type versionInfo struct {
	Version           string `json:"version"`
	GoVersion         string `json:"goVersion"`
	Platform          string `json:"platform"`
	KubernetesVersion string `json:"defaultKubernetesVersion"`
}

func newVersionCommand(root *rootOptions) *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "version",
		Short: "Print the kforge version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := versionInfo{
				Version:           version,
				GoVersion:         runtime.Version(),
				Platform:          runtime.GOOS + "/" + runtime.GOARCH,
				KubernetesVersion: config.DefaultKubernetesVersion,
			}
			switch output {
			case "", "text":
				fmt.Fprintf(root.streams.Out, "kforge %s (%s, %s), default Kubernetes %s\n",
					v.Version, v.GoVersion, v.Platform, v.KubernetesVersion)
			case "json":
				if err := writeJSON(root.streams.Out, v); err != nil {
					return err
				}
			default:
				return fmt.Errorf("--output %q is not supported; use text or json", output)
			}
			return nil
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return c
}
