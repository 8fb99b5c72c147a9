package cmd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/internal/overlay"
	"github.com/kforge/kforge/phases"
	"github.com/kforge/kforge/preflight"
	"github.com/kforge/kforge/tokens"
)

// initOptions are the flags of `kforge init` and of every `kforge init phase` command.
type initOptions struct {
	root *rootOptions

	configPath       string
	node             string
	advertiseAddress string
	hostFlags
	skipPhases     []string
	token          string
	tokenTTL       time.Duration
	uploadCerts    bool
	certificateKey string
	wait           time.Duration

	// Overrides of cluster.toml values, for flag-only single-host use.
	kubernetesVersion    string
	controlPlaneEndpoint string
	podCIDR              string
	serviceCIDR          string
	dnsDomain            string
	imageRepository      string
}

func (o *initOptions) addFlags(fs *pflag.FlagSet, whole bool) {
	fs.StringVarP(&o.configPath, "config", "f", "", "path of cluster.toml; without it, a single-host cluster from flags and defaults")
	fs.StringVar(&o.node, "node", "", "which host of the file this is (default: the host with one of this machine's addresses)")
	fs.StringVar(&o.advertiseAddress, "advertise-address", "", "address the apiserver and etcd advertise, without a config file (default: the default route's address)")
	o.hostFlags.addFlags(fs, "")
	fs.StringVar(&o.token, "token", "", "join token to create, id.secret (default: "+envToken+", else a new random one)")
	fs.DurationVar(&o.tokenTTL, "token-ttl", 0, "lifetime of the join token (default 24h; 0 keeps the default, a negative value never expires)")
	fs.BoolVar(&o.uploadCerts, "upload-certs", false, "upload the control-plane certificates, sealed, so that control-plane joins can fetch them")
	fs.StringVar(&o.certificateKey, "certificate-key", "", "hex key that seals the uploaded certificates (default: "+envCertificateKey+", else a new random one)")
	fs.DurationVar(&o.wait, "timeout", phases.DefaultWait, "how long to wait for the control plane and the cluster")
	fs.StringVar(&o.kubernetesVersion, "kubernetes-version", "", "Kubernetes release, overrides kubernetes_version (default "+config.DefaultKubernetesVersion+")")
	fs.StringVar(&o.controlPlaneEndpoint, "control-plane-endpoint", "", "host[:port] in front of every apiserver, overrides control_plane_endpoint")
	fs.StringVar(&o.podCIDR, "pod-network-cidr", "", "pod CIDR, overrides networking.pod_cidr")
	fs.StringVar(&o.serviceCIDR, "service-cidr", "", "service CIDR, overrides networking.service_cidr")
	fs.StringVar(&o.dnsDomain, "service-dns-domain", "", "cluster DNS domain, overrides networking.dns_domain")
	fs.StringVar(&o.imageRepository, "image-repository", "", "registry (and path) for every image, overrides image_repository")
	if whole {
		fs.StringSliceVar(&o.skipPhases, "skip-phases", nil, "phases to skip, e.g. preflight,certs/etcd-ca (see the list above)")
	}
}

func newInitCommand(root *rootOptions) *cobra.Command {
	wf := phases.InitWorkflow()
	o := &initOptions{root: root}
	c := &cobra.Command{
		Use:   "init",
		Short: "Make this host the first control-plane member of a new cluster",
		Long: `Make this host the first control-plane member of a new cluster.

The init workflow runs these phases, in order:

` + wf.Describe() + `
Run one phase (and its sub-phases) alone with "kforge init phase <name>", and skip
phases with --skip-phases name,parent/child. Every phase converges: running it again
changes nothing that is already right.`,
		Example: `  # a single-host cluster from defaults
  kforge init

  # the host "cp1" of a cluster file
  kforge init -f cluster.toml --node cp1

  # show what would be written, write nothing
  kforge init --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), wf, "")
		},
	}
	o.addFlags(c.Flags(), true)
	_ = c.RegisterFlagCompletionFunc("skip-phases", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return wf.Paths(), cobra.ShellCompDirectiveNoFileComp
	})
	c.AddCommand(newPhaseCommand(wf, func() phaseRunner { return &initOptions{root: root} }))
	return c
}

// hostFlags are the flags of init and join that say where this host keeps its files and
// how the run treats it.
type hostFlags struct {
	dryRun          bool
	ignorePreflight []string
	certDir         string
	kubeconfigDir   string
	manifestsDir    string
	bundle          string
}

// addFlags registers the flags; dryRunNote is added to --dry-run's description.
func (h *hostFlags) addFlags(fs *pflag.FlagSet, dryRunNote string) {
	h.addDirFlags(fs, dryRunNote)
	fs.StringSliceVar(&h.ignorePreflight, "ignore-preflight-errors", nil, "preflight checks whose errors become warnings: names, or all")
	fs.StringVar(&h.bundle, "bundle", "", "air-gap bundle directory to install binaries and images from, overrides bundle")
}

// addDirFlags registers --dry-run and the directory flags, for commands that install
// nothing (certs renew).
func (h *hostFlags) addDirFlags(fs *pflag.FlagSet, dryRunNote string) {
	fs.BoolVar(&h.dryRun, "dry-run", false, "write nothing outside a temp dir; print the plan"+dryRunNote)
	fs.StringVar(&h.certDir, "cert-dir", phases.DefaultCertDir, "where the certificates live")
	fs.StringVar(&h.kubeconfigDir, "kubeconfig-dir", phases.DefaultKubeconfigDir, "where the kubeconfig files live")
	fs.StringVar(&h.manifestsDir, "manifests-dir", phases.DefaultManifestsDir, "where the static pod manifests live")
}

// checkDirs applies the directory rule of cluster.toml to the directory flags.
func (h *hostFlags) checkDirs() error {
	return checkDirFlags(
		dirFlag{"cert-dir", h.certDir, phases.DefaultCertDir},
		dirFlag{"kubeconfig-dir", h.kubeconfigDir, phases.DefaultKubeconfigDir},
		dirFlag{"manifests-dir", h.manifestsDir, phases.DefaultManifestsDir},
	)
}

// dirFlag is a flag naming a directory kforge writes into or empties, with its default as
// the example of a valid value.
type dirFlag struct{ name, value, example string }

// checkDirFlags checks directory flags with config.DirProblem, the rule every directory
// setting of cluster.toml follows, and returns every problem joined.
func checkDirFlags(flags ...dirFlag) error {
	var errs []error
	for _, f := range flags {
		if msg := config.DirProblem(f.value, f.example); msg != "" {
			errs = append(errs, fmt.Errorf("--%s: %s", f.name, msg))
		}
	}
	return errors.Join(errs...)
}

// checkAdvertiseAddress checks --advertise-address with the rule of internal_address.
func checkAdvertiseAddress(addr string) error {
	if addr == "" {
		return nil
	}
	if msg := config.NodeIPProblem(addr); msg != "" {
		return fmt.Errorf("--advertise-address: %s", msg)
	}
	return nil
}

// phaseRunner is the options of a workflow command: its flags, and a run of the workflow or
// of one phase of it, with the command's positional arguments.
type phaseRunner interface {
	addFlags(fs *pflag.FlagSet, whole bool)
	runPhases(ctx context.Context, wf *phases.Workflow, only string, args []string) error
}

func (o *initOptions) runPhases(ctx context.Context, wf *phases.Workflow, only string, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected arguments %q", args)
	}
	return o.run(ctx, wf, only)
}

// newPhaseCommand generates `<workflow> phase <name> [<sub>]` from the workflow's tree. A
// parent runs all of its sub-phases, and has an "all" child that does the same.
func newPhaseCommand(wf *phases.Workflow, newRunner func() phaseRunner) *cobra.Command {
	pc := &cobra.Command{
		Use:   "phase <name>",
		Short: "Run one phase of the " + wf.Name + " workflow",
		Long: "Run one phase of the " + wf.Name + " workflow. A phase with sub-phases runs all of them.\n" +
			"A slash path (\"certs/apiserver\") works too.\n\nPhases:\n\n" + wf.Describe(),
		Args: cobra.ArbitraryArgs,
	}
	byPath := map[string]*cobra.Command{"": pc}
	for _, f := range wf.Flatten() {
		parentPath := ""
		if i := strings.LastIndex(f.Path, "/"); i >= 0 {
			parentPath = f.Path[:i]
		}
		c := phaseLeafCommand(wf, newRunner(), f.Path, f.Phase.Name, f.Phase.Short)
		byPath[parentPath].AddCommand(c)
		byPath[f.Path] = c
		if len(f.Phase.Phases) > 0 {
			c.AddCommand(phaseLeafCommand(wf, newRunner(), f.Path, "all", "Run every sub-phase of "+f.Path))
		}
	}
	// The slash form, "init phase certs/apiserver", for scripts.
	o := newRunner()
	o.addFlags(pc.Flags(), false)
	pc.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		if _, ok := wf.Lookup(args[0]); !ok {
			return fmt.Errorf("%w %q; valid phases: %s", phases.ErrUnknownPhase, args[0], strings.Join(wf.Paths(), ", "))
		}
		return o.runPhases(cmd.Context(), wf, args[0], args[1:])
	}
	return pc
}

func phaseLeafCommand(wf *phases.Workflow, o phaseRunner, path, use, short string) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.runPhases(cmd.Context(), wf, path, args)
		},
	}
	o.addFlags(c.Flags(), false)
	return c
}

// run builds the phase data and runs the workflow, or only the phase at `only`.
func (o *initOptions) run(ctx context.Context, wf *phases.Workflow, only string) error {
	d, cleanup, err := o.data()
	if err != nil {
		return err
	}
	defer cleanup()
	start := time.Now()
	if err := wf.Run(ctx, d, only, o.skipPhases); err != nil {
		return err
	}
	if d.DryRun {
		return printPlan(d)
	}
	if only == "" {
		d.Out.Plain("\nkforge init finished in %s: %q is the first control-plane node of cluster %q.\nUse the cluster with: kubectl --kubeconfig %s get nodes",
			time.Since(start).Round(time.Millisecond), d.Node.Name, d.Cluster.Name, filepath.Join(d.KubeconfigDir, "admin.conf"))
	}
	return nil
}

// cluster loads cluster.toml (or the defaults) and applies the flag overrides.
func (o *initOptions) cluster() (*config.Cluster, error) {
	var c *config.Cluster
	if o.configPath != "" {
		var err error
		if c, err = config.Load(o.configPath); err != nil {
			return nil, err
		}
	} else {
		c = config.Default()
	}
	for _, ov := range []struct {
		flag, value string
		field       *string
	}{
		{"kubernetes-version", o.kubernetesVersion, &c.KubernetesVersion},
		{"control-plane-endpoint", o.controlPlaneEndpoint, &c.ControlPlaneEndpoint},
		{"pod-network-cidr", o.podCIDR, &c.Networking.PodCIDR},
		{"service-cidr", o.serviceCIDR, &c.Networking.ServiceCIDR},
		{"service-dns-domain", o.dnsDomain, &c.Networking.DNSDomain},
		{"image-repository", o.imageRepository, &c.ImageRepository},
		{"bundle", o.bundle, &c.Bundle},
	} {
		if ov.value != "" {
			*ov.field = ov.value
		}
	}
	if len(c.Hosts) == 0 {
		name, addr, err := thisHost(o.node, o.advertiseAddress, "--node")
		if err != nil {
			return nil, err
		}
		c.Hosts = []config.Host{{Name: name, Address: addr, Roles: []string{config.RoleControlPlane}}}
	}
	config.SetDefaults(c)
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// data builds the phase data once. On a dry run, cleanup removes the scratch directory.
func (o *initOptions) data() (*phases.Data, func(), error) {
	noop := func() {}
	if err := errors.Join(o.checkDirs(), checkAdvertiseAddress(o.advertiseAddress)); err != nil {
		return nil, noop, err
	}
	c, err := o.cluster()
	if err != nil {
		return nil, noop, err
	}
	local, err := phases.LocalAddresses()
	if err != nil {
		return nil, noop, err
	}
	node, err := phases.SelectNode(c, o.node, local)
	if err != nil {
		return nil, noop, err
	}
	if !node.IsControlPlane() {
		return nil, noop, fmt.Errorf("host %q has no %s role: init runs on a control-plane host; join workers with kforge join", node.Name, config.RoleControlPlane)
	}
	adv := net.ParseIP(node.NodeIP())
	if adv == nil {
		return nil, noop, fmt.Errorf("host %q: internal_address %q must be an IP address to advertise", node.Name, node.NodeIP())
	}
	if o.advertiseAddress != "" && !net.ParseIP(o.advertiseAddress).Equal(adv) {
		return nil, noop, fmt.Errorf("--advertise-address %s differs from host %q's address %s in the file; set internal_address there instead", o.advertiseAddress, node.Name, adv)
	}
	s, err := o.root.hostSpec(c, node, adv, o.hostFlags, o.wait)
	if err != nil {
		return nil, noop, err
	}
	s.Kubeconfig, s.SuperAdmin = "admin.conf", true
	if err := o.bootstrapSpec(&s); err != nil {
		return nil, noop, err
	}
	return hostData(s, o.dryRun)
}

// hostSpec is the DataSpec of a run of init or join on this host.
func (root *rootOptions) hostSpec(c *config.Cluster, node *config.Host, adv net.IP, h hostFlags, wait time.Duration) (phases.DataSpec, error) {
	ignore, err := preflight.ParseIgnore(h.ignorePreflight)
	if err != nil {
		return phases.DataSpec{}, err
	}
	return phases.DataSpec{
		Cluster:          c,
		Node:             node,
		AdvertiseAddress: adv,
		CertDir:          h.certDir,
		KubeconfigDir:    h.kubeconfigDir,
		ManifestsDir:     h.manifestsDir,
		IgnorePreflight:  ignore,
		PreflightSystem:  root.preflight,
		Out:              phases.NewPrinter(root.streams.Out),
		Log:              root.logger(),
		Wait:             wait,
	}, nil
}

// hostData builds the Data of init or join: the real implementations, or on a dry run the
// reporting ones and a scratch root that cleanup removes.
func hostData(s phases.DataSpec, dryRun bool) (*phases.Data, func(), error) {
	if !dryRun {
		return phases.NewData(s, phases.RealDeps(s)), func() {}, nil
	}
	root, cleanup, err := phases.ScratchRoot(s.Out)
	if err != nil {
		return nil, cleanup, err
	}
	return phases.NewData(s, phases.DryRunDeps(s, root)), cleanup, nil
}

// bootstrapSpec fills the join token and certificate key from the flags.
func (o *initOptions) bootstrapSpec(s *phases.DataSpec) error {
	if o.token == "" {
		o.token = o.root.secrets.token
	}
	if o.certificateKey == "" {
		o.certificateKey = o.root.secrets.certificateKey
	}
	if o.token != "" {
		t, err := tokens.Parse(o.token)
		if err != nil {
			return fmt.Errorf("--token: %w", err)
		}
		s.Token = t
	}
	s.TokenTTL = o.tokenTTL
	s.UploadCerts = o.uploadCerts
	if o.certificateKey != "" {
		k, err := bootstrap.ParseCertificateKey(o.certificateKey)
		if err != nil {
			return fmt.Errorf("--certificate-key: %w", err)
		}
		s.CertificateKey = k
	}
	return nil
}

// thisHost returns this machine's node name and address: the flags' values, else the
// hostname (lower-cased) and the default route's address. flag names the name flag in
// errors.
func thisHost(name, addr, flag string) (string, string, error) {
	if name == "" {
		hn, err := os.Hostname()
		if err != nil {
			return "", "", fmt.Errorf("reading the hostname (pass %s): %w", flag, err)
		}
		name = strings.ToLower(hn)
	}
	if addr == "" {
		ip, err := phases.DefaultAdvertiseAddress()
		if err != nil {
			return "", "", err
		}
		addr = ip.String()
	}
	return name, addr, nil
}

// printPlan lists what a dry run would create or change on this host, with a diff of
// each text file (secrets left out), and the static pods that would (re)start.
func printPlan(d *phases.Data) error {
	changes, err := d.PlannedChanges()
	if err != nil {
		return fmt.Errorf("comparing the dry run's files with the host's: %w", err)
	}
	if len(changes) == 0 {
		d.Out.Plain("\n[dry-run] no file on this host would change")
		return nil
	}
	d.Out.Plain("\n[dry-run] a real run would change %d files on this host:", len(changes))
	var pods []string
	for _, c := range changes {
		mode := c.NewMode
		if c.Action == overlay.Mode {
			mode = c.OldMode + " -> " + c.NewMode
		}
		note := ""
		if c.Secret {
			note = "  (holds a key or credential: content not shown)"
		}
		d.Out.Plain("  %-6s  %s  %s%s", c.Action, mode, c.Path, note)
		for _, line := range c.DiffLines() { // a new file's content: in -o json
			d.Out.Plain("      %s", line)
		}
	}
	for _, c := range changes {
		if filepath.Dir(c.Path) == filepath.Clean(d.ManifestsDir) {
			pods = append(pods, strings.TrimSuffix(filepath.Base(c.Path), ".yaml"))
		}
	}
	if len(pods) > 0 {
		d.Out.Plain("\n[dry-run] the kubelet would (re)start these static pods from %s: %s", d.ManifestsDir, strings.Join(pods, ", "))
	}
	return nil
}
