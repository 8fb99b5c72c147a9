package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/fleet"
	"github.com/kforge/kforge/host"
	"github.com/kforge/kforge/internal/fileutil"
	"github.com/kforge/kforge/kubeconfig"
	"github.com/kforge/kforge/phases"
	"github.com/kforge/kforge/servingcsr"
)

// sshOptions are the flags that say how kforge reaches hosts over SSH.
type sshOptions struct {
	identity          []string
	knownHosts        string
	acceptNewHostKeys bool
}

func (s *sshOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringSliceVarP(&s.identity, "identity", "i", nil, "private key file(s) for SSH (default: hosts[].ssh.key, else ~/.ssh/id_ed25519 and ~/.ssh/id_rsa; ssh-agent is used when SSH_AUTH_SOCK is set)")
	fs.StringVar(&s.knownHosts, "known-hosts", "~/.ssh/known_hosts", "known_hosts file the hosts' keys are checked against and new keys are recorded in (hosts[].ssh.known_hosts wins); /etc/ssh/ssh_known_hosts is checked too, never written")
	fs.BoolVar(&s.acceptNewHostKeys, "accept-new-host-keys", false, "trust and record the key of a host known_hosts does not know yet (a changed key is always refused; with --dry-run, trust it for this run and record nothing)")
}

// connect returns the function that opens a host of the file over SSH. The hosts it opens
// through the same bastion share one connection to it. On a dry run it writes no
// known_hosts: a new key it accepts is trusted for this run only.
func (s *sshOptions) connect(out *phases.Printer, dryRun bool) func(ctx context.Context, h *config.Host) (host.Host, error) {
	bastions := &host.Bastions{}
	return func(ctx context.Context, h *config.Host) (host.Host, error) {
		cfg := host.SSHConfig{
			Name:              h.Name,
			Address:           h.Address,
			Port:              h.SSH.Port,
			User:              h.SSH.User,
			KeyFiles:          s.keys(h),
			UseAgent:          os.Getenv("SSH_AUTH_SOCK") != "",
			KnownHostsPath:    s.knownHosts,
			AcceptNewHostKeys: s.acceptNewHostKeys,
			DryRun:            dryRun,
		}
		if h.SSH.KnownHosts != "" {
			cfg.KnownHostsPath = h.SSH.KnownHosts
		}
		cfg.OnNewHostKey = func(hostname, fingerprint string) {
			if dryRun {
				out.Phase(h.Name, "would trust the new host key %s of %s (--accept-new-host-keys); dry run: not recorded in %s", fingerprint, hostname, cfg.KnownHostsPath)
				return
			}
			out.Phase(h.Name, "trusting the new host key %s of %s (--accept-new-host-keys); recorded in %s", fingerprint, hostname, cfg.KnownHostsPath)
		}
		if b := h.SSH.Bastion; b != "" {
			bc, err := bastionConfig(b)
			if err != nil {
				return nil, err
			}
			cfg.Bastion = bc
			cfg.Bastions = bastions
		}
		return host.Dial(ctx, cfg)
	}
}

func (s *sshOptions) keys(h *config.Host) []string {
	if h.SSH.Key != "" {
		return []string{h.SSH.Key}
	}
	if len(s.identity) > 0 {
		return s.identity
	}
	var out []string
	home, _ := os.UserHomeDir()
	for _, k := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
		p := filepath.Join(home, ".ssh", k)
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// bastionConfig reads "[user@]host[:port]".
func bastionConfig(s string) (*host.SSHConfig, error) {
	c := &host.SSHConfig{Name: "bastion " + s}
	if i := strings.LastIndex(s, "@"); i >= 0 {
		c.User, s = s[:i], s[i+1:]
	}
	if h, p, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("bastion %q: port %q: %w", s, p, err)
		}
		c.Address, c.Port = h, n
	} else {
		c.Address = strings.Trim(s, "[]")
	}
	return c, nil
}

// fleetFlags are the flags of the commands that work on every host of a file over SSH
// (up, status): the file, how many hosts at once, the summary's format, and SSH.
type fleetFlags struct {
	root        *rootOptions
	ssh         sshOptions
	configPath  string
	concurrency int
	output      string
}

func (o *fleetFlags) addFlags(fs *pflag.FlagSet, concurrency string) {
	fs.StringVarP(&o.configPath, "config", "f", "", "path of cluster.toml (required)")
	fs.IntVar(&o.concurrency, "concurrency", host.DefaultConcurrency, concurrency)
	fs.StringVarP(&o.output, "output", "o", "text", "summary format: text or json")
	o.ssh.addFlags(fs)
}

// load checks the flags and reads the file. Progress goes to the printer it returns:
// stdout, or stderr when stdout carries the JSON summary.
func (o *fleetFlags) load() (*config.Cluster, *phases.Printer, error) {
	if o.configPath == "" {
		return nil, nil, errors.New("-f cluster.toml is required")
	}
	if o.output != "text" && o.output != "json" {
		return nil, nil, fmt.Errorf("--output %q: want text or json", o.output)
	}
	c, err := config.Load(o.configPath)
	if err != nil {
		return nil, nil, err
	}
	if len(c.Hosts) == 0 {
		return nil, nil, fmt.Errorf("%s has no hosts: add a [[hosts]] table for each machine", o.configPath)
	}
	progress := o.root.streams.Out
	if o.output == "json" {
		progress = o.root.streams.Err
	}
	return c, phases.NewPrinter(progress), nil
}

type upOptions struct {
	fleetFlags
	maxUnavailable  int
	dryRun          bool
	prune           bool
	initNewCluster  bool
	kubeconfigOut   string
	ignorePreflight []string
	wait            time.Duration
	skipPhases      []string
}

func (o *upOptions) addFlags(fs *pflag.FlagSet, whole bool) {
	o.fleetFlags.addFlags(fs, "how many hosts are prepared and joined at once")
	fs.IntVar(&o.maxUnavailable, "max-unavailable", 1, "how many workers a configuration change restarts at once (control-plane hosts: always one)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "connect and read the cluster, print each host's plan and the Node and add-on changes, change nothing")
	fs.BoolVar(&o.prune, "prune", false, "delete the Nodes of worker hosts that are in the cluster but no longer in the file")
	fs.BoolVar(&o.initNewCluster, "init-new-cluster", false, "start a new cluster even though up cannot tell that there is none (control-plane hosts unreachable, or holding cluster state while no apiserver answers), and replace a local admin kubeconfig of another cluster (kept as .old)")
	fs.StringVar(&o.kubeconfigOut, "kubeconfig-out", "", "where to write the admin kubeconfig (default ./<cluster>-admin.conf)")
	fs.StringSliceVar(&o.ignorePreflight, "ignore-preflight-errors", nil, "preflight checks whose errors become warnings on every host")
	fs.DurationVar(&o.wait, "timeout", phases.DefaultWait, "how long each host's init and join wait for the cluster, and up for the kubelets' serving certificates (kubelet.server_tls_bootstrap)")
	if whole {
		fs.StringSliceVar(&o.skipPhases, "skip-phases", nil, "phases to skip, e.g. join-workers (see the list above)")
	}
}

func (o *upOptions) runPhases(ctx context.Context, wf *phases.Workflow, only string, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected arguments %q", args)
	}
	return o.run(ctx, wf, only)
}

func newUpCommand(root *rootOptions) *cobra.Command {
	wf := phases.UpWorkflow()
	o := &upOptions{fleetFlags: fleetFlags{root: root}}
	c := &cobra.Command{
		Use:   "up -f cluster.toml",
		Short: "Make the hosts of cluster.toml a cluster, over SSH",
		Long: `Make the hosts of cluster.toml a cluster, over SSH, from this machine.

kforge up connects to every host (host keys checked against known_hosts) and asks the
cluster which hosts are already in it. On every other host it
installs kforge, the cluster.toml and the parts of the bundle the host needs, and runs the
pre-flight checks; then it runs "kforge init" on the first control-plane host if there is
no cluster yet, joins the other control-plane hosts one at a time, and the workers in
parallel, each with its own join token, deleted once the host has joined.

Each host already in the cluster is asked for its plan ("kforge reconfigure --dry-run"
on the host: it compares what the file asks for with its files and sends back only what
differs, with a diff per file): containerd's and the kubelet's configuration, and on
control-plane hosts the static pods of etcd and the control plane and the files they
read, drift edited by hand included. The changes are then applied one host at a time,
control-plane hosts first, then workers in batches of --max-unavailable; each host waits
until what it restarted is healthy again, and a host that fails stops the rollout (run
up again to go on). Certificates and kubeconfigs are not changed this way. With
kubelet.server_tls_bootstrap = true it approves each kubelet's serving CSR that asks for
exactly its own Node's names and addresses (others are left pending, with why), waits
until every kubelet serves a certificate the cluster CA signed (dialled from this
machine), and only then gives each apiserver, one at a time,
--kubelet-certificate-authority. Then, through
the cluster's admin client, it sets every Node's labels and taints from the file, applies
the add-ons (server-side apply: a changed DNS, kube-proxy or flannel setting reaches the
cluster and rolls their pods) and stores the file's configuration in
kube-system/kubeadm-config. It ends by writing the admin kubeconfig here and printing a
summary.

A change the running cluster cannot take (networking.pod_cidr, service_cidr, dns_domain,
the cluster name, local versus external etcd) is refused in the plan, before anything
changes. With --dry-run nothing is written: the plan shows each host's action and diff, the labels
and taints each Node would gain or lose, and each add-on object that would be created or
changed, field by field (a server-side dry run); --output json carries them too.

up never makes a second cluster by accident: it runs init only when every control-plane
host was reached and none holds cluster state (a CA, etcd data, kubelet.conf, admin.conf,
static pod manifests). A control-plane host it cannot reach, or one that holds state while
no apiserver answers, stops it with what to check; --init-new-cluster is the deliberate
way past that. An admin.conf the API refuses (401, 403, a certificate of another CA)
always stops it. The admin kubeconfig of another cluster here is not overwritten without
--init-new-cluster.

A cluster whose certificates expired (while it was off) comes back with one up: it reads
every host's certificate expiry over SSH, by the host's clock, and before anything asks
the API it renews each expired control plane offline ("kforge certs renew all" there, one
host at a time, each apiserver ready before the next), refreshes the admin kubeconfig, then
re-bootstraps each kubelet whose client certificate expired with a short-lived token of its
own. The plan names them; --output json lists them under certificate_recovery. An expired
CA stops it with what to do: up never makes a new CA.

The up workflow runs these phases, in order:

` + wf.Describe() + `
Run one phase alone with "kforge up phase <name> -f cluster.toml" (it connects, detects
and plans first), and skip phases with --skip-phases.

Run it again and it converges: hosts added to the file are joined; hosts removed from the
file are reported, and with --prune their Nodes are deleted. A host that fails does not
stop the others; the summary lists every failure and the exit status is non-zero. The
cluster's state lives in the cluster, not in a local file.`,
		Example: `  # bring the cluster up, trusting hosts known_hosts does not know yet
  kforge up -f cluster.toml --accept-new-host-keys

  # what would happen, without changing anything
  kforge up -f cluster.toml --dry-run

  # install kforge and the bundle on every host that needs them, and stop there
  kforge up phase prepare-hosts -f cluster.toml

  # everything but the workers
  kforge up -f cluster.toml --skip-phases join-workers

  # for pipelines
  kforge up -f cluster.toml --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd.Context(), wf, "") },
	}
	o.addFlags(c.Flags(), true)
	_ = c.MarkFlagRequired("config")
	_ = c.RegisterFlagCompletionFunc("skip-phases", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return wf.Paths(), cobra.ShellCompDirectiveNoFileComp
	})
	c.AddCommand(newPhaseCommand(wf, func() phaseRunner { return &upOptions{fleetFlags: fleetFlags{root: root}} }))
	return c
}

// fleetData builds the Data of a workflow over the hosts of a file, up or reset-hosts, from
// s with its Cluster, Out and Fleet options.
func (root *rootOptions) fleetData(s phases.DataSpec, ssh *sshOptions, dryRun bool) (*phases.Data, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding the kforge binary to install on the hosts: %w", err)
	}
	s.Log = root.logger()
	s.Fleet.Cluster = s.Cluster
	s.Fleet.Kforge = self
	s.Fleet.Connect = ssh.connect(s.Out, dryRun)
	if root.verbosity > 0 {
		s.Fleet.HostLog = root.streams.Err
	}
	// The fleet acts on the hosts over SSH; this machine lends the run only its clock.
	return phases.NewData(s, phases.Deps{DryRun: dryRun, Now: time.Now}), nil
}

func (o *upOptions) run(ctx context.Context, wf *phases.Workflow, only string) error {
	c, out, err := o.load()
	if err != nil {
		return err
	}
	d, err := o.root.fleetData(phases.DataSpec{Cluster: c, Out: out, Prune: o.prune, InitNewCluster: o.initNewCluster, Fleet: fleet.Options{
		Concurrency:     o.concurrency,
		MaxUnavailable:  o.maxUnavailable,
		IgnorePreflight: o.ignorePreflight,
		Timeout:         o.wait,
	}}, &o.ssh, o.dryRun)
	if err != nil {
		return err
	}
	upErr := wf.Run(ctx, d, only, o.skipPhases)
	rep := d.CloseFleet(ctx)
	if rep == nil {
		return upErr
	}
	var writeErr error
	if len(rep.AdminKubeconfig) > 0 && !o.dryRun {
		path := o.kubeconfigOut
		if path == "" {
			path = c.Name + "-admin.conf"
		}
		if writeErr = writeAdminKubeconfig(path, rep.AdminKubeconfig, o.initNewCluster, out); writeErr == nil {
			out.Plain("admin kubeconfig: %s", path)
			defer out.Plain("Use the cluster with: kubectl --kubeconfig %s get nodes", path)
		}
	}
	if err := printFleetReport(o.root.streams.Out, rep, o.output); err != nil {
		return err
	}
	failed := rep.Failed()
	if failed != nil && upErr == nil {
		failed = fmt.Errorf("kforge up failed on some hosts; the others are done, and running it again converges:\n%w", failed)
	}
	return errors.Join(upErr, failed, writeErr)
}

// writeAdminKubeconfig writes the cluster's admin kubeconfig to path. A file there that is
// not the kubeconfig of the same cluster (the same CA) is another cluster's: it is replaced
// only with replace (--init-new-cluster), and then kept as path.old, and out says so.
func writeAdminKubeconfig(path string, admin []byte, replace bool, out *phases.Printer) error {
	newCfg, err := clientcmd.Load(admin)
	if err != nil {
		return fmt.Errorf("reading the cluster's admin kubeconfig: %w", err)
	}
	pin, err := kubeconfig.CAPin(newCfg, nil)
	if err != nil {
		return fmt.Errorf("reading the cluster's admin kubeconfig: %w", err)
	}
	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("reading the existing admin kubeconfig %s: %w", path, err)
	default:
		var oldPin string
		oldCfg, err := clientcmd.Load(old)
		if err == nil {
			oldPin, err = kubeconfig.CAPin(oldCfg, nil)
		}
		if err != nil || oldPin != pin {
			what := "the admin kubeconfig of another cluster (CA " + oldPin + "; this cluster's is " + pin + ")"
			if err != nil {
				what = "no kubeconfig of this cluster (" + err.Error() + ")"
			}
			if !replace {
				return fmt.Errorf("not writing the admin kubeconfig to %s: it holds %s.\n"+
					"Move it away, or name another file with --kubeconfig-out, and run up again (it writes the file and changes nothing else); "+
					"or pass --init-new-cluster to replace it (it is kept as %s.old)", path, what, path)
			}
			old := fileutil.FreeName(path+".old", nil)
			if err := os.Rename(path, old); err != nil {
				return fmt.Errorf("keeping the existing admin kubeconfig: %w", err)
			}
			out.Plain("WARNING: %s held %s: replaced (--init-new-cluster); the old file is %s", path, what, old)
		}
	}
	if _, err := fileutil.WriteAtomic(path, admin, 0o600, 0o700); err != nil {
		return fmt.Errorf("writing the admin kubeconfig: %w", err)
	}
	return nil
}

// printSummary writes a fleet command's summary v: as JSON, or as the table that table
// writes, its columns aligned.
func printSummary(w io.Writer, format string, v any, table func(tw io.Writer)) error {
	if format == "json" {
		return writeJSON(w, v)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

func printFleetReport(w io.Writer, r *fleet.Report, format string) error {
	return printSummary(w, format, r, func(tw io.Writer) {
		fmt.Fprintln(tw, "\nHOST\tROLE\tACTION\tRESULT\tDURATION\tUPLOADED")
		for _, h := range r.Hosts {
			res := h.Result
			if h.Error != "" && h.Result != fleet.ResultFailed {
				res += ": " + h.Error
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.1f MiB\n", h.Host, h.Role, h.Action, res, h.Duration.Round(100*time.Millisecond), float64(h.Uploaded)/(1<<20))
		}
		fmt.Fprintf(tw, "\ncluster %q: %d hosts in %.1fs\n", r.Cluster, len(r.Hosts), r.Seconds)
		if renewed := r.RenewedNames(); renewed != "" {
			fmt.Fprintf(tw, "renewed the certificates of %s\n", renewed)
		}
		if s := r.ServingCerts; s != nil {
			fmt.Fprintln(tw, servingSummary(s, r.DryRun))
		}
	})
}

// servingSummary is the summary's line about the kubelets' serving certificates.
func servingSummary(s *fleet.ServingCertsReport, dryRun bool) string {
	approved, pending := 0, 0
	for _, c := range s.CSRs {
		switch c.Verdict {
		case servingcsr.Approve:
			approved++
		case servingcsr.Pending:
			pending++
		}
	}
	verb := "approved"
	if dryRun {
		verb = "would approve"
	}
	line := fmt.Sprintf("kubelet serving certificates: %s %d, left %d pending; ", verb, approved, pending)
	switch {
	case s.VerifyKubelets && dryRun:
		return line + "the apiserver would verify kubelets with the cluster CA"
	case s.VerifyKubelets:
		return line + "the apiserver verifies kubelets with the cluster CA"
	}
	return line + "the apiserver does not verify kubelets yet: " + s.Note
}
