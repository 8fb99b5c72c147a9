package phases

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/bundle"
	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/host"
	"github.com/kforge/kforge/internal/apiclient"
	"github.com/kforge/kforge/internal/wait"
	"github.com/kforge/kforge/tokens"
)

// Where `kforge up` puts things on each host.
const (
	RemoteKforge    = "/usr/local/bin/kforge"
	RemoteBundleDir = "/var/lib/kforge/bundle"
	RemoteConfig    = "/etc/kforge/cluster.toml"
)

// Actions and results of a host in an up run.
const (
	ActionInit              = "init"
	ActionJoinControlPlane  = "join control-plane"
	ActionJoinWorker        = "join worker"
	ActionUnchanged         = "unchanged"
	ActionRemove            = "remove"
	ResultOK                = "ok"
	ResultFailed            = "failed"
	ResultSkipped           = "skipped"
	ResultPlanned           = "planned"
	ResultNotInFile         = "not in file"
	upJoinTokenTTL          = time.Hour
	upWorkerTokenTTL        = 30 * time.Minute
	upTokenDescriptionStart = "kforge up: "
)

// UpOptions configure Up.
type UpOptions struct {
	// Cluster is the validated cluster.toml; its bundle is a directory on this machine.
	Cluster *config.Cluster
	// Kforge is the kforge binary to install on the hosts (this very program).
	Kforge string
	// Connect opens a host of the file.
	Connect func(ctx context.Context, h *config.Host) (host.Host, error)
	// Concurrency bounds how many hosts are prepared and joined at once.
	Concurrency int
	// DryRun connects and reads the cluster, prints the plan and changes nothing.
	DryRun bool
	// Prune deletes the Nodes of worker hosts that are in the cluster but not in the file.
	Prune bool
	// IgnorePreflight is passed to the hosts' preflight checks.
	IgnorePreflight []string
	// Timeout is passed to the hosts' init and join (--timeout).
	Timeout time.Duration
	// Out carries progress lines; Log diagnostics; HostLog, if set, receives every line the
	// hosts' kforge prints, with secrets redacted.
	Out     *Printer
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
}

// UpReport is what Up did.
type UpReport struct {
	Cluster string       `json:"cluster"`
	Hosts   []HostReport `json:"hosts"`
	// AdminKubeconfig is the admin kubeconfig Up read from the cluster (the caller writes it).
	AdminKubeconfig []byte  `json:"-"`
	Seconds         float64 `json:"seconds"`
}

// Failed lists the hosts that failed, with their causes.
func (r *UpReport) Failed() error {
	var errs []error
	for _, h := range r.Hosts {
		if h.Result == ResultFailed {
			errs = append(errs, fmt.Errorf("%s: %s", h.Host, h.Error))
		}
	}
	return errors.Join(errs...)
}

// up is the state of one run.
type up struct {
	o       UpOptions
	c       *config.Cluster
	hosts   map[string]host.Host
	reports map[string]*HostReport
	mu      sync.Mutex
	secMu   sync.RWMutex // guards secrets
	secrets []string
	bundle  *bundle.Bundle
	remote  []byte // cluster.toml as the hosts read it
	// kforgeSum is the sha256 of the kforge binary, hashed once, when the first host needs
	// it (a run that changes no host never reads the binary).
	kforgeSum     string
	kforgeSumErr  error
	kforgeSumOnce sync.Once
	admin         []byte
	cs            kubernetes.Interface
	nodes         map[string]*corev1.Node
	// stale names hosts whose Node exists although the host holds no kubelet.conf.
	stale map[string]bool
}

// Up makes the hosts of o.Cluster a cluster: it connects to every host, finds out which
// are already in the cluster (from the cluster itself), installs kforge, the configuration
// and the bundle on the others, runs init on the first control-plane host if there is no
// cluster yet, joins the other control-plane hosts one at a time, then the workers in
// parallel, each with its own short-lived token. A host that fails does not stop the
// others; the report lists every failure.
func Up(ctx context.Context, o UpOptions) (*UpReport, error) {
	start := time.Now()
	if o.Concurrency <= 0 {
		o.Concurrency = host.DefaultConcurrency
	}
	u := &up{o: o, c: o.Cluster, hosts: map[string]host.Host{}, reports: map[string]*HostReport{}}
	defer u.closeAll()
	for _, h := range u.c.Hosts {
		role := config.RoleWorker
		if h.IsControlPlane() {
			role = config.RoleControlPlane
		}
		u.reports[h.Name] = &HostReport{Host: h.Name, Role: role}
	}
	if err := u.prepareLocal(); err != nil {
		return nil, err
	}
	u.connectAll(ctx)
	if err := u.findCluster(ctx, u.c.ControlPlaneHosts()); err != nil {
		return u.report(start), err
	}
	u.findStale(ctx)
	initHost := u.plan()
	if o.DryRun {
		return u.report(start), nil
	}
	if err := u.run(ctx, initHost); err != nil {
		return u.report(start), err
	}
	return u.report(start), nil
}

// PrepareHosts does for every host of o.Cluster what Up does before a join: connect,
// install kforge and cluster.toml, run the worker preflight checks and upload the bundle's
// parts. It asks no cluster and joins nothing; the benchmarks time it.
func PrepareHosts(ctx context.Context, o UpOptions) (*UpReport, error) {
	start := time.Now()
	if o.Concurrency <= 0 {
		o.Concurrency = host.DefaultConcurrency
	}
	u := &up{o: o, c: o.Cluster, hosts: map[string]host.Host{}, reports: map[string]*HostReport{}}
	defer u.closeAll()
	for _, h := range u.c.Hosts {
		u.reports[h.Name] = &HostReport{Host: h.Name, Role: config.RoleWorker, Action: ActionJoinWorker, Result: ResultPlanned}
	}
	if err := u.prepareLocal(); err != nil {
		return nil, err
	}
	u.connectAll(ctx)
	var all []*config.Host
	for i := range u.c.Hosts {
		all = append(all, &u.c.Hosts[i])
	}
	u.forEach(ctx, all, func(ctx context.Context, h *config.Host) error {
		if err := u.prepareHost(ctx, h); err != nil {
			return err
		}
		u.done(h.Name, "prepared")
		return nil
	})
	return u.report(start), ctx.Err()
}

func (u *up) closeAll() {
	for _, h := range u.hosts {
		h.Close()
	}
}

func (u *up) report(start time.Time) *UpReport {
	r := &UpReport{Cluster: u.c.Name, AdminKubeconfig: u.admin, Seconds: time.Since(start).Seconds()}
	names := make([]string, 0, len(u.reports))
	order := map[string]int{}
	for i, h := range u.c.Hosts {
		order[h.Name] = i
	}
	for n := range u.reports {
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
		h := *u.reports[n]
		h.Seconds = h.Duration.Seconds()
		r.Hosts = append(r.Hosts, h)
	}
	return r
}

func (u *up) fail(name string, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	r := u.reports[name]
	r.Result, r.Error = ResultFailed, u.redact(err.Error())
	u.o.Out.Phase(name, "FAILED: %s", r.Error)
}

func (u *up) redact(s string) string {
	u.secMu.RLock()
	defer u.secMu.RUnlock()
	for _, sec := range u.secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "<redacted>")
		}
	}
	return s
}

// addSecret adds a string to redact; longer secrets are replaced first, so that a token
// is redacted whole before its secret half is.
func (u *up) addSecret(s string) {
	u.secMu.Lock()
	u.secrets = append(u.secrets, s)
	sort.Slice(u.secrets, func(i, j int) bool { return len(u.secrets[i]) > len(u.secrets[j]) })
	u.secMu.Unlock()
}

// prepareLocal loads the bundle and renders the cluster.toml the hosts get.
func (u *up) prepareLocal() error {
	remote := *u.c
	if u.c.Bundle != "" {
		b, err := bundle.Load(u.c.Bundle)
		if err != nil {
			return err
		}
		u.bundle = b
		remote.Bundle = RemoteBundleDir
	}
	text, err := config.Encode(&remote)
	if err != nil {
		return err
	}
	u.remote = text
	return nil
}

// connectAll connects to every host at once and records the ones it cannot reach.
func (u *up) connectAll(ctx context.Context) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, u.o.Concurrency)
	for i := range u.c.Hosts {
		h := &u.c.Hosts[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			conn, err := u.o.Connect(ctx, h)
			if err != nil {
				u.fail(h.Name, fmt.Errorf("unreachable: %w", err))
				return
			}
			u.mu.Lock()
			u.hosts[h.Name] = conn
			u.mu.Unlock()
		}()
	}
	wg.Wait()
	if n := len(u.c.Hosts) - len(u.hosts); n > 0 {
		u.o.Out.Plain("%d of %d hosts unreachable; going on with the others", n, len(u.c.Hosts))
	}
}

// findCluster reads admin.conf from the first control-plane host that has one and lists the
// cluster's nodes with it. No admin.conf anywhere means there is no cluster yet.
func (u *up) findCluster(ctx context.Context, cps []*config.Host) error {
	var silent []string
	for _, h := range cps {
		conn, ok := u.hosts[h.Name]
		if !ok {
			continue
		}
		res, err := conn.Run(ctx, host.Cmd{Script: "cat /etc/kubernetes/admin.conf 2>/dev/null || true", Display: "read admin.conf"})
		if err != nil {
			return fmt.Errorf("%s: reading admin.conf: %w", h.Name, err)
		}
		if len(bytes.TrimSpace(res.Stdout)) == 0 {
			continue
		}
		if err := u.useAdmin(ctx, res.Stdout); err != nil {
			u.o.Out.Phase(h.Name, "WARNING: it has admin.conf, but the cluster does not answer through it: %v", err)
			silent = append(silent, h.Name)
			continue
		}
		u.o.Out.Phase("up", "cluster %q found through %s: %d nodes", u.c.Name, h.Name, len(u.nodes))
		return nil
	}
	if len(silent) > 0 {
		// An init that stopped half-way, or a control plane that is down: init converges,
		// so running it again on the first control-plane host brings the cluster back.
		u.o.Out.Phase("up", "no control-plane host answers (%s); init runs again on the first one", strings.Join(silent, ", "))
	}
	return nil
}

// useAdmin builds the admin client from admin.conf and lists the nodes.
func (u *up) useAdmin(ctx context.Context, admin []byte) error {
	rc, err := clientcmd.RESTConfigFromKubeConfig(admin)
	if err != nil {
		return fmt.Errorf("reading admin.conf: %w", err)
	}
	rc.Timeout = 20 * time.Second
	rc.UserAgent = "kforge-up"
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	var list *corev1.NodeList
	err = wait.Poll(ctx, time.Second, 20*time.Second, func(ctx context.Context) error {
		list, err = cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("listing nodes at %s: %w", rc.Host, err)
	}
	u.admin, u.cs = admin, cs
	u.nodes = map[string]*corev1.Node{}
	for i := range list.Items {
		u.nodes[list.Items[i].Name] = &list.Items[i]
	}
	return nil
}

func isControlPlaneNode(n *corev1.Node) bool {
	_, ok := n.Labels["node-role.kubernetes.io/control-plane"]
	return ok
}

// findStale asks every reachable host that has a Node whether it still holds its
// kubelet.conf; one that does not was reset, and its Node is stale.
func (u *up) findStale(ctx context.Context) {
	u.stale = map[string]bool{}
	var wg sync.WaitGroup
	for name, conn := range u.hosts {
		if u.nodes[name] == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := conn.Run(ctx, host.Cmd{Script: "test -f /etc/kubernetes/kubelet.conf && echo joined || echo reset", Display: "check kubelet.conf"})
			if err == nil && strings.TrimSpace(string(res.Stdout)) == "reset" {
				u.mu.Lock()
				u.stale[name] = true
				u.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// dropStaleNode deletes the Node of a host that was reset, so that it can join again.
func (u *up) dropStaleNode(ctx context.Context, name string) error {
	if !u.stale[name] || u.cs == nil {
		return nil
	}
	err := u.cs.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting the stale Node %s: %w", name, err)
	}
	return nil
}

// plan decides each host's action and prints it; it returns the host to init, if any.
func (u *up) plan() string {
	initHost := ""
	if u.cs == nil {
		if cps := u.c.ControlPlaneHosts(); len(cps) > 0 {
			initHost = cps[0].Name
		}
	}
	for _, h := range u.c.Hosts {
		r := u.reports[h.Name]
		if r.Result == ResultFailed {
			continue
		}
		switch {
		case u.nodes[h.Name] != nil && h.IsControlPlane() && !isControlPlaneNode(u.nodes[h.Name]) && !u.stale[h.Name]:
			// The kubelet registered, but the join stopped before the node was marked: run
			// the join again, which picks up where it stopped.
			u.o.Out.Phase(h.Name, "its Node is not marked as a control-plane node yet: its join did not finish")
			r.Action = ActionJoinControlPlane
		case u.nodes[h.Name] != nil && u.stale[h.Name]:
			u.o.Out.Phase(h.Name, "has a Node in the cluster but no kubelet.conf (it was reset): its Node will be replaced")
			r.Action = ActionJoinWorker
			if h.IsControlPlane() {
				r.Action = ActionJoinControlPlane
			}
		case u.nodes[h.Name] != nil:
			r.Action, r.Result = ActionUnchanged, ResultOK
			state := "NotReady"
			if nodeIsReady(u.nodes[h.Name]) {
				state = "Ready"
			}
			u.o.Out.Phase(h.Name, "in the cluster (%s): leaving it alone", state)
			continue
		case h.Name == initHost:
			r.Action = ActionInit
		case h.IsControlPlane():
			r.Action = ActionJoinControlPlane
		default:
			r.Action = ActionJoinWorker
		}
		r.Result = ResultPlanned
		u.o.Out.Phase(h.Name, "will %s", r.Action)
	}
	var extra []string
	for name, n := range u.nodes {
		if _, ok := u.c.HostByName(name); ok {
			continue
		}
		role := config.RoleWorker
		if isControlPlaneNode(n) {
			role = config.RoleControlPlane
		}
		u.reports[name] = &HostReport{Host: name, Role: role, Action: ActionUnchanged, Result: ResultNotInFile}
		extra = append(extra, name)
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		what := "kept (pass --prune to delete the Nodes of workers)"
		if u.o.Prune {
			what = "to be pruned"
		}
		u.o.Out.Phase("up", "in the cluster but not in the file: %s; %s", strings.Join(extra, ", "), what)
	}
	return initHost
}

// pending returns the hosts whose planned action is action, in file order.
func (u *up) pending(action string) []*config.Host {
	var out []*config.Host
	for i := range u.c.Hosts {
		h := &u.c.Hosts[i]
		if r := u.reports[h.Name]; r.Action == action && r.Result == ResultPlanned {
			out = append(out, h)
		}
	}
	return out
}

func (u *up) run(ctx context.Context, initHost string) error {
	var todo []*config.Host
	for _, a := range []string{ActionInit, ActionJoinControlPlane, ActionJoinWorker} {
		todo = append(todo, u.pending(a)...)
	}
	// Prepare every host that needs work: kforge, cluster.toml, preflight, the bundle.
	u.forEach(ctx, todo, func(ctx context.Context, h *config.Host) error { return u.prepareHost(ctx, h) })
	if ctx.Err() != nil {
		return ctx.Err()
	}

	token, err := tokens.Generate()
	if err != nil {
		return err
	}
	key, err := bootstrap.GenerateCertificateKey()
	if err != nil {
		return err
	}
	u.addSecret(token.Secret)
	u.addSecret(token.String())
	u.addSecret(key.String())
	cpJoins := u.pending(ActionJoinControlPlane)

	if initHost != "" {
		r := u.reports[initHost]
		if r.Result != ResultPlanned {
			u.skipAll(fmt.Sprintf("the first control-plane host %s could not be prepared", initHost))
			return fmt.Errorf("cannot init the cluster: %s failed", initHost)
		}
		h, _ := u.c.HostByName(initHost)
		args := append([]string{"init", "-f", RemoteConfig, "--node", initHost, "--token-ttl", upJoinTokenTTL.String()}, u.hostFlags()...)
		if len(cpJoins) > 0 {
			args = append(args, "--upload-certs")
		}
		err := u.timed(h.Name, func() error {
			return u.kforge(ctx, h, args, map[string]string{"KFORGE_TOKEN": token.String(), "KFORGE_CERTIFICATE_KEY": key.String()})
		})
		if err != nil {
			u.fail(initHost, err)
			u.skipAll("init on " + initHost + " failed")
			return fmt.Errorf("init on %s failed", initHost)
		}
		u.done(initHost, "initialised the cluster")
		res, err := u.hosts[initHost].Run(ctx, host.Cmd{Script: "cat /etc/kubernetes/admin.conf", Display: "read admin.conf"})
		if err != nil {
			return fmt.Errorf("%s: reading admin.conf: %w", initHost, err)
		}
		if err := u.useAdmin(ctx, res.Stdout); err != nil {
			return err
		}
		defer u.deleteToken(context.WithoutCancel(ctx), token.ID)
	} else if u.cs != nil && len(cpJoins) > 0 {
		// The cluster exists: a join token of our own for the control-plane joins.
		if err := u.createToken(ctx, token, upJoinTokenTTL, "control-plane joins"); err != nil {
			return err
		}
		defer u.deleteToken(context.WithoutCancel(ctx), token.ID)
	}
	if u.cs == nil {
		return nil
	}
	pin, err := u.caPin()
	if err != nil {
		return err
	}

	if len(cpJoins) > 0 && initHost == "" {
		if err := u.uploadCerts(ctx, key); err != nil {
			for _, h := range cpJoins {
				u.fail(h.Name, fmt.Errorf("sharing the control-plane certificates failed: %w", err))
			}
			cpJoins = nil
		}
	}
	for i, h := range cpJoins {
		if u.reports[h.Name].Result != ResultPlanned {
			continue
		}
		err := u.timed(h.Name, func() error {
			if err := u.dropStaleNode(ctx, h.Name); err != nil {
				return err
			}
			return u.kforge(ctx, h, append([]string{"join", "-f", RemoteConfig, "--node", h.Name, "--discovery-token-ca-cert-hash", pin}, u.hostFlags()...),
				map[string]string{"KFORGE_TOKEN": token.String(), "KFORGE_CERTIFICATE_KEY": key.String()})
		})
		if err != nil {
			u.fail(h.Name, err)
			for _, rest := range cpJoins[i+1:] {
				u.skip(rest.Name, "the control-plane join of "+h.Name+" failed; control-plane hosts join one at a time")
			}
			break
		}
		u.done(h.Name, "joined as a control-plane member")
	}

	u.forEach(ctx, u.pending(ActionJoinWorker), func(ctx context.Context, h *config.Host) error {
		t, err := tokens.Generate()
		if err != nil {
			return err
		}
		u.addSecret(t.Secret)
		u.addSecret(t.String())
		if err := u.createToken(ctx, t, upWorkerTokenTTL, "join of "+h.Name); err != nil {
			return err
		}
		defer u.deleteToken(context.WithoutCancel(ctx), t.ID)
		err = u.timed(h.Name, func() error {
			if err := u.dropStaleNode(ctx, h.Name); err != nil {
				return err
			}
			return u.kforge(ctx, h, append([]string{"join", "-f", RemoteConfig, "--node", h.Name, "--discovery-token-ca-cert-hash", pin}, u.hostFlags()...),
				map[string]string{"KFORGE_TOKEN": t.String()})
		})
		if err != nil {
			return err
		}
		u.done(h.Name, "joined as a worker")
		return nil
	})
	if u.o.Prune {
		u.prune(ctx)
	}
	return ctx.Err()
}

// hostFlags are the flags every init and join on a host gets.
func (u *up) hostFlags() []string {
	var f []string
	if u.o.Timeout > 0 {
		f = append(f, "--timeout", u.o.Timeout.String())
	}
	if len(u.o.IgnorePreflight) > 0 {
		f = append(f, "--ignore-preflight-errors", strings.Join(u.o.IgnorePreflight, ","))
	}
	return f
}

// forEach runs fn for the planned hosts through host.ForEach, with the concurrency limit;
// an error, or cancellation before the host's turn, marks that host failed.
func (u *up) forEach(ctx context.Context, hosts []*config.Host, fn func(context.Context, *config.Host) error) {
	var conns []host.Host
	byName := map[string]*config.Host{}
	for _, h := range hosts {
		if c := u.hosts[h.Name]; c != nil && u.reports[h.Name].Result == ResultPlanned {
			conns = append(conns, c)
			byName[h.Name] = h
		}
	}
	var mu sync.Mutex
	started := map[string]bool{}
	err := host.ForEach(ctx, conns, u.o.Concurrency, func(ctx context.Context, c host.Host) error {
		mu.Lock()
		started[c.Name()] = true
		mu.Unlock()
		return fn(ctx, byName[c.Name()])
	})
	var he *host.HostError
	for _, e := range unjoin(err) {
		if errors.As(e, &he) {
			u.fail(he.Host, he.Err)
		}
	}
	for name := range byName {
		if !started[name] {
			u.fail(name, ctx.Err())
		}
	}
}

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

func (u *up) timed(name string, fn func() error) error {
	start := time.Now()
	err := fn()
	u.mu.Lock()
	u.reports[name].Duration += time.Since(start)
	u.mu.Unlock()
	return err
}

func (u *up) done(name, what string) {
	u.mu.Lock()
	r := u.reports[name]
	r.Result = ResultOK
	d := r.Duration
	u.mu.Unlock()
	u.o.Out.Phase(name, "%s (%s)", what, roundDuration(d))
}

func (u *up) skip(name, why string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if r := u.reports[name]; r.Result == ResultPlanned {
		r.Result, r.Error = ResultSkipped, why
	}
}

func (u *up) skipAll(why string) {
	for _, h := range u.c.Hosts {
		u.skip(h.Name, why)
	}
}

// prepareHost installs kforge and cluster.toml, runs preflight, then uploads the bundle.
func (u *up) prepareHost(ctx context.Context, h *config.Host) error {
	return u.timed(h.Name, func() error {
		conn := u.hosts[h.Name]
		r := u.reports[h.Name]
		start := time.Now()
		sent, err := u.ensureKforge(ctx, h)
		if err != nil {
			return err
		}
		role := config.RoleWorker
		switch {
		case r.Action == ActionInit:
			role = "init"
		case h.IsControlPlane():
			role = config.RoleControlPlane
		}
		args := []string{"preflight", "-f", RemoteConfig, "--node", h.Name, "--role", role}
		if provides := u.bundleBinaries(); len(provides) > 0 {
			args = append(args, "--bundle-provides", strings.Join(provides, ","))
		}
		if len(u.o.IgnorePreflight) > 0 {
			args = append(args, "--ignore-preflight-errors", strings.Join(u.o.IgnorePreflight, ","))
		}
		if err := u.kforge(ctx, h, args, nil); err != nil {
			return fmt.Errorf("preflight: %w", err)
		}
		u.o.Out.Phase(h.Name, "preflight passed")
		n, err := u.uploadBundle(ctx, h, conn)
		sent += n
		u.mu.Lock()
		r.Uploaded += sent
		u.mu.Unlock()
		if err != nil {
			return err
		}
		d := time.Since(start)
		u.o.Out.Phase(h.Name, "kforge, cluster.toml and the bundle are in place: %s sent in %s (%s/s)", mib(sent), roundDuration(d), mib(int64(float64(sent)/max(d.Seconds(), 0.001))))
		return nil
	})
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// bundleBinaries names the binaries the bundle installs.
func (u *up) bundleBinaries() []string {
	if u.bundle == nil {
		return nil
	}
	return u.bundle.BinaryNames()
}

// controlPlaneImages are the images only control-plane hosts need.
var controlPlaneImages = []string{"/kube-apiserver:", "/kube-controller-manager:", "/kube-scheduler:", "/etcd:"}

// bundleFiles are the parts of the bundle host h needs: the binaries it installs and the
// images it runs; the control-plane images only on control-plane hosts.
func (u *up) bundleFiles(h *config.Host) []bundle.File {
	var out []bundle.File
	for _, f := range u.bundle.Manifest.Files {
		switch f.Kind {
		case bundle.KindBinary:
			out = append(out, f)
		case bundle.KindImage:
			cp := slices.ContainsFunc(f.Images, func(ref string) bool {
				return slices.ContainsFunc(controlPlaneImages, func(s string) bool { return strings.Contains(ref, s) })
			})
			if !cp || h.IsControlPlane() {
				out = append(out, f)
			}
		}
	}
	return out
}

// uploadBundle sends the parts of the bundle h needs, then their manifest, and reports
// progress for large files.
func (u *up) uploadBundle(ctx context.Context, h *config.Host, conn host.Host) (int64, error) {
	if u.bundle == nil {
		return 0, nil
	}
	files := u.bundleFiles(h)
	var total, sent, skipped int64
	for _, f := range files {
		total += f.Size
	}
	lastSaid := time.Now()
	start := time.Now()
	for _, f := range files {
		base := sent
		res, err := conn.Upload(ctx, host.File{
			LocalPath: path.Join(u.bundle.Dir, f.Path),
			Dst:       path.Join(RemoteBundleDir, f.Path),
			Mode:      0o644,
			SHA256:    f.SHA256,
			Progress: func(n, _ int64) {
				if time.Since(lastSaid) < 2*time.Second {
					return
				}
				lastSaid = time.Now()
				done := base + n
				u.o.Out.Phase(h.Name, "uploading the bundle: %s of %s (%s/s)", mib(done), mib(total),
					mib(int64(float64(done)/max(time.Since(start).Seconds(), 0.001))))
			},
		})
		if err != nil {
			return sent, err
		}
		if res.Skipped {
			skipped++
		}
		sent += res.Bytes
	}
	m := bundle.Manifest{Format: u.bundle.Manifest.Format, Versions: u.bundle.Manifest.Versions, Files: files}
	data, err := m.JSON()
	if err != nil {
		return sent, err
	}
	res, err := conn.Upload(ctx, host.BytesFile(path.Join(RemoteBundleDir, bundle.ManifestName), data, 0o644))
	if err != nil {
		return sent, err
	}
	sent += res.Bytes
	u.o.Log.Debug("bundle uploaded", "host", h.Name, "files", len(files), "unchanged", skipped, "bytes", sent)
	return sent, nil
}

// kforge runs the installed kforge on h with args, passing secrets as environment
// variables through stdin (never on a command line), and keeps its redacted output.
func (u *up) kforge(ctx context.Context, h *config.Host, args []string, secrets map[string]string) error {
	var script strings.Builder
	var stdin strings.Builder
	script.WriteString("set -e\n")
	keys := make([]string, 0, len(secrets))
	for k := range secrets {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&script, "IFS= read -r %s\nexport %s\n", k, k)
		stdin.WriteString(secrets[k] + "\n")
	}
	script.WriteString("exec " + host.ShellQuote(append([]string{RemoteKforge}, args...)...) + "\n")
	lw := &lineWriter{u: u, host: h.Name}
	_, err := u.hosts[h.Name].Run(ctx, host.Cmd{
		Script:  script.String(),
		Stdin:   strings.NewReader(stdin.String()),
		Stdout:  lw,
		Stderr:  lw,
		Display: "kforge " + strings.Join(args, " "),
	})
	lw.flush()
	if err != nil {
		if tail := lw.tail(12); tail != "" {
			return fmt.Errorf("kforge %s: %w\n%s", args[0], err, tail)
		}
		return fmt.Errorf("kforge %s: %w", args[0], err)
	}
	return nil
}

// lineWriter keeps a host's output, redacted, and copies it to HostLog.
type lineWriter struct {
	u     *up
	host  string
	mu    sync.Mutex
	buf   []byte
	lines []string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) line(s string) {
	s = w.u.redact(s)
	w.lines = append(w.lines, s)
	if len(w.lines) > 200 {
		w.lines = w.lines[len(w.lines)-200:]
	}
	if w.u.o.HostLog != nil {
		fmt.Fprintf(w.u.o.HostLog, "%s: %s\n", w.host, s)
	}
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = nil
	}
}

func (w *lineWriter) tail(n int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.lines
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return "    " + strings.Join(l, "\n    ")
}

// createToken stores a join token that expires after ttl.
func (u *up) createToken(ctx context.Context, t tokens.Token, ttl time.Duration, what string) error {
	spec := bootstrap.JoinTokenSpec(time.Now().Add(ttl))
	spec.Description = upTokenDescriptionStart + what
	_, _, err := apiclient.Ensure(ctx, u.cs, tokens.Secret(t, spec))
	if err != nil {
		return fmt.Errorf("creating a join token for %s: %w", what, err)
	}
	return nil
}

// deleteToken removes a token once its use is over.
func (u *up) deleteToken(ctx context.Context, id string) {
	if u.cs == nil {
		return
	}
	err := u.cs.CoreV1().Secrets(tokens.SecretNamespace).Delete(ctx, tokens.SecretName(id), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		u.o.Out.Phase("up", "WARNING: deleting join token %s: %v; it expires by itself", id, err)
	}
}

// caPin is the discovery pin of the cluster CA in admin.conf.
func (u *up) caPin() (string, error) {
	cfg, err := clientcmd.Load(u.admin)
	if err != nil {
		return "", fmt.Errorf("reading admin.conf: %w", err)
	}
	for _, c := range cfg.Clusters {
		ca, err := certs.ParseCertPEM(c.CertificateAuthorityData)
		if err != nil {
			return "", fmt.Errorf("reading the cluster CA in admin.conf: %w", err)
		}
		return certs.PinHash(ca), nil
	}
	return "", errors.New("admin.conf names no cluster")
}

// uploadCerts shares the control-plane certificates again, sealed with key, from a
// control-plane host already in the cluster.
func (u *up) uploadCerts(ctx context.Context, key bootstrap.CertificateKey) error {
	for _, h := range u.c.ControlPlaneHosts() {
		if u.nodes[h.Name] == nil || u.hosts[h.Name] == nil {
			continue
		}
		if _, err := u.ensureKforge(ctx, h); err != nil {
			return err
		}
		return u.kforge(ctx, h, []string{"init", "phase", "upload-certs", "--upload-certs", "-f", RemoteConfig, "--node", h.Name},
			map[string]string{"KFORGE_CERTIFICATE_KEY": key.String()})
	}
	return errors.New("no control-plane host of the file that is in the cluster is reachable")
}

// ensureKforge installs kforge and cluster.toml on a host and returns the bytes it sent;
// unchanged files are not sent.
func (u *up) ensureKforge(ctx context.Context, h *config.Host) (int64, error) {
	u.kforgeSumOnce.Do(func() {
		u.kforgeSum, _, u.kforgeSumErr = bundle.HashFile(u.o.Kforge)
	})
	if u.kforgeSumErr != nil {
		return 0, fmt.Errorf("reading the kforge binary to install: %w", u.kforgeSumErr)
	}
	var sent int64
	for _, f := range []host.File{
		{LocalPath: u.o.Kforge, Dst: RemoteKforge, Mode: 0o755, SHA256: u.kforgeSum},
		host.BytesFile(RemoteConfig, u.remote, 0o600),
	} {
		res, err := u.hosts[h.Name].Upload(ctx, f)
		if err != nil {
			return sent, err
		}
		sent += res.Bytes
	}
	return sent, nil
}

// prune deletes the Nodes of workers that are not in the file.
func (u *up) prune(ctx context.Context) {
	for name, r := range u.reports {
		if r.Result != ResultNotInFile {
			continue
		}
		r.Action = ActionRemove
		if r.Role == config.RoleControlPlane {
			r.Result, r.Error = ResultSkipped, "a control-plane node is not pruned: run kforge reset on it, which removes its etcd member first"
			continue
		}
		err := u.cs.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			r.Result, r.Error = ResultFailed, err.Error()
			continue
		}
		r.Result = ResultOK
		u.o.Out.Phase(name, "pruned: deleted its Node (the host itself was not touched; reset it with kforge reset)")
	}
}
