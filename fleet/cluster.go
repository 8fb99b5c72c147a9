package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/kubeconfig"
	"github.com/kforge/kforge/tokens"
)

// Lifetimes of the join tokens a run creates, and how their descriptions start.
const (
	controlPlaneTokenTTL   = time.Hour
	workerTokenTTL         = 30 * time.Minute
	tokenDescriptionPrefix = "kforge up: "
)

// Environment variables that carry secrets to kforge on a host (through stdin).
const (
	envToken          = "KFORGE_TOKEN"
	envCertificateKey = "KFORGE_CERTIFICATE_KEY"
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
		f.addSecret(t.Secret, t.String(), k.String())
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
		return f.kforge(ctx, name, args, map[string]string{envToken: token.String(), envCertificateKey: key.String()})
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
				map[string]string{envToken: token.String(), envCertificateKey: key.String()})
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
		f.addSecret(t.Secret, t.String())
		if err := f.createToken(ctx, t, workerTokenTTL, "join of "+name); err != nil {
			return err
		}
		defer f.deleteToken(context.WithoutCancel(ctx), t.ID)
		err = f.timed(name, func() error {
			if err := f.dropStaleNode(ctx, name); err != nil {
				return err
			}
			return f.kforge(ctx, name, append([]string{"join", "-f", RemoteConfig, "--node", name, "--discovery-token-ca-cert-hash", pin}, f.hostFlags()...),
				map[string]string{envToken: t.String()})
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
		map[string]string{envCertificateKey: key.String()})
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
