package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kforge/kforge/addons"
	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/internal/apiclient"
	"github.com/kforge/kforge/kubeconfig"
	"github.com/kforge/kforge/manifests"
	"github.com/kforge/kforge/tokens"
)

// Lifetimes of the join tokens a run creates, and how their descriptions start.
const (
	controlPlaneTokenTTL   = time.Hour
	workerTokenTTL         = 30 * time.Minute
	tokenDescriptionPrefix = "kforge up: "
)

// The environment variables that carry secrets to kforge on a host (through stdin).
const (
	envToken          = bootstrap.EnvToken
	envCertificateKey = bootstrap.EnvCertificateKey
)

// HasCluster reports whether the fleet reaches a cluster (found by Observe or made by
// Init).
func (f *Fleet) HasCluster() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cs != nil
}

// controlPlaneSecrets returns the token and certificate key of this run's control-plane
// joins, made on first use.
func (f *Fleet) controlPlaneSecrets() (tokens.Token, bootstrap.CertificateKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cpToken.IsZero() {
		t, err := tokens.Generate()
		if err != nil {
			return tokens.Token{}, bootstrap.CertificateKey{}, err
		}
		k, err := bootstrap.GenerateCertificateKey()
		if err != nil {
			return tokens.Token{}, bootstrap.CertificateKey{}, err
		}
		f.cpToken, f.cpKey = t, k
		f.addSecret(t.Secret, t.Reveal(), k.Reveal())
	}
	return f.cpToken, f.cpKey, nil
}

// Init runs kforge init on the named host, which must still be planned, and then reads
// the new cluster's admin.conf. With uploadCerts, init shares the control-plane
// certificates for the control-plane joins that follow. If the host cannot init, every
// host still planned is skipped: nothing can join a cluster that does not exist.
func (f *Fleet) Init(ctx context.Context, name string, uploadCerts bool) error {
	if len(f.Pending([]string{name})) == 0 {
		f.SkipPending(fmt.Sprintf("the first control-plane host %s could not be prepared", name))
		return fmt.Errorf("cannot init the cluster: %s failed", name)
	}
	token, key, err := f.controlPlaneSecrets()
	if err != nil {
		return err
	}
	args := append([]string{"init", "-f", RemoteConfig, "--node", name, "--token-ttl", controlPlaneTokenTTL.String()}, f.hostFlags()...)
	if uploadCerts {
		args = append(args, "--upload-certs")
	}
	err = f.timed(name, func() error {
		return f.kforge(ctx, name, args, map[string]string{envToken: token.Reveal(), envCertificateKey: key.Reveal()})
	})
	if err != nil {
		f.Fail(name, err)
		f.SkipPending("init on " + name + " failed")
		return fmt.Errorf("init on %s failed", name)
	}
	f.mu.Lock()
	f.tokenStored, f.certsShared = true, uploadCerts
	f.created = append(f.created, token.ID)
	f.mu.Unlock()
	f.done(name, "initialised the cluster")
	return f.readAdmin(ctx, name)
}

// JoinControlPlanes joins the named hosts that are still planned as control-plane
// members, one at a time, in order. When one fails, the rest are skipped: etcd takes one
// new member at a time, and a failure usually means the next would fail the same way.
func (f *Fleet) JoinControlPlanes(ctx context.Context, names []string) error {
	names = f.Pending(names)
	if len(names) == 0 || !f.HasCluster() {
		return nil
	}
	token, key, err := f.controlPlaneSecrets()
	if err != nil {
		return err
	}
	if err := f.storeControlPlaneToken(ctx, token); err != nil {
		return err
	}
	pin, err := f.caPin()
	if err != nil {
		return err
	}
	if err := f.shareCerts(ctx, key); err != nil {
		for _, n := range names {
			f.Fail(n, fmt.Errorf("sharing the control-plane certificates failed: %w", err))
		}
		return nil
	}
	for i, name := range names {
		err := f.timed(name, func() error {
			if err := f.dropStaleNode(ctx, name); err != nil {
				return err
			}
			return f.kforge(ctx, name, append([]string{"join", "-f", RemoteConfig, "--node", name, "--discovery-token-ca-cert-hash", pin}, f.hostFlags()...),
				map[string]string{envToken: token.Reveal(), envCertificateKey: key.Reveal()})
		})
		if err != nil {
			f.Fail(name, err)
			for _, rest := range names[i+1:] {
				f.Skip(rest, "the control-plane join of "+name+" failed; control-plane hosts join one at a time")
			}
			return nil
		}
		f.done(name, "joined as a control-plane member")
	}
	return nil
}

// storeControlPlaneToken stores the control-plane join token in the cluster, unless init
// did.
func (f *Fleet) storeControlPlaneToken(ctx context.Context, token tokens.Token) error {
	f.mu.Lock()
	stored := f.tokenStored
	f.mu.Unlock()
	if stored {
		return nil
	}
	if err := f.createToken(ctx, token, controlPlaneTokenTTL, "control-plane joins"); err != nil {
		return err
	}
	f.mu.Lock()
	f.tokenStored = true
	f.created = append(f.created, token.ID)
	f.mu.Unlock()
	return nil
}

// JoinWorkers joins the named hosts that are still planned as workers, in parallel, each
// with a token of its own that is deleted once it has joined.
func (f *Fleet) JoinWorkers(ctx context.Context, names []string) error {
	if len(f.Pending(names)) == 0 || !f.HasCluster() {
		return nil
	}
	pin, err := f.caPin()
	if err != nil {
		return err
	}
	f.ForEach(ctx, names, func(ctx context.Context, h *config.Host) error {
		name := h.Name
		t, err := tokens.Generate()
		if err != nil {
			return err
		}
		f.addSecret(t.Secret, t.Reveal())
		if err := f.createToken(ctx, t, workerTokenTTL, "join of "+name); err != nil {
			return err
		}
		defer f.deleteToken(context.WithoutCancel(ctx), t.ID)
		err = f.timed(name, func() error {
			if err := f.dropStaleNode(ctx, name); err != nil {
				return err
			}
			return f.kforge(ctx, name, append([]string{"join", "-f", RemoteConfig, "--node", name, "--discovery-token-ca-cert-hash", pin}, f.hostFlags()...),
				map[string]string{envToken: t.Reveal()})
		})
		if err != nil {
			return err
		}
		f.done(name, "joined as a worker")
		return nil
	})
	return nil
}

// Prune deletes the Nodes of workers that are in the cluster but not in the file. A
// control-plane node is never pruned: its etcd member must leave first.
func (f *Fleet) Prune(ctx context.Context) {
	if !f.HasCluster() {
		return
	}
	f.mu.Lock()
	var extra []*HostReport
	for _, r := range f.reports {
		if r.Result == ResultNotInFile {
			extra = append(extra, r)
		}
	}
	f.mu.Unlock()
	for _, r := range extra {
		f.mu.Lock()
		r.Action = ActionRemove
		if r.Role != config.RoleWorker {
			r.Result, r.Error = ResultSkipped, "a control-plane node is not pruned: run kforge reset on it, which removes its etcd member first"
			f.mu.Unlock()
			continue
		}
		f.mu.Unlock()
		err := f.cs.CoreV1().Nodes().Delete(ctx, r.Host, metav1.DeleteOptions{})
		f.mu.Lock()
		if err != nil && !apierrors.IsNotFound(err) {
			r.Result, r.Error = ResultFailed, err.Error()
			f.mu.Unlock()
			continue
		}
		r.Result = ResultOK
		f.mu.Unlock()
		f.out().Phase(r.Host, "pruned: deleted its Node (the host itself was not touched; reset it with kforge reset)")
	}
}

// Cleanup deletes the join tokens this run stored for control-plane joins; the workers'
// tokens are deleted as each joins. Tokens left behind expire by themselves.
func (f *Fleet) Cleanup(ctx context.Context) {
	f.mu.Lock()
	ids := f.created
	f.created = nil
	f.mu.Unlock()
	for _, id := range ids {
		f.deleteToken(ctx, id)
	}
}

// dropStaleNode deletes the Node of a host that was reset, so that it can join again.
func (f *Fleet) dropStaleNode(ctx context.Context, name string) error {
	f.mu.Lock()
	stale := f.observed.Stale[name]
	f.mu.Unlock()
	if !stale {
		return nil
	}
	err := f.cs.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting the stale Node %s: %w", name, err)
	}
	return nil
}

// createToken stores a join token that expires after ttl.
func (f *Fleet) createToken(ctx context.Context, t tokens.Token, ttl time.Duration, what string) error {
	spec := bootstrap.JoinTokenSpec(time.Now().Add(ttl))
	spec.Description = tokenDescriptionPrefix + what
	if _, err := tokens.NewStore(f.cs, f.o.Log).Create(ctx, t, spec); err != nil {
		return fmt.Errorf("creating a join token for %s: %w", what, err)
	}
	return nil
}

// deleteToken removes a token once its use is over.
func (f *Fleet) deleteToken(ctx context.Context, id string) {
	if !f.HasCluster() {
		return
	}
	err := tokens.NewStore(f.cs, f.o.Log).Delete(ctx, id)
	if err != nil && !errors.Is(err, tokens.ErrNotFound) {
		f.out().Say("WARNING: deleting join token %s: %v; it expires by itself", id, err)
	}
}

// caPin is the discovery pin of the CA of admin.conf's current cluster.
func (f *Fleet) caPin() (string, error) {
	cfg, err := clientcmd.Load(f.admin)
	if err != nil {
		return "", fmt.Errorf("reading admin.conf: %w", err)
	}
	pin, err := kubeconfig.CAPin(cfg, nil)
	if err != nil {
		return "", fmt.Errorf("reading the cluster CA in admin.conf: %w", err)
	}
	return pin, nil
}

// shareCerts makes sure the control-plane certificates are shared, sealed with key:
// init shared them when it ran in this run; otherwise a control-plane host already in the
// cluster uploads them again: the first of the file that can, so that one broken
// control-plane host does not stop the joins.
func (f *Fleet) shareCerts(ctx context.Context, key bootstrap.CertificateKey) error {
	f.mu.Lock()
	shared := f.certsShared
	f.mu.Unlock()
	if shared {
		return nil
	}
	var errs []error
	for _, h := range f.c.ControlPlaneHosts() {
		f.mu.Lock()
		_, member := f.observed.Nodes[h.Name]
		lost := f.observed.Unreachable[h.Name]
		f.mu.Unlock()
		if !member || lost || f.conn(h.Name) == nil {
			continue
		}
		if err := f.uploadCerts(ctx, h.Name, key); err != nil {
			if ctx.Err() != nil {
				return err
			}
			errs = append(errs, fmt.Errorf("%s: %w", h.Name, err))
			continue
		}
		f.mu.Lock()
		f.certsShared = true
		f.mu.Unlock()
		return nil
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return errors.New("no control-plane host of the file that is in the cluster is reachable")
}

// uploadCerts has kforge on a control-plane host in the cluster upload the certificates,
// sealed with key.
func (f *Fleet) uploadCerts(ctx context.Context, name string, key bootstrap.CertificateKey) error {
	if _, err := f.ensureKforge(ctx, name); err != nil {
		return err
	}
	return f.kforge(ctx, name, []string{"init", "phase", "upload-certs", "--upload-certs", "-f", RemoteConfig, "--node", name},
		map[string]string{envCertificateKey: key.Reveal()})
}

// ResetWorkers runs kforge reset on the named worker hosts that are still planned, in
// parallel, and deletes their Nodes when the fleet reaches the cluster.
func (f *Fleet) ResetWorkers(ctx context.Context, names []string, force bool) {
	f.ForEach(ctx, names, func(ctx context.Context, h *config.Host) error { return f.reset(ctx, h, force) })
}

// ResetControlPlanes runs kforge reset on the named control-plane hosts that are still
// planned, one at a time, in the reverse order of the file (the first one last), so that
// each etcd member leaves while the others keep quorum.
func (f *Fleet) ResetControlPlanes(ctx context.Context, names []string, force bool) {
	pending := f.Pending(names)
	for i := len(pending) - 1; i >= 0; i-- {
		h, _ := f.c.HostByName(pending[i])
		if f.conn(h.Name) == nil {
			continue
		}
		if err := f.reset(ctx, h, force); err != nil {
			f.Fail(h.Name, err)
		}
	}
}

func (f *Fleet) reset(ctx context.Context, h *config.Host, force bool) error {
	if _, err := f.ensureKforge(ctx, h.Name); err != nil {
		return err
	}
	args := []string{"reset", "-f", RemoteConfig, "--node", h.Name}
	if force {
		args = append(args, "--force")
	}
	if err := f.timed(h.Name, func() error { return f.kforge(ctx, h.Name, args, nil) }); err != nil {
		return err
	}
	if f.HasCluster() && !h.IsControlPlane() {
		err := f.cs.CoreV1().Nodes().Delete(ctx, h.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			f.out().Phase(h.Name, "WARNING: deleting Node %s: %v", h.Name, err)
		}
	}
	f.done(h.Name, "reset")
	return nil
}

// MarkNodes gives the Node of every host of the file that is in the cluster the labels and
// taints cluster.toml gives it (bootstrap.HostMarks), removing only those an earlier run
// set: a worker's kubelet registers with them once, and cannot change its own taints
// afterwards, so an existing Node converges here, through the admin client. A host whose
// Node does not exist (it failed to join) is left out; a failure marks the host failed.
// On a dry run it reads each Node and says what it would add and remove
// (apiclient.PlanNode), writing nothing. Either way the changes go to the report.
func (f *Fleet) MarkNodes(ctx context.Context) {
	if !f.HasCluster() {
		return
	}
	mark := apiclient.MutateNode
	if f.o.DryRun {
		mark = apiclient.PlanNode
	}
	for i := range f.c.Hosts {
		h := &f.c.Hosts[i]
		marks, err := bootstrap.HostMarks(h)
		if err == nil {
			var ch apiclient.NodeChange
			ch, err = mark(ctx, f.cs, h.Name, marks.Apply)
			switch {
			case apierrors.IsNotFound(err):
				continue
			case err == nil:
				f.reportMarks(h.Name, ch)
			}
		}
		if err != nil {
			f.Fail(h.Name, fmt.Errorf("labelling and tainting Node %s: %w", h.Name, err))
		}
	}
}

// reportMarks prints and records what changed, or would change, in a Node's marks.
func (f *Fleet) reportMarks(name string, ch apiclient.NodeChange) {
	if !ch.Changed {
		return
	}
	add, remove := "added", "removed"
	if f.o.DryRun {
		add, remove = "would add", "would remove"
	} else {
		f.out().Phase(name, "set the labels and taints of its Node from the file")
	}
	for _, m := range ch.Added {
		f.out().Phase(name, "%s %s", add, m)
	}
	for _, m := range ch.Removed {
		f.out().Phase(name, "%s %s", remove, m)
	}
	if len(ch.Added)+len(ch.Removed) == 0 {
		return
	}
	f.mu.Lock()
	f.changes.Nodes = append(f.changes.Nodes, NodeMarksChange{Node: name, Added: ch.Added, Removed: ch.Removed})
	f.mu.Unlock()
}

// ApplyAddons applies the objects of every add-on the file enables (addons.All) through
// the admin client, with server-side apply as kforge's field manager, as init's addon
// phase does (apiclient.ApplyObjects): a setting edited in the file (DNS replicas and
// upstreams, the kube-proxy mode, the flannel backend) reaches a running cluster, and a
// changed configuration rolls the pods that read it. On a dry run it plans the objects
// (apiclient.PlanApply), writing nothing. It prints, per add-on, whether anything changed,
// and each changed object with its fields; the changes go to the report. An add-on the
// file disables is left as it is. It does nothing without a cluster.
func (f *Fleet) ApplyAddons(ctx context.Context) error {
	if !f.HasCluster() {
		if f.o.DryRun {
			f.out().Say("no cluster yet: its init installs the add-ons")
		}
		return nil
	}
	var errs []error
	for _, a := range addons.All() {
		if why, off := a.Disabled(f.c); off {
			f.out().Say("%s: not managed, %s", a.Title, why)
			continue
		}
		objs, err := a.Objects(f.c)
		if err != nil {
			errs = append(errs, fmt.Errorf("building the %s add-on: %w", a.Title, err))
			continue
		}
		changes, err := apiclient.ApplyObjects(ctx, f.cs, objs, f.o.DryRun)
		f.reportAddon(a, changes)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			errs = append(errs, fmt.Errorf("%s: %w", a.Title, err))
		}
	}
	return errors.Join(errs...)
}

// reportAddon prints and records what applying an add-on's objects changed, or would.
func (f *Fleet) reportAddon(a addons.Addon, changes []apiclient.Change) {
	var changed []ObjectChange
	for _, c := range changes {
		f.o.Log.Debug("applied object", "addon", a.Name, "object", c.Object, "result", c.Outcome.String(), "dry-run", f.o.DryRun)
		switch c.Outcome {
		case apiclient.Created:
			changed = append(changed, ObjectChange{Addon: a.Name, Object: c.Object, Change: ChangeCreate})
		case apiclient.Updated:
			changed = append(changed, ObjectChange{Addon: a.Name, Object: c.Object, Change: ChangeUpdate, Fields: c.Fields})
		}
	}
	switch {
	case !f.o.DryRun:
		f.out().Say("%s", apiclient.ApplySummary(a.Title, changes))
	case len(changed) == 0:
		f.out().Say("%s: no change (%d objects)", a.Title, len(changes))
	}
	verbs := map[string]string{ChangeCreate: "created", ChangeUpdate: "updated"}
	if f.o.DryRun {
		verbs = map[string]string{ChangeCreate: "would create", ChangeUpdate: "would change"}
	}
	for _, c := range changed {
		f.out().Say("%s: %s %s", a.Title, verbs[c.Change], c.Object)
		for _, fc := range c.Fields {
			f.out().Say("  %s", fc)
		}
	}
	f.mu.Lock()
	f.changes.Objects = append(f.changes.Objects, changed...)
	f.mu.Unlock()
}

// StoreConfig stores the file's cluster configuration in the cluster, as init's
// upload-config phase does (bootstrap.KubeadmConfigObjects: kube-system/kubeadm-config,
// kforge.toml and the ClusterConfiguration beside it), so that joining nodes read it and
// the next run's plan compares the file with what this run applied. It stores nothing when
// a host failed (the cluster does not match the file yet), and nothing without a cluster.
func (f *Fleet) StoreConfig(ctx context.Context) error {
	if !f.HasCluster() {
		return nil
	}
	if failed := f.Report().Failed(); failed != nil {
		f.out().Say("not storing the file's configuration in the cluster: a host failed, and the next run compares the file with the configuration stored before")
		return nil
	}
	certDir := manifests.DefaultCertDir
	f.mu.Lock()
	if s := f.observed.Stored; s != nil && s.CertificatesDir != "" {
		certDir = s.CertificatesDir
	}
	f.mu.Unlock()
	objs, err := bootstrap.KubeadmConfigObjects(f.c, certDir)
	if err != nil {
		return err
	}
	for _, o := range objs {
		_, out, err := apiclient.Ensure(ctx, f.cs, o)
		if err != nil {
			return err
		}
		what := apiclient.Describe(o)
		switch out {
		case apiclient.Unchanged:
			f.out().Say("using existing %s", what)
		default:
			f.out().Say("%s %s", out, what)
		}
	}
	return nil
}
