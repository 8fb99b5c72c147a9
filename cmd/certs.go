package cmd

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/phases"
)

func newCertsCommand(root *rootOptions) *cobra.Command {
	c := &cobra.Command{
		Use:   "certs",
		Short: "Work with the cluster's certificates and the certificate key",
		Args:  cobra.NoArgs,
	}
	c.AddCommand(newCertificateKeyCommand(root), newCheckExpirationCommand(root))
	return c
}

func newCertificateKeyCommand(root *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "certificate-key",
		Short: "Print a new random certificate key",
		Long: `Print a new random certificate key: 32 random bytes as hex.

The key seals the shared control-plane certificates in Secret kube-system/kubeadm-certs,
which control-plane joins open with --certificate-key. The Secret is deleted two hours
after an upload; to let another control-plane host join later, upload again with a key,
on a control-plane host:

  kforge init phase upload-certs --upload-certs -f cluster.toml --certificate-key "$(kforge certs certificate-key)"

Without --certificate-key, upload-certs makes a new key and prints it. The key is a
secret: anyone with it and a join token can fetch the cluster's CA keys.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := bootstrap.GenerateCertificateKey()
			if err != nil {
				return err
			}
			fmt.Fprintln(root.streams.Out, k.Reveal())
			return nil
		},
	}
}

func newCheckExpirationCommand(root *rootOptions) *cobra.Command {
	var configPath, certDir string
	c := &cobra.Command{
		Use:   "check-expiration",
		Short: "List the certificates on this host and when each expires",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkDirFlags(dirFlag{"cert-dir", certDir, phases.DefaultCertDir}); err != nil {
				return err
			}
			c := config.Default()
			if configPath != "" {
				var err error
				if c, err = config.Load(configPath); err != nil {
					return err
				}
			}
			rows, err := certs.Expiration(certDir, c)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(root.streams.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "CERTIFICATE\tEXPIRES\tRESIDUAL TIME\tSIGNED BY\tEXTERNALLY MANAGED")
			now := time.Now()
			for _, r := range rows {
				if r.Missing {
					fmt.Fprintf(w, "%s\t(missing)\t\t%s\t\n", r.Name, r.Signer)
					continue
				}
				left := r.NotAfter.Sub(now)
				residual := "expired"
				if left > 0 {
					residual = fmt.Sprintf("%dd", int(left.Hours()/24))
				}
				ext := "no"
				if r.External {
					ext = "yes"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Name, r.NotAfter.UTC().Format("Jan 02, 2006 15:04 MST"), residual, r.Signer, ext)
			}
			return w.Flush()
		},
	}
	c.Flags().StringVarP(&configPath, "config", "f", "", "path of cluster.toml (default: the defaults)")
	c.Flags().StringVar(&certDir, "cert-dir", phases.DefaultCertDir, "where the certificates live")
	return c
}
