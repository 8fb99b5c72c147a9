// Package fleet drives the hosts of a cluster.toml over SSH for `kforge up` and
// `kforge reset -f`: it connects to them, finds out what the cluster already holds, plans
// each host's action (MakePlan, a pure function), installs kforge, the configuration and
// the bundle, and runs kforge on the hosts with secrets on stdin. It keeps one report line
// per host and redacts every secret it handles from what it prints. The workflows in
// phases/ call it; it knows nothing of the terminal beyond the Printer it is given.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/bundle"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/host"
	"github.com/kforge/kforge/internal/apiclient"
	"github.com/kforge/kforge/tokens"
)

// Where kforge puts things on each host.
const (
	RemoteKforge    = "/usr/local/bin/kforge"
	RemoteBundleDir = "/var/lib/kforge/bundle"
	RemoteConfig    = "/etc/kforge/cluster.toml"
)

// Results of a host in a run.
const (
	ResultOK        = "ok"
	ResultFailed    = "failed"
	ResultSkipped   = "skipped"
	ResultPlanned   = "planned"
	ResultNotInFile = "not in file"
)

// DefaultPollInterval is how often the fleet asks the cluster again while it waits.
const DefaultPollInterval = time.Second

// Printer carries user-facing progress lines; *phases.Printer implements it.
type Printer interface {
	// Say prints a line under the printer's own name (the running phase's).
	Say(format string, args ...any)
	// Phase prints "[prefix] message": a host's line.
	Phase(prefix, format string, args ...any)
	// Plain prints a line with no prefix.
	Plain(format string, args ...any)
}

// Options configure a Fleet.
type Options struct {
	// Cluster is the validated cluster.toml; its bundle is a directory on this machine.
	Cluster *config.Cluster
	// Kforge is the kforge binary to install on the hosts (this very program).
	Kforge string
	// Connect opens a host of the file.
	Connect func(ctx context.Context, h *config.Host) (host.Host, error)
	// Client builds an API client from an admin kubeconfig read from a host.
	Client func(kubeconfig []byte) (kubernetes.Interface, error)
	// Readyz asks the apiserver of an admin kubeconfig for /readyz once; nil means
	// AdminReadyz.
	Readyz func(ctx context.Context, kubeconfig []byte) error
	// Hosts names the hosts the run is about, and so has a report line for; empty means
	// every host of the file.
	Hosts []string
	// Concurrency bounds how many hosts are worked on at once.
	Concurrency int
	// PollInterval is how often a wait asks the cluster again.
	PollInterval time.Duration
	// DryRun makes the fleet plan what it would change through the API (ApplyAddons,
	// MarkNodes) instead of changing it; the up workflow sets it from its --dry-run.
	DryRun bool
	// IgnorePreflight is passed to the hosts' preflight checks.
	IgnorePreflight []string
	// Timeout is passed to the hosts' init, join and reconfigure (--timeout).
	Timeout time.Duration
	// MaxUnavailable is how many workers Reconfigure changes at once; 0 means 1.
	// Control-plane hosts are always changed one at a time.
	MaxUnavailable int
	// DialKubelet opens a connection to a kubelet's HTTPS port from this machine, to check
	// the certificate it serves (ApproveServingCerts); nil is a plain net.Dialer.
	DialKubelet DialFunc
	// Out carries progress lines (UsePrinter replaces it); Log diagnostics; HostLog, if set, receives every line the
	// hosts' kforge prints, with secrets redacted.
	Out     Printer
	Log     *slog.Logger
	HostLog io.Writer
}

// HostReport is one host's line of the summary.
type HostReport struct {
	Host     string        `json:"host"`
	Role     string        `json:"role"`
	Action   string        `json:"action"`
	Result   string        `json:"result"`
	Duration time.Duration `json:"-"`
	Seconds  float64       `json:"seconds"`
	Uploaded int64         `json:"uploaded_bytes"`
	Error    string        `json:"error,omitempty"`
	// Plan is what reconfigure changes (or, on a dry run, would change) on a host already
	// in the cluster; nil when the host was not asked.
	Plan *HostPlan `json:"plan,omitempty"`
	// CertsRenewal is what up found about a control plane's certificates, and whether it
	// renewed them; nil when it did not look.
	CertsRenewal *CertsRenewal `json:"certs_renewal,omitempty"`
}

// Report is what a run did.
type Report struct {
	Cluster string       `json:"cluster"`
	Hosts   []HostReport `json:"hosts"`
	// DryRun is true when the run changed nothing: Changes are then what it would change.
	DryRun bool `json:"dry_run"`
	// Changes are what the run changed in the cluster through the API.
	Changes ClusterChanges `json:"cluster_changes"`
	// Recovery is what the run did, or on a dry run would do, about expired certificates.
	Recovery *Recovery `json:"certificate_recovery,omitempty"`
	// ServingCerts is what approving the kubelets' serving certificates did, or would do;
	// absent when kubelet.server_tls_bootstrap is off or there is no cluster.
	ServingCerts *ServingCertsReport `json:"serving_certs,omitempty"`
	// AdminKubeconfig is the admin kubeconfig read from the cluster (the caller writes it).
	AdminKubeconfig []byte  `json:"-"`
	Seconds         float64 `json:"seconds"`
}

// ClusterChanges are the changes a run made through the admin client, or on a dry run
// would make; what is unchanged is not listed.
type ClusterChanges struct {
	// Objects are the add-on objects created or changed, in apply order.
	Objects []ObjectChange `json:"objects"`
	// Nodes are the Nodes whose labels or taints changed, in file order.
	Nodes []NodeMarksChange `json:"nodes"`
}

// Changes of an add-on object.
const (
	ChangeCreate = "create"
	ChangeUpdate = "update"
)

// ObjectChange is one add-on object that a run created or changed.
type ObjectChange struct {
	// Addon is the add-on's name: "coredns", "kube-proxy", "flannel".
	Addon string `json:"addon"`
	// Object names it: "Deployment kube-system/coredns".
	Object string `json:"object"`
	// Change is ChangeCreate or ChangeUpdate.
	Change string `json:"change"`
	// Fields are the fields an update changes, old and new values; a Secret's values are
	// redacted.
	Fields []apiclient.FieldChange `json:"fields,omitempty"`
}

// NodeMarksChange is a Node whose labels or taints a run changed: the labels ("label
// key=value") and taints ("taint key=value:Effect") added and removed.
type NodeMarksChange struct {
	Node    string   `json:"node"`
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
}

// Failed lists the hosts that failed, with their causes.
func (r *Report) Failed() error {
	var errs []error
	for _, h := range r.Hosts {
		if h.Result == ResultFailed {
			errs = append(errs, fmt.Errorf("%s: %s", h.Host, h.Error))
		}
	}
	return errors.Join(errs...)
}

// Fleet is the state of one run over the hosts of a file.
type Fleet struct {
	o     Options
	c     *config.Cluster
	start time.Time

	mu      sync.Mutex
	conns   map[string]host.Host
	reports map[string]*HostReport

	secMu   sync.RWMutex
	secrets []string

	printer Printer

	bundle *bundle.Bundle
	remote []byte // cluster.toml as the hosts read it

	// kforgeSum is the sha256 of the kforge binary, hashed once, when the first host
	// needs it (a run that changes no host never reads the binary).
	kforgeSum     string
	kforgeSumErr  error
	kforgeSumOnce sync.Once

	// admin and cs reach the cluster, once Observe or Init found it.
	admin []byte
	cs    kubernetes.Interface
	// observed is what Observe found.
	observed Observed
	// changes are what ApplyAddons and MarkNodes changed, or would change.
	changes ClusterChanges
	// recovery is every recovery of expired certificates the run's plans held.
	recovery Recovery
	// serving is what ApproveServingCerts did, or would do.
	serving *ServingCertsReport

	// cpToken and cpKey are the token and certificate key of this run's control-plane
	// joins (and of init, which stores the token and shares the certificates with them).
	cpToken tokens.Token
	cpKey   bootstrap.CertificateKey
	// tokenStored and certsShared say that cpToken is in the cluster and the certificates
	// are shared with cpKey.
	tokenStored, certsShared bool
	// created lists the IDs of the control-plane tokens this run stored, for Cleanup.
	created []string
}

// New loads the bundle and renders the cluster.toml the hosts get. Every host of the file
// gets a report line.
func New(o Options) (*Fleet, error) {
	if o.Concurrency <= 0 {
		o.Concurrency = host.DefaultConcurrency
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Client == nil {
		o.Client = AdminClient
	}
	if o.Readyz == nil {
		o.Readyz = AdminReadyz
	}
	f := &Fleet{o: o, c: o.Cluster, start: time.Now(), conns: map[string]host.Host{}, reports: map[string]*HostReport{}, printer: o.Out}
	for _, h := range f.hosts(o.Hosts) {
		f.reports[h.Name] = &HostReport{Host: h.Name, Role: roleOf(h)}
	}
	if f.c.Bundle != "" {
		b, err := bundle.Load(f.c.Bundle)
		if err != nil {
			return nil, err
		}
		f.bundle = b
	}
	text, err := config.EncodeForHosts(f.c, RemoteBundleDir)
	if err != nil {
		return nil, err
	}
	f.remote = text
	return f, nil
}

// AdminClient builds an API client from an admin kubeconfig, with a timeout per request.
func AdminClient(kubeconfig []byte) (kubernetes.Interface, error) {
	rc, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("reading admin.conf: %w", err)
	}
	rc.Timeout = 20 * time.Second
	return kubernetes.NewForConfig(apiclient.Configure(rc, "kforge-up"))
}

// UsePrinter makes the fleet print through p from now on: each phase of a workflow hands
// the fleet its own printer.
func (f *Fleet) UsePrinter(p Printer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.printer = p
}

func (f *Fleet) out() Printer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.printer
}

// Cluster is the file the fleet works on.
func (f *Fleet) Cluster() *config.Cluster { return f.c }

// Close closes every connection.
func (f *Fleet) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, h := range f.conns {
		h.Close()
	}
}

// Connect connects to the named hosts of the file at once (all of them when names is
// empty) and marks the ones it cannot reach as failed.
func (f *Fleet) Connect(ctx context.Context, names []string) {
	var todo []*config.Host
	for _, h := range f.hosts(names) {
		if f.conn(h.Name) == nil {
			todo = append(todo, h)
		}
	}
	err := host.Each(ctx, todo, f.o.Concurrency, hostName, func(ctx context.Context, h *config.Host) error {
		conn, err := f.o.Connect(ctx, h)
		if err != nil {
			return fmt.Errorf("unreachable: %w", err)
		}
		f.mu.Lock()
		f.conns[h.Name] = conn
		f.mu.Unlock()
		return nil
	})
	f.failEach(err)
	hosts := f.hosts(names)
	missing := 0
	for _, h := range hosts {
		if f.conn(h.Name) != nil {
			continue
		}
		missing++
		f.mu.Lock()
		notTried := f.reports[h.Name] != nil && f.reports[h.Name].Result == ""
		f.mu.Unlock()
		if notTried && ctx.Err() != nil {
			f.Fail(h.Name, fmt.Errorf("not connected: %w", ctx.Err()))
		}
	}
	if missing > 0 {
		f.out().Plain("%d of %d hosts unreachable; going on with the others", missing, len(hosts))
	}
}

// ConnectAdmin connects to one control-plane host of the file that the run is not about,
// for the cluster's admin credentials (reset of some hosts deletes their Nodes with them).
// It records nothing when none can be reached.
func (f *Fleet) ConnectAdmin(ctx context.Context) {
	for _, h := range f.c.ControlPlaneHosts() {
		f.mu.Lock()
		_, mine := f.reports[h.Name]
		_, have := f.conns[h.Name]
		f.mu.Unlock()
		if mine || have {
			continue
		}
		if conn, err := f.o.Connect(ctx, h); err == nil {
			f.mu.Lock()
			f.conns[h.Name] = conn
			f.mu.Unlock()
			return
		}
	}
}

// hosts returns the hosts of the file with the given names, in file order; all of them
// when names is empty.
func (f *Fleet) hosts(names []string) []*config.Host {
	var out []*config.Host
	for i := range f.c.Hosts {
		h := &f.c.Hosts[i]
		if len(names) == 0 || contains(names, h.Name) {
			out = append(out, h)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// conn is the connection to a host, nil when it is not connected.
func (f *Fleet) conn(name string) host.Host {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns[name]
}

// Report returns the summary: the hosts of the file in file order, then the others by
// name.
func (f *Fleet) Report() *Report {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := &Report{Cluster: f.c.Name, AdminKubeconfig: f.admin, Seconds: time.Since(f.start).Seconds(), DryRun: f.o.DryRun,
		Changes: ClusterChanges{
			Objects: append([]ObjectChange{}, f.changes.Objects...),
			Nodes:   append([]NodeMarksChange{}, f.changes.Nodes...),
		}}
	if len(f.recovery.ControlPlanes)+len(f.recovery.Kubelets) > 0 {
		rec := f.recovery
		r.Recovery = &rec
	}
	if f.serving != nil {
		s := *f.serving
		r.ServingCerts = &s
	}
	order := map[string]int{}
	for i, h := range f.c.Hosts {
		order[h.Name] = i
	}
	names := make([]string, 0, len(f.reports))
	for n := range f.reports {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		oi, iok := order[names[i]]
		oj, jok := order[names[j]]
		if iok != jok {
			return iok
		}
		if iok {
			return oi < oj
		}
		return names[i] < names[j]
	})
	for _, n := range names {
		h := *f.reports[n]
		h.Seconds = h.Duration.Seconds()
		r.Hosts = append(r.Hosts, h)
	}
	return r
}

// SetPlan records the plan in the report lines and prints it.
func (f *Fleet) SetPlan(p Plan, prune bool) {
	f.showRecovery(p.Recovery)
	for _, s := range p.Steps {
		f.mu.Lock()
		r := f.reports[s.Host]
		r.Action = s.Action
		r.Result = ResultPlanned
		if s.Action == ActionUnchanged {
			r.Result = ResultOK
		}
		f.mu.Unlock()
		if s.Note != "" {
			f.out().Phase(s.Host, "%s", s.Note)
		}
		if s.Action != ActionUnchanged {
			f.out().Phase(s.Host, "will %s", s.Action)
		}
	}
	if len(p.NotInFile) == 0 {
		return
	}
	var names []string
	f.mu.Lock()
	for _, e := range p.NotInFile {
		f.reports[e.Name] = &HostReport{Host: e.Name, Role: e.Role, Action: ActionUnchanged, Result: ResultNotInFile}
		names = append(names, e.Name)
	}
	f.mu.Unlock()
	what := "kept (pass --prune to delete the Nodes of workers)"
	if prune {
		what = "to be pruned"
	}
	f.out().Say("in the cluster but not in the file: %s; %s", strings.Join(names, ", "), what)
}

// Plan marks the named hosts as planned for action (for workflows without MakePlan, such
// as reset).
func (f *Fleet) Plan(names []string, action string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range names {
		if r := f.reports[n]; r != nil && r.Result == "" {
			r.Action, r.Result = action, ResultPlanned
		}
	}
}

// Pending names the hosts whose report still says planned, among names, in file order.
func (f *Fleet) Pending(names []string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, h := range f.c.Hosts {
		if r := f.reports[h.Name]; r != nil && contains(names, h.Name) && r.Result == ResultPlanned {
			out = append(out, h.Name)
		}
	}
	return out
}

// Fail marks a host failed with err, redacted, and prints it.
func (f *Fleet) Fail(name string, err error) {
	msg := f.redact(err.Error())
	f.mu.Lock()
	r := f.reports[name]
	r.Result, r.Error = ResultFailed, msg
	f.mu.Unlock()
	f.out().Phase(name, "FAILED: %s", msg)
}

// failIfReported fails a host that has a report line; a host the run is not about (reached
// only for the cluster's credentials) has none.
func (f *Fleet) failIfReported(name string, err error) {
	f.mu.Lock()
	_, ok := f.reports[name]
	f.mu.Unlock()
	if ok {
		f.Fail(name, err)
	}
}

// Skip marks a planned host skipped, with why.
func (f *Fleet) Skip(name, why string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.reports[name]; r != nil && r.Result == ResultPlanned {
		r.Result, r.Error = ResultSkipped, why
	}
}

// SkipPending marks every host that is still planned skipped, with why.
func (f *Fleet) SkipPending(why string) {
	f.mu.Lock()
	names := make([]string, 0, len(f.reports))
	for n := range f.reports {
		names = append(names, n)
	}
	f.mu.Unlock()
	for _, n := range names {
		f.Skip(n, why)
	}
}

// SkipUndecided marks every host that has no result yet skipped, with why: a run that
// stops before its plan.
func (f *Fleet) SkipUndecided(why string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.reports {
		if r.Result == "" {
			r.Result, r.Error = ResultSkipped, why
		}
	}
}

// done marks a host ok and prints what was done and how long it took.
func (f *Fleet) done(name, what string) {
	f.mu.Lock()
	r := f.reports[name]
	r.Result = ResultOK
	d := r.Duration
	f.mu.Unlock()
	f.out().Phase(name, "%s (%s)", what, d.Round(10*time.Millisecond))
}

// timed runs fn and adds its duration to the host's report.
func (f *Fleet) timed(name string, fn func() error) error {
	start := time.Now()
	err := fn()
	f.mu.Lock()
	f.reports[name].Duration += time.Since(start)
	f.mu.Unlock()
	return err
}

// ForEach runs fn for the named hosts that are connected and still planned, through
// host.ForEach with the concurrency limit; an error, or cancellation before the host's
// turn, marks that host failed.
func (f *Fleet) ForEach(ctx context.Context, names []string, fn func(ctx context.Context, h *config.Host) error) {
	var conns []host.Host
	byName := map[string]*config.Host{}
	for _, n := range f.Pending(names) {
		if c := f.conn(n); c != nil {
			h, _ := f.c.HostByName(n)
			conns = append(conns, c)
			byName[n] = h
		}
	}
	var mu sync.Mutex
	started := map[string]bool{}
	err := host.ForEach(ctx, conns, f.o.Concurrency, func(ctx context.Context, c host.Host) error {
		mu.Lock()
		started[c.Name()] = true
		mu.Unlock()
		return fn(ctx, byName[c.Name()])
	})
	f.failEach(err)
	for name := range byName {
		if !started[name] {
			f.Fail(name, ctx.Err())
		}
	}
}

// failEach marks the host of every *host.HostError in err failed.
func (f *Fleet) failEach(err error) {
	var he *host.HostError
	for _, e := range unjoin(err) {
		if errors.As(e, &he) {
			f.Fail(he.Host, he.Err)
		}
	}
}

func hostName(h *config.Host) string { return h.Name }

// unjoin lists the errors errors.Join combined.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err != nil {
		return []error{err}
	}
	return nil
}

// redact replaces every secret the fleet handles with "<redacted>".
func (f *Fleet) redact(s string) string {
	f.secMu.RLock()
	defer f.secMu.RUnlock()
	for _, sec := range f.secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "<redacted>")
		}
	}
	return s
}

// addSecret adds strings to redact; longer secrets are replaced first, so that a token is
// redacted whole before its secret half is.
func (f *Fleet) addSecret(s ...string) {
	f.secMu.Lock()
	defer f.secMu.Unlock()
	f.secrets = append(f.secrets, s...)
	sort.Slice(f.secrets, func(i, j int) bool { return len(f.secrets[i]) > len(f.secrets[j]) })
}
