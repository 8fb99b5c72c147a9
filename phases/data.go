package phases

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/bundle"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/etcd"
	"github.com/kforge/kforge/fleet"
	"github.com/kforge/kforge/internal/overlay"
	"github.com/kforge/kforge/preflight"
	"github.com/kforge/kforge/service"
	"github.com/kforge/kforge/tokens"
	"k8s.io/client-go/kubernetes"
)

// Default locations, as kubeadm lays them out.
const (
	DefaultCertDir       = "/etc/kubernetes/pki"
	DefaultKubeconfigDir = "/etc/kubernetes"
	DefaultManifestsDir  = "/etc/kubernetes/manifests"
	DefaultKubeletConfig = "/var/lib/kubelet/config.yaml"
)

// Data is everything a workflow's phases read and produce. It is built once, before the
// first phase runs; Cluster and Node are read-only from then on.
type Data struct {
	// Cluster is the validated cluster.toml (or the defaults plus flags).
	Cluster *config.Cluster
	// Node is this host's entry in Cluster.Hosts.
	Node *config.Host
	// AdvertiseAddress is the IP this node's apiserver and etcd advertise (Node.NodeIP()).
	AdvertiseAddress net.IP

	// CertDir, KubeconfigDir and ManifestsDir are the paths as the host sees them; they are
	// what the manifests and kubeconfigs refer to.
	CertDir, KubeconfigDir, ManifestsDir string
	// KubeletConfigPath is where the kubelet config lives (for preflight's ownership checks).
	KubeletConfigPath string

	// Root prefixes every path kforge writes: "" on a real run, a scratch dir on a dry run
	// of init or join. Phases never branch on dry-run; they write under Root.
	Root string
	// DryRun is true on a dry run (and on status, which changes nothing). Only the plan
	// printer, the skip rules of the fleet workflows (up, reset-hosts) and Data.Fleet,
	// which hands it to the fleet
	// (fleet.Options.DryRun: plan the API changes instead of making them), read it.
	DryRun bool
	// overlay is a dry run's view of the host under Root (see Path); nil otherwise.
	overlay *overlay.Overlay

	// Rewritten maps each static pod whose manifest this run created or changed to when
	// it wrote it (set by the etcd and control-plane phases): the control-plane wait waits
	// for the kubelet to have restarted those before it trusts their health.
	Rewritten map[string]time.Time

	// IgnorePreflight lists the preflight checks whose errors become warnings.
	IgnorePreflight preflight.IgnoreSet
	// PreflightSystem is how preflight reads the machine.
	PreflightSystem preflight.System

	// Out carries user-facing progress; Log carries diagnostics.
	Out *Printer
	Log *slog.Logger
	// Now is the clock certificates are minted with.
	Now func() time.Time

	// Facts are what preflight detected about the host (cgroups, capabilities, PID 1); the
	// container runtime and kubelet configuration follow them.
	Facts preflight.HostFacts
	// Services starts and stops the kubelet (and containerd, when nothing else does), and
	// installs the automatic certificate renewal check (service.Scheduler).
	Services service.Manager
	// Kforge is the kforge binary the automatic certificate renewal check runs: this one
	// (os.Executable) on a real run.
	Kforge string

	// Client returns the API client the online phases use: built from a kubeconfig of
	// KubeconfigDir on a real run, a fake clientset on a dry run. It is called only after
	// wait-control-plane. Nil only for reset on a host that holds no kubeconfig.
	Client func() (kubernetes.Interface, error)
	// Act carries out destructive steps (reset): a dry run prints them instead.
	Act Act

	// Etcd connects to the cluster's etcd members (etcd-join, reset's remove-etcd-member);
	// a dry run swaps in DryRunEtcd.
	Etcd func(d *Data, endpoints []string) (etcd.Cluster, error)

	// Ctr runs containerd's client for image imports; a dry run records instead.
	Ctr bundle.Ctr

	// Waiter waits for the control plane and for every condition the online phases wait
	// on: a HealthWaiter, whose intervals tests shorten; a dry run swaps in DryRunWaiter.
	Waiter Waiter
	// BootstrapData carries the join token, the certificate key and the super-admin client.
	BootstrapData
	// Join is what discovery found, for the join workflow (PrepareJoin sets it).
	Join JoinData

	// Up is the fleet of hosts the up, reset-hosts and status workflows drive over SSH.
	Up UpData
	// Status is what the status workflow gathers beyond Up's.
	Status StatusData

	// Renew is what the certs-renew workflow renewed, and left to the operator.
	Renew RenewData

	// ReissueSANs lets the certs phase sign an existing leaf again, for its own key, when
	// it lacks names the file now asks for (certs.Params.ReissueSANs); reconfigure sets it.
	ReissueSANs bool

	// Force lets reset go on where it would refuse (removing an etcd member that would lose
	// quorum).
	Force bool

	// Wait is how long the online phases wait for the cluster (control plane, JWS, nodes).
	Wait time.Duration
}

// Path maps a host path to where this run reads and writes it. A dry run with a Root
// reads the host through an overlay: the path is filled from the host, read only, the
// first time, so the run sees and compares against what the host holds, and writes land
// under Root (PlannedChanges lists them).
func (d *Data) Path(p string) string {
	if d.overlay != nil {
		return d.overlay.Path(p)
	}
	if d.Root == "" {
		return p
	}
	return filepath.Join(d.Root, p)
}

// applyService is service.Apply of c under Root. On a dry run its files and its pending
// restart are first read from the host (Path), so the plan restarts only what changed.
func (d *Data) applyService(ctx context.Context, c service.Change) (service.Applied, error) {
	for _, f := range c.Files {
		d.Path(f.Path)
	}
	d.Path(filepath.Join(service.PendingDir, c.Spec.Name))
	c.Root = d.Root
	return service.Apply(ctx, d.Services, c)
}

// readFileIfExists returns a file's content, or nil when it does not exist.
func readFileIfExists(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return b, nil
}

// BootstrapData is the part of Data the online bootstrap phases (upload-config,
// upload-certs, mark-control-plane, bootstrap-token, show-join-command) read and produce.
// Data embeds it.
type BootstrapData struct {
	// Token is the join token (--token). Zero means bootstrap-token generates one and sets
	// it here, so that show-join-command prints the same one.
	Token tokens.Token
	// TokenTTL is the join token's lifetime (--token-ttl). Zero means tokens.DefaultTTL;
	// a negative value makes a token that never expires (kubeadm's --token-ttl 0).
	TokenTTL time.Duration

	// UploadCerts makes upload-certs run (--upload-certs).
	UploadCerts bool
	// CertificateKey seals the shared certificates (--certificate-key). Zero means
	// upload-certs generates one and sets it here.
	CertificateKey bootstrap.CertificateKey

	// SuperAdminClient returns a client built from super-admin.conf (system:masters). The
	// online phases use it once, to create the ClusterRoleBinding kubeadm:cluster-admins
	// without which admin.conf (and so Client) can do nothing. Nil where there is no
	// super-admin.conf: the binding must then exist already.
	SuperAdminClient func() (kubernetes.Interface, error)

	// tokenExpires is when Token expires (zero: never), once bootstrap-token or
	// show-join-command has read or written its Secret.
	tokenExpires time.Time
	// clusterAdminsBound is set once kubeadm:cluster-admins is known to exist in this run.
	clusterAdminsBound bool
}

// DataSpec is what a command knows about one run: the configuration, this host, the flags,
// and where progress and diagnostics go. NewData turns it and the run's Deps into Data.
type DataSpec struct {
	Cluster          *config.Cluster
	Node             *config.Host
	AdvertiseAddress net.IP
	// CertDir, KubeconfigDir and ManifestsDir are the paths as the host sees them.
	CertDir, KubeconfigDir, ManifestsDir string

	IgnorePreflight preflight.IgnoreSet
	// PreflightSystem is how preflight reads the machine, and how the host facts are detected.
	PreflightSystem preflight.System

	Out *Printer
	Log *slog.Logger

	// Kubeconfig is the file in KubeconfigDir that a real run's API client is built from,
	// on first use, so a phase of the run may write it. Empty means the host's own: the
	// most capable of admin.conf and kubelet.conf that exists when the run starts, and no
	// client when neither does (reset).
	Kubeconfig string
	// SuperAdmin gives the run a client built from super-admin.conf (init).
	SuperAdmin bool

	// Token, TokenTTL, UploadCerts and CertificateKey are BootstrapData's flags.
	Token          tokens.Token
	TokenTTL       time.Duration
	UploadCerts    bool
	CertificateKey bootstrap.CertificateKey
	// JoinControlPlane makes a join a control-plane join.
	JoinControlPlane bool

	// Fleet configures the fleet of the up and reset-hosts workflows; Prune is up --prune
	// and InitNewCluster up --init-new-cluster.
	Fleet          fleet.Options
	Prune          bool
	InitNewCluster bool

	Force bool
	Wait  time.Duration
}

// Deps are the implementations a run acts through: RealDeps on a real run, DryRunDeps on a
// dry run, and fakes in tests. The workflows over a fleet (up, reset-hosts) act through
// their fleet and need only Now and DryRun.
type Deps struct {
	// Root and DryRun become Data's.
	Root   string
	DryRun bool
	// DryRunHost is the host's root a dry run with a Root reads through (an
	// overlay.Overlay): "" is "/", tests give a directory.
	DryRunHost string
	// Facts are what the host's PID 1, cgroups and capabilities look like.
	Facts            preflight.HostFacts
	Now              func() time.Time
	Services         service.Manager
	Kforge           string
	Ctr              bundle.Ctr
	Waiter           Waiter
	Etcd             func(d *Data, endpoints []string) (etcd.Cluster, error)
	Client           func() (kubernetes.Interface, error)
	SuperAdminClient func() (kubernetes.Interface, error)
	Act              Act
}

// NewData builds a run's Data from what the command knows and the implementations it acts
// through. Every command builds its Data here, once.
func NewData(s DataSpec, deps Deps) *Data {
	var ov *overlay.Overlay
	if deps.DryRun && deps.Root != "" {
		host := deps.DryRunHost
		if host == "" {
			host = "/"
		}
		ov = overlay.New(host, deps.Root)
	}
	return &Data{
		overlay:           ov,
		Cluster:           s.Cluster,
		Node:              s.Node,
		AdvertiseAddress:  s.AdvertiseAddress,
		CertDir:           s.CertDir,
		KubeconfigDir:     s.KubeconfigDir,
		ManifestsDir:      s.ManifestsDir,
		KubeletConfigPath: DefaultKubeletConfig,
		Root:              deps.Root,
		DryRun:            deps.DryRun,
		IgnorePreflight:   s.IgnorePreflight,
		PreflightSystem:   s.PreflightSystem,
		Out:               s.Out,
		Log:               s.Log,
		Now:               deps.Now,
		Facts:             deps.Facts,
		Services:          deps.Services,
		Kforge:            deps.Kforge,
		Client:            deps.Client,
		Act:               deps.Act,
		Etcd:              deps.Etcd,
		Ctr:               deps.Ctr,
		Waiter:            deps.Waiter,
		BootstrapData: BootstrapData{
			Token:            s.Token,
			TokenTTL:         s.TokenTTL,
			UploadCerts:      s.UploadCerts,
			CertificateKey:   s.CertificateKey,
			SuperAdminClient: deps.SuperAdminClient,
		},
		Join:  JoinData{ControlPlane: s.JoinControlPlane},
		Up:    UpData{Options: s.Fleet, Prune: s.Prune, Plan: fleet.PlanOptions{InitNewCluster: s.InitNewCluster}},
		Force: s.Force,
		Wait:  s.Wait,
	}
}

// RealDeps are the implementations of a real run on this host: the host's service manager,
// containerd's ctr, health probes, etcd's client and API clients from the kubeconfigs.
func RealDeps(s DataSpec) Deps {
	d := Deps{
		Facts:    preflight.DetectHostFacts(s.PreflightSystem),
		Now:      time.Now,
		Services: service.Detect(),
		Kforge:   kforgeBinary(),
		Ctr:      bundle.CtrCommand(strings.TrimPrefix(s.Cluster.Kubelet.ContainerRuntimeEndpoint, "unix://")),
		Waiter:   HealthWaiter{},
		Etcd:     RealEtcd,
		Client:   kubeconfigClient(s.KubeconfigDir, s.Kubeconfig),
		Act:      RealAct,
	}
	if s.SuperAdmin {
		d.SuperAdminClient = kubeconfigClient(s.KubeconfigDir, "super-admin.conf")
	}
	return d
}

// kforgeBinary is this kforge binary's path, or the path kforge up installs it at when the
// running one cannot be found.
func kforgeBinary() string {
	if p, err := os.Executable(); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return r
		}
		return p
	}
	return fleet.RemoteKforge
}
