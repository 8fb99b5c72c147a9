package cmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kforge/kforge/config"
)

func newConfigCommand(root *rootOptions) *cobra.Command {
	c := &cobra.Command{
		Use:   "config",
		Short: "Work with cluster.toml files",
	}
	c.AddCommand(&cobra.Command{
		Use:   "print-defaults",
		Short: "Print a complete, commented cluster.toml with every default",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := root.streams.Out.Write(config.PrintDefaults())
			return err
		},
	})
	var file string
	validate := &cobra.Command{
		Use:   "validate -f FILE",
		Short: "Check a cluster.toml and report every problem at once",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := config.Load(file)
			if err != nil {
				return err
			}
			fmt.Fprintf(root.streams.Out, "%s is valid: cluster %q, Kubernetes %s, %d host(s)\n",
				file, c.Name, c.KubernetesVersion, len(c.Hosts))
			return nil
		},
	}
	validate.Flags().StringVarP(&file, "file", "f", "", "path of the cluster.toml to check")
	_ = validate.MarkFlagRequired("file")
	c.AddCommand(validate)
	return c
}
