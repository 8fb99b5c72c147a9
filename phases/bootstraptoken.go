package phases

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/internal/apiclient"
	"github.com/kforge/kforge/internal/wait"
	"github.com/kforge/kforge/kubeconfig"
	"github.com/kforge/kforge/tokens"
)

// BootstrapTokenPhase creates the join token, the RBAC that joining relies on and the
// cluster-info ConfigMap, then waits until the controller-manager has signed cluster-info
// with the token and checks that signature itself: a join command printed after this phase
// works.
func BootstrapTokenPhase() Phase {
	return Phase{
		Name:  "bootstrap-token",
		Short: "Create the join token, the RBAC joining relies on and the signed cluster-info",
		Run:   runBootstrapToken,
	}
}

func runBootstrapToken(ctx context.Context, d *Data) error {
	const phase = "bootstrap-token"
	b := &d.BootstrapData
	if b.Token.IsZero() {
		t, err := tokens.Generate()
		if err != nil {
			return err
		}
		b.Token = t
		d.Log.Debug("generated a join token", "token", t)
	}
	cs, err := clusterClient(ctx, d, phase)
	if err != nil {
		return err
	}
	if err := ensureJoinToken(ctx, d, phase, cs); err != nil {
		return err
	}
	if err := ensureObjects(ctx, d, phase, cs, bootstrap.NodeJoinRBAC()...); err != nil {
		return err
	}
	caPEM, err := readClusterCA(d)
	if err != nil {
		return err
	}
	kc, err := kubeconfig.ClusterOnly("", d.Cluster.EndpointURL(), caPEM)
	if err != nil {
		return err
	}
	objs := append([]runtime.Object{bootstrap.ClusterInfo(kc)}, bootstrap.ClusterInfoRBAC()...)
	if err := ensureObjects(ctx, d, phase, cs, objs...); err != nil {
		return err
	}
	return waitForClusterInfoSignature(ctx, d, phase, cs)
}

// ensureJoinToken makes sure the token Secret of Data's token exists, works as a join
// token and has at least half its lifetime left; otherwise it (re)writes it.
func ensureJoinToken(ctx context.Context, d *Data, phase string, cs kubernetes.Interface) error {
	b := &d.BootstrapData
	tok := b.Token
	now := timeNow(d)
	ttl := b.TokenTTL
	if ttl == 0 {
		ttl = tokens.DefaultTTL
	}
	var expires time.Time
	if ttl > 0 {
		expires = now.Add(ttl)
	}
	name := tokens.SecretName(tok.ID)
	cur, err := getSecret(ctx, cs, tokens.SecretNamespace, name)
	if err != nil {
		return err
	}
	if cur != nil {
		have, spec, err := tokens.FromSecret(cur)
		switch {
		case err != nil:
			d.Log.Warn("rewriting a malformed bootstrap token secret", "token", tok, "error", err)
		case !have.Equal(tok):
			return fmt.Errorf("bootstrap token %s already exists with another secret: pass another --token, or delete Secret %s/%s", tok.ID, tokens.SecretNamespace, name)
		case joinTokenReusable(spec, now, ttl):
			b.tokenExpires = spec.Expires
			d.Out.Phase(phase, "using existing bootstrap token %s (%s)", tok.ID, describeExpiry(spec.Expires))
			return nil
		}
	}
	if _, err := ensureObject(ctx, d, phase, cs, tokens.Secret(tok, bootstrap.JoinTokenSpec(expires))); err != nil {
		return err
	}
	b.tokenExpires = expires
	d.Out.Phase(phase, "bootstrap token %s %s", tok.ID, describeExpiry(expires))
	return nil
}

// joinTokenReusable reports whether an existing token can join nodes and lives long
// enough: at least half of ttl left, or never expiring when ttl is negative.
func joinTokenReusable(s tokens.Spec, now time.Time, ttl time.Duration) bool {
	if !joinTokenUsable(s, now) {
		return false
	}
	if ttl < 0 {
		return s.Expires.IsZero()
	}
	return !s.Expires.IsZero() && s.Expires.Sub(now) >= ttl/2
}

func describeExpiry(t time.Time) string {
	if t.IsZero() {
		return "never expires"
	}
	return "expires " + t.UTC().Format(time.RFC3339)
}

// waitForClusterInfoSignature waits until the bootstrapsigner has signed cluster-info with
// Data's token and the signature verifies.
func waitForClusterInfoSignature(ctx context.Context, d *Data, phase string, cs kubernetes.Interface) error {
	tok := d.BootstrapData.Token
	d.Out.Phase(phase, "waiting for the controller-manager to sign cluster-info with token %s", tok.ID)
	err := waitUntil(ctx, d, fmt.Sprintf("cluster-info to be signed with token %s", tok.ID), func(ctx context.Context) error {
		cm, err := cs.CoreV1().ConfigMaps(bootstrap.NamespacePublic).Get(ctx, bootstrap.ClusterInfoName, metav1.GetOptions{})
		if err != nil {
			err = fmt.Errorf("reading ConfigMap %s/%s: %w", bootstrap.NamespacePublic, bootstrap.ClusterInfoName, err)
			if apierrors.IsNotFound(err) || apiclient.IsTransient(err) {
				return err
			}
			return wait.Permanent(err)
		}
		if err := bootstrap.VerifyClusterInfoJWS(cm, tok); err != nil {
			return err
		}
		// Said here, where the check ran, so that a dry run (which checks nothing) does
		// not claim it.
		d.Out.Phase(phase, "cluster-info is signed with token %s and the signature verifies", tok.ID)
		return nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the signature of cluster-info (the controller-manager signs it when run with --controllers=*,bootstrapsigner,tokencleaner): %w", err)
	}
	return nil
}

// timeNow is Data's clock, or the system clock when it has none.
func timeNow(d *Data) time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}
