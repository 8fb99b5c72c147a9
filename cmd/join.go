package cmd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/discovery"
	"github.com/kforge/kforge/phases"
	"github.com/kforge/kforge/tokens"
)

// Environment variables join reads secrets from when the flags are not given, so that they
// stay out of process listings and shell history.
const (
	envToken          = "KFORGE_TOKEN"
	envCertificateKey = "KFORGE_CERTIFICATE_KEY"
)

// joinOptions are the flags of `kforge join` and of every `kforge join phase` command.
type joinOptions struct {
	root *rootOptions

	configPath       string
	node             string
	advertiseAddress string
	controlPlane     bool
	token            string
	caHashes         []string
	unsafeSkipCA     bool
	discoveryFile    string
	discoveryTimeout time.Duration
	certificateKey   string
	hostFlags
	skipPhases []string
	wait       time.Duration
}

func (o *joinOptions) addFlags(fs *pflag.FlagSet, whole bool) {
	fs.StringVarP(&o.configPath, "config", "f", "", "path of cluster.toml; without it, the configuration kforge init stored in the cluster")
	fs.StringVar(&o.node, "node", "", "which host of the file this is, or without a file the node name (default: the hostname)")
	fs.StringVar(&o.node, "node-name", "", "the node name; the same as --node")
	fs.StringVar(&o.advertiseAddress, "advertise-address", "", "this node's address, without a config file (default: the default route's address)")
	fs.BoolVar(&o.controlPlane, "control-plane", false, "join as another control-plane member (needs --certificate-key)")
	fs.StringVar(&o.token, "token", "", "bootstrap token, id.secret, for discovery and the TLS bootstrap (or set "+envToken+")")
	fs.StringSliceVar(&o.caHashes, "discovery-token-ca-cert-hash", nil, "pin of the cluster CA, sha256:<hex>, as kforge init prints it; repeat to accept several")
	fs.BoolVar(&o.unsafeSkipCA, "discovery-token-unsafe-skip-ca-verification", false, "trust any CA the token signed, without a pin (unsafe: anyone who knows the token can impersonate the cluster)")
	fs.StringVar(&o.discoveryFile, "discovery-file", "", "a kubeconfig naming the cluster's API server and CA, instead of token discovery")
	fs.DurationVar(&o.discoveryTimeout, "discovery-timeout", discovery.DefaultTimeout, "how long discovery waits for the API server and the token's signature")
	fs.StringVar(&o.certificateKey, "certificate-key", "", "hex key that opens the uploaded control-plane certificates (or set "+envCertificateKey+")")
	o.hostFlags.addFlags(fs, " (discovery still reads the cluster)")
	fs.DurationVar(&o.wait, "timeout", phases.DefaultWait, "how long each wait for the cluster lasts (TLS bootstrap, etcd, control plane)")
	if whole {
		fs.StringSliceVar(&o.skipPhases, "skip-phases", nil, "phases to skip, e.g. preflight (see the list above)")
	}
}

func newJoinCommand(root *rootOptions) *cobra.Command {
	wf := phases.JoinWorkflow()
	o := &joinOptions{root: root}
	c := &cobra.Command{
		Use:   "join [api-server-endpoint]",
		Short: "Add this host to a running cluster, as a worker or another control-plane member",
		Long: `Add this host to a running cluster, as a worker or, with --control-plane, as another
control-plane member with its own etcd member.

Discovery comes first and writes nothing: kforge fetches cluster-info from the endpoint,
verifies its signature with the token, checks the cluster CA against the pin, fetches it
again over TLS trusting only that CA, reads the cluster's configuration (the one kforge
init stored, or, in a cluster made by kubeadm init, kubeadm's ClusterConfiguration and
kubelet-config, as kubeadm join does), checks that no
other Ready node has this name and, for a control-plane join, opens the shared
certificates with the certificate key. Any failure stops the join before the host changes.

The join workflow then runs these phases, in order:

` + wf.Describe() + `
Every phase converges: joining again on a host that joined changes nothing. The token and
the certificate key may come from ` + envToken + ` and ` + envCertificateKey + ` instead of flags.`,
		Example: `  # a worker, with what "kforge init" printed
  kforge join 10.0.0.10:6443 --token abcdef.0123456789abcdef \
    --discovery-token-ca-cert-hash sha256:1234...cdef

  # another control-plane member
  kforge join 10.0.0.10:6443 --token abcdef.0123456789abcdef \
    --discovery-token-ca-cert-hash sha256:1234...cdef \
    --control-plane --certificate-key 0123...89ab

  # the host "w1" of a cluster file (the endpoint comes from the file)
  KFORGE_TOKEN=abcdef.0123456789abcdef kforge join -f cluster.toml --node w1 \
    --discovery-token-ca-cert-hash sha256:1234...cdef`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.runPhases(cmd.Context(), wf, "", args)
		},
	}
	o.addFlags(c.Flags(), true)
	_ = c.RegisterFlagCompletionFunc("skip-phases", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return wf.Paths(), cobra.ShellCompDirectiveNoFileComp
	})
	c.AddCommand(newPhaseCommand(wf, func() phaseRunner { return &joinOptions{root: root} }))
	return c
}

// request turns the discovery flags into a JoinRequest.
func (o *joinOptions) request(fileCluster *config.Cluster, args []string) (phases.JoinRequest, error) {
	req := phases.JoinRequest{
		UnsafeSkipCAVerification: o.unsafeSkipCA,
		DiscoveryFile:            o.discoveryFile,
		Timeout:                  o.discoveryTimeout,
	}
	if len(args) > 1 {
		return req, fmt.Errorf("unexpected arguments %q: give one API server endpoint", args[1:])
	}
	tok := o.token
	if tok == "" {
		tok = os.Getenv(envToken)
	}
	if tok != "" {
		t, err := tokens.Parse(tok)
		if err != nil {
			return req, fmt.Errorf("--token: %w", err)
		}
		req.Token = t
	}
	for _, h := range o.caHashes {
		pin, err := certs.ParsePin(h)
		if err != nil {
			return req, fmt.Errorf("--discovery-token-ca-cert-hash: %w", err)
		}
		req.CAPins = append(req.CAPins, pin)
	}
	switch {
	case len(args) == 1:
		req.Endpoint = args[0]
	case fileCluster != nil:
		h, p := fileCluster.Endpoint()
		req.Endpoint = net.JoinHostPort(h, strconv.Itoa(p))
	}
	if req.Endpoint != "" {
		if _, _, err := net.SplitHostPort(req.Endpoint); err != nil {
			req.Endpoint = net.JoinHostPort(strings.Trim(req.Endpoint, "[]"), strconv.Itoa(config.DefaultAPIServerPort))
		}
	}
	if req.DiscoveryFile == "" {
		if req.Endpoint == "" {
			return req, errors.New("no API server endpoint: give it as the argument (host:port), or pass -f cluster.toml")
		}
		if req.Token.IsZero() {
			return req, errors.New("no bootstrap token: pass --token (kforge init prints one; kforge token create makes another) or set " + envToken)
		}
	}
	return req, nil
}

func (o *joinOptions) runPhases(ctx context.Context, wf *phases.Workflow, only string, args []string) error {
	var fileCluster *config.Cluster
	if o.configPath != "" {
		c, err := config.Load(o.configPath)
		if err != nil {
			return err
		}
		fileCluster = c
	}
	req, err := o.request(fileCluster, args)
	if err != nil {
		return err
	}
	var key bootstrap.CertificateKey
	keyText := o.certificateKey
	if keyText == "" {
		keyText = os.Getenv(envCertificateKey)
	}
	if keyText != "" {
		if key, err = bootstrap.ParseCertificateKey(keyText); err != nil {
			return fmt.Errorf("--certificate-key: %w", err)
		}
	}
	start := time.Now()
	out := phases.NewPrinter(o.root.streams.Out)
	disc, err := phases.DiscoverCluster(ctx, req, out)
	if err != nil {
		return err
	}
	c := fileCluster
	if c == nil {
		stored, err := phases.ClusterConfigFromCluster(ctx, disc)
		if err != nil {
			return err
		}
		if err := o.useStoredCluster(stored, out); err != nil {
			return err
		}
		c = stored.Cluster
	}
	if o.bundle != "" {
		c.Bundle = o.bundle
	}
	node, err := o.selectNode(c, fileCluster != nil)
	if err != nil {
		return err
	}
	if o.controlPlane && !node.IsControlPlane() {
		return fmt.Errorf("--control-plane: host %q has no %s role in %s", node.Name, config.RoleControlPlane, o.configPath)
	}
	adv := net.ParseIP(node.NodeIP())
	if adv == nil {
		return fmt.Errorf("host %q: address %q must be an IP address to advertise", node.Name, node.NodeIP())
	}
	client := "kubelet.conf"
	if node.IsControlPlane() {
		client = "admin.conf"
	}
	s, err := o.root.hostSpec(c, node, adv, o.hostFlags, o.wait)
	if err != nil {
		return err
	}
	s.Kubeconfig = client
	s.JoinControlPlane = node.IsControlPlane()
	s.Token = req.Token
	s.CertificateKey = key
	d, cleanup, err := hostData(s, o.dryRun)
	if err != nil {
		return err
	}
	defer cleanup()
	if err := phases.PrepareJoin(ctx, d, disc, key); err != nil {
		return err
	}
	if err := wf.Run(ctx, d, only, o.skipPhases); err != nil {
		return err
	}
	if d.DryRun {
		return printPlan(d)
	}
	if only == "" {
		role := "worker"
		if d.Join.ControlPlane {
			role = "control-plane member"
		}
		d.Out.Plain("\nkforge join finished in %s: %q joined cluster %q as a %s.\nSee it with: kubectl get nodes",
			time.Since(start).Round(time.Millisecond), node.Name, c.Name, role)
	}
	return nil
}

// useStoredCluster applies what the cluster's stored configuration says about this join:
// where the certificates live, and, in a cluster made by kubeadm, whether it can take
// another control-plane member.
func (o *joinOptions) useStoredCluster(s *bootstrap.StoredCluster, out *phases.Printer) error {
	if s.FromKubeadm {
		out.Phase("discovery", "the cluster was set up by kubeadm: derived its configuration from kube-system/%s (ClusterConfiguration) and kube-system/%s",
			bootstrap.KubeadmConfigName, bootstrap.KubeletConfigName)
		if o.controlPlane && s.KubeadmControlPlaneEndpoint == "" {
			return fmt.Errorf("--control-plane: the cluster's ClusterConfiguration has no controlPlaneEndpoint, so another control-plane member cannot be added " +
				"(kubeadm refuses too): it needs a stable address in front of every apiserver, set with kubeadm init --control-plane-endpoint")
		}
	} else {
		out.Phase("discovery", "read the cluster configuration stored in kube-system/%s", bootstrap.KubeadmConfigName)
	}
	// The cluster's nodes keep the certificates where its ClusterConfiguration says, as
	// kubeadm join assumes; --cert-dir may only repeat it.
	switch dir := s.CertificatesDir; {
	case dir == "" || dir == o.certDir:
	case o.certDir == phases.DefaultCertDir:
		o.certDir = dir
		out.Phase("discovery", "the cluster keeps its certificates in %s (certificatesDir)", dir)
	default:
		return fmt.Errorf("--cert-dir %s: the cluster keeps its certificates in %s (certificatesDir of its ClusterConfiguration); leave --cert-dir out or give that", o.certDir, dir)
	}
	return nil
}

// selectNode finds this host in the file, or without one makes its entry from the flags
// and adds it to the cluster's hosts.
func (o *joinOptions) selectNode(c *config.Cluster, fromFile bool) (*config.Host, error) {
	if fromFile {
		local, err := phases.LocalAddresses()
		if err != nil {
			return nil, err
		}
		return phases.SelectNode(c, o.node, local)
	}
	name, addr, err := thisHost(o.node, o.advertiseAddress, "--node-name")
	if err != nil {
		return nil, err
	}
	role := config.RoleWorker
	if o.controlPlane {
		role = config.RoleControlPlane
	}
	h := config.Host{Name: name, Address: addr, Roles: []string{role}}
	// The stored hosts are the file init ran with; the cluster's nodes are the truth. An
	// entry with this host's name or address is this host's old description.
	var hosts []config.Host
	for _, x := range c.Hosts {
		if x.Name != name && x.Address != addr && x.NodeIP() != addr {
			hosts = append(hosts, x)
		}
	}
	// A configuration derived from kubeadm's names no hosts: the cluster's control plane is
	// not in it, and this host is all join knows of.
	noHosts := len(c.Hosts) == 0
	c.Hosts = append(hosts, h)
	config.SetDefaults(c)
	if err := validateJoining(c, noHosts); err != nil {
		return nil, fmt.Errorf("this host with the cluster's configuration: %w", err)
	}
	got, _ := c.HostByName(name)
	return got, nil
}

// validateJoining validates the cluster this host joins. When its configuration named no
// hosts (a cluster made by kubeadm), the hosts need no control-plane host: the cluster's
// control plane exists, it is just not listed.
func validateJoining(c *config.Cluster, noHosts bool) error {
	err := c.Validate()
	var ve *config.ValidationError
	if !noHosts || !errors.As(err, &ve) {
		return err
	}
	// The rule for the hosts as a whole is the one that wants a control-plane host; every
	// rule about one host reports under hosts[i].
	ve.Errors = slices.DeleteFunc(ve.Errors, func(fe config.FieldError) bool { return fe.Path == "hosts" })
	if len(ve.Errors) == 0 {
		return nil
	}
	return ve
}
