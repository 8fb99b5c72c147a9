package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/fleet"
	"github.com/kforge/kforge/phases"
)

func newCertsCommand(root *rootOptions) *cobra.Command {
	c := &cobra.Command{
		Use:   "certs",
		Short: "Work with the cluster's certificates and the certificate key",
		Args:  cobra.NoArgs,
	}
	c.AddCommand(newCertificateKeyCommand(root), newCheckExpirationCommand(root), newRenewCommand(root),
		newRenewLoopCommand(root), newCertsStatusCommand(root), newApproveServingCommand(root))
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
	var configPath, certDir, kubeconfigDir, output string
	c := &cobra.Command{
		Use:   "check-expiration",
		Short: "List the certificates on this host and when each expires",
		Long: `List when each certificate of this host expires, and how long it has left: the leaf
certificates of the cluster's table, the client certificates embedded in admin.conf,
super-admin.conf, controller-manager.conf and scheduler.conf, then the CAs, as kubeadm's
check-expiration lays them out. EXTERNALLY MANAGED is "yes" for a certificate whose CA
key is not on this host: 'kforge certs renew' cannot renew it. The apiserver need not be
up.

With -o json it prints {"certificates": [...]} (certs.ExpiryReport): one object per
certificate of the table in table order (CAs included), then one per kubeconfig: name,
path, missing (true when the file does not exist), not_after (RFC 3339, absent when
missing), residual_seconds (how long it has left, negative once expired; absent when
missing), signer (the signing CA's name, absent for a CA) and external (the certificate
is, or is signed by, a CA whose key is absent: kforge cannot renew it).`,
		Example: `  kforge certs check-expiration -f /etc/kforge/cluster.toml
  kforge certs check-expiration -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output %q: want text or json", output)
			}
			if err := checkDirFlags(dirFlag{"cert-dir", certDir, phases.DefaultCertDir}, dirFlag{"kubeconfig-dir", kubeconfigDir, phases.DefaultKubeconfigDir}); err != nil {
				return err
			}
			c := config.Default()
			if configPath != "" {
				var err error
				if c, err = config.Load(configPath); err != nil {
					return err
				}
			}
			rows, err := phases.Expiration(certDir, kubeconfigDir, c, time.Now())
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(root.streams.Out, certs.ExpiryReport{Certificates: rows})
			}
			return printExpiration(root.streams.Out, rows)
		},
	}
	c.Flags().StringVarP(&configPath, "config", "f", "", "path of cluster.toml (default: the defaults)")
	c.Flags().StringVar(&certDir, "cert-dir", phases.DefaultCertDir, "where the certificates live")
	c.Flags().StringVar(&kubeconfigDir, "kubeconfig-dir", phases.DefaultKubeconfigDir, "where the kubeconfig files live")
	c.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return c
}

// printExpiration prints the rows as two tables, the certificates then the CAs, as
// kubeadm's check-expiration does.
func printExpiration(out io.Writer, rows []certs.ExpiryRow) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	yesNo := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	expires := func(r certs.ExpiryRow) (string, string) {
		switch {
		case r.Missing:
			return "(missing)", ""
		case r.ResidualSeconds <= 0:
			return r.NotAfter.UTC().Format("Jan 02, 2006 15:04 MST"), "expired"
		}
		return r.NotAfter.UTC().Format("Jan 02, 2006 15:04 MST"), certs.RoundDuration(time.Duration(r.ResidualSeconds) * time.Second)
	}
	fmt.Fprintln(w, "CERTIFICATE\tEXPIRES\tRESIDUAL TIME\tCERTIFICATE AUTHORITY\tEXTERNALLY MANAGED")
	for _, r := range rows {
		if r.Signer != "" {
			exp, left := expires(r)
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Name, exp, left, r.Signer, yesNo(r.External))
		}
	}
	fmt.Fprintln(w, "\nCERTIFICATE AUTHORITY\tEXPIRES\tRESIDUAL TIME\tEXTERNALLY MANAGED")
	for _, r := range rows {
		if r.Signer == "" {
			exp, left := expires(r)
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.Name, exp, left, yesNo(r.External))
		}
	}
	return w.Flush()
}

// renewOptions are the flags of `kforge certs renew`.
type renewOptions struct {
	root       *rootOptions
	configPath string
	node       string
	hostFlags
	wait       time.Duration
	output     string
	ifDue      bool
	skipPhases []string
	// every and randomDelay are renew-loop's schedule.
	every, randomDelay time.Duration
}

func newRenewCommand(root *rootOptions) *cobra.Command {
	o := &renewOptions{root: root}
	targets := phases.RenewTargets()
	var names []string
	for _, t := range targets {
		names = append(names, t.Name)
	}
	c := &cobra.Command{
		Use:   "renew all|<name>...",
		Short: "Renew the certificates and kubeconfigs of this control-plane host",
		Long: `Renew, on a control-plane host, the leaf certificates of the cluster's PKI and the client
certificates embedded in admin.conf, super-admin.conf, controller-manager.conf and
scheduler.conf: all of them, or those named.

Each certificate is signed again by its CA on disk for the key it already has, valid for
certificates.cert_validity from now, with the names cluster.toml gives now (an
apiserver.cert_sans entry added since is picked up). A kubeconfig keeps its server, its CA
and its user; only its client certificate changes. The apiserver need not be up: renewal
uses only the files of this host, so it also brings back a control plane whose
certificates have expired. Every file is written whole (atomically): a run that is killed
leaves each certificate either old or renewed, and running again converges.

kubelet-client, the kubelet's own client certificate, is renewed only once it has expired
(until then the kubelet rotates it): a new key and certificate for system:node:<node>,
signed by the CA, laid out as the kubelet keeps it, then the kubelet restarts. A kubelet
whose certificate expired does not start, and without it no static pod runs.

A CA is never renewed, and a CA that has expired, or would expire before the renewed
certificates, stops the run with how long it has left. In external-CA mode (a CA
certificate without its key), what kforge can sign is renewed, the rest is listed with its
expiry, and the run exits non-zero after restarting what it did renew.

The static pods that read a renewed file are then restarted, and only those: each
manifest's kforge.io/config-hash covers the certificates and kubeconfigs its component
reads, so the manifests are written again, the kubelet restarts the pods whose manifest
changed, and the run waits until they have restarted and are healthy. Renewal always
renews: a second run signs new certificates again. In a cluster of several control planes
with a local etcd whose certificates all expired, the first renewals cannot get healthy on
their own (etcd needs a quorum of members with valid certificates): pass --skip-phases
wait-control-plane on the first floor(n/2) of n hosts, or let kforge up do it in order.

With --if-due (only with all) it renews only when some certificate or kubeconfig it
renews has less than certificates.renew_before left, or has expired, and otherwise prints
"not due: earliest <name> expires in X (renew_before Y)" and changes nothing; this is the
check the kforge-certs-renew timer (or, without systemd, the supervised renew-loop) runs.
A CA that has expired or expires within renew_before stops it with how long is left and
what to do. Before it restarts anything it takes the Lease kube-system/kforge-certs-renew,
so that one control plane restarts at a time, and releases it once its components are
healthy (without the API it renews offline, without the lease). Each run is recorded in
` + phases.CertsRenewalState + ` (see 'kforge certs status').

Names: all, ` + strings.Join(names, ", ") + `.

The certs-renew workflow runs these phases, in order:

` + phases.CertsRenewWorkflow().Describe(),
		Example: `  # what would be renewed and restarted, writing nothing
  kforge certs renew all -f cluster.toml --dry-run
  # renew everything on this control-plane host
  kforge certs renew all -f cluster.toml
  # renew the apiserver's serving certificate (after adding an apiserver.cert_sans entry) and admin.conf
  kforge certs renew apiserver admin.conf -f cluster.toml --node cp1
  # the result for a script
  kforge certs renew all -f cluster.toml -o json
  # renew only if something has less than certificates.renew_before left
  kforge certs renew all --if-due -f /etc/kforge/certs-renew.toml`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return fmt.Errorf("name what to renew: all, or any of %s", strings.Join(names, ", "))
			}
			return o.run(cmd.Context(), args)
		},
	}
	o.addFlags(c.PersistentFlags())
	c.AddCommand(&cobra.Command{
		Use:   "all",
		Short: "Renew every certificate and kubeconfig of this host",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return o.run(cmd.Context(), []string{"all"}) },
	})
	for _, t := range targets {
		c.AddCommand(&cobra.Command{
			Use:   t.Name + " [<name>...]",
			Short: t.Short,
			Args:  cobra.ArbitraryArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				return o.run(cmd.Context(), append([]string{t.Name}, args...))
			},
		})
	}
	return c
}

func (o *renewOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&o.configPath, "config", "f", "", "path of cluster.toml (required)")
	fs.StringVar(&o.node, "node", "", "which host of the file this is (default: the host with one of this machine's addresses)")
	o.hostFlags.addDirFlags(fs, ": what would be renewed and restarted")
	fs.DurationVar(&o.wait, "timeout", phases.DefaultWait, "how long to wait for each restarted component to be healthy")
	fs.StringVarP(&o.output, "output", "o", "text", "text, or json: what was renewed, left to you and restarted (progress then goes to stderr)")
	fs.BoolVar(&o.ifDue, "if-due", false, "renew only when a certificate has less than certificates.renew_before left (with all)")
	fs.StringSliceVar(&o.skipPhases, "skip-phases", nil, "phases to skip, e.g. wait-control-plane on the first control plane of an HA cluster whose certificates all expired (see the list above)")
}

func (o *renewOptions) run(ctx context.Context, names []string) error {
	if o.output != "text" && o.output != "json" {
		return fmt.Errorf("--output %q: want text or json", o.output)
	}
	if err := phases.CheckRenewNames(names); err != nil {
		return err
	}
	if o.configPath == "" {
		return errors.New("--config (-f) is required: it says which host this is and the names each certificate carries")
	}
	if o.ifDue && (len(names) != 1 || names[0] != "all") {
		return fmt.Errorf("--if-due renews everything or nothing: use it with all, not %s", strings.Join(names, " "))
	}
	if o.ifDue && o.dryRun {
		return errors.New("--if-due with --dry-run: run 'kforge certs status' to see whether renewal is due, or --dry-run alone to see what a renewal would do")
	}
	d, cleanup, err := o.root.fileHostData(o.configPath, o.node, o.hostFlags, o.wait, o.output == "json")
	if err != nil {
		return err
	}
	defer cleanup()
	if !d.Join.ControlPlane {
		return fmt.Errorf("host %q is not a control-plane host in %s: only control planes hold the certificates renew renews", d.Node.Name, o.configPath)
	}
	if o.ifDue {
		rb := d.Cluster.Certificates.AutoRenewBefore()
		var every time.Duration
		if rb > 0 {
			every = certs.CheckInterval(rb)
		}
		st, err := phases.RenewIfDue(ctx, d, every)
		if o.output == "json" {
			if jerr := writeJSON(o.root.streams.Out, st); jerr != nil {
				return jerr
			}
		}
		return err
	}
	d.Renew.Only = names
	runErr := phases.CertsRenewWorkflow().Run(ctx, d, "", o.skipPhases)
	var ext *phases.ExternalRenewalError
	if runErr != nil && !errors.As(runErr, &ext) {
		return runErr
	}
	report, err := d.RenewReport()
	if err != nil {
		return err
	}
	if o.output == "json" {
		if err := writeJSON(o.root.streams.Out, report); err != nil {
			return err
		}
		return runErr
	}
	if d.DryRun {
		if err := printPlan(d); err != nil {
			return err
		}
		d.Out.Plain("[dry-run] a real run would renew %d certificates and kubeconfigs", len(report.Renewed))
		return runErr
	}
	restarted := "nothing"
	if len(report.Restarts) > 0 {
		restarted = strings.Join(report.Restarts, ", ")
	}
	d.Out.Plain("\nrenewed %d certificates and kubeconfigs on %q; restarted: %s", len(report.Renewed), d.Node.Name, restarted)
	return runErr
}

func newApproveServingCommand(root *rootOptions) *cobra.Command {
	var kubeconfigPath, certDir, output string
	var dryRun bool
	var wait time.Duration
	c := &cobra.Command{
		Use:   "approve-serving",
		Short: "Approve the kubelets' serving certificates for their own names and addresses (kubelet.server_tls_bootstrap)",
		Long: `Approve, from a control-plane host, the serving certificates kubelets ask for when
kubelet.server_tls_bootstrap = true, as kforge up does; for clusters made with init and
join by hand.

A pending CertificateSigningRequest of signer kubernetes.io/kubelet-serving is approved
only when it comes from a node (user system:node:<name>, group system:nodes), asks for
subject CN system:node:<name> and O system:nodes, for the usages digital signature and
server auth (key encipherment allowed), and for DNS names and IPs that are all among that
Node's own addresses (status.addresses: Hostname; InternalIP, ExternalIP), with no email
or URI. Every other one is left pending, and the reason printed: approve it yourself
(kubectl certificate approve) if you know why it differs. A request that is not a
well-formed, self-signed certificate request is denied.

Then it dials every Node's kubelet (the address and port the apiserver uses) trusting only
the cluster CA, for up to --wait, reviewing new CSRs meanwhile. Once every kubelet serves
a certificate the cluster CA signed, it records so in ` + fleet.KubeletServingMarker + `;
the next 'kforge reconfigure -f cluster.toml' on this host then gives the apiserver
--kubelet-certificate-authority (with kubelet.server_tls_bootstrap on). Run it on each
control-plane host. It exits non-zero, naming them, while some kubelet is not verified.

With -o json it prints {dry_run, csrs: [{name, node, verdict, reason, done}], kubelets:
[{node, address, verified, error}], note, recorded}.`,
		Example: `  # what would be approved, and whether every kubelet already serves a CA-signed certificate
  kforge certs approve-serving --dry-run
  # approve, wait for the kubelets, then have this apiserver verify them
  kforge certs approve-serving && kforge reconfigure -f /etc/kforge/cluster.toml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output %q: want text or json", output)
			}
			if err := checkDirFlags(dirFlag{"cert-dir", certDir, phases.DefaultCertDir}); err != nil {
				return err
			}
			ca, err := os.ReadFile(filepath.Join(certDir, "ca.crt"))
			if err != nil {
				return fmt.Errorf("reading the cluster CA (--cert-dir): %w; run this on a control-plane host", err)
			}
			cs, err := phases.ClientFromKubeconfig(kubeconfigPath)
			if err != nil {
				return fmt.Errorf("%w; run this on a control-plane host, or give an admin kubeconfig with --kubeconfig", err)
			}
			progress := root.streams.Out
			if output == "json" {
				progress = root.streams.Err
			}
			rep, runErr := phases.ApproveServing(cmd.Context(), phases.ApproveServingSpec{
				Client: cs, CA: ca, Marker: fleet.KubeletServingMarker, DryRun: dryRun, Wait: wait,
				Out: phases.NewPrinter(progress).Named("approve-serving"),
			})
			if output == "json" {
				if err := writeJSON(root.streams.Out, rep); err != nil {
					return err
				}
			}
			return runErr
		},
	}
	c.Flags().StringVar(&kubeconfigPath, "kubeconfig", filepath.Join(phases.DefaultKubeconfigDir, "admin.conf"), "an admin kubeconfig")
	c.Flags().StringVar(&certDir, "cert-dir", phases.DefaultCertDir, "where ca.crt, the cluster CA, lives")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "say what would be approved and recorded; change nothing")
	c.Flags().DurationVar(&wait, "wait", 2*time.Minute, "how long to wait for every kubelet to serve a certificate the cluster CA signed; 0 looks once")
	c.Flags().StringVarP(&output, "output", "o", "text", "text, or json: the CSRs, the kubelets and what was recorded (progress then goes to stderr)")
	return c
}
