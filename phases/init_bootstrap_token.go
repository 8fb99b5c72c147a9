package phases

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/internal/apiclient"
	"github.com/kforge/kforge/internal/wait"
	"github.com/kforge/kforge/kubeconfig"
	"github.com/kforge/kforge/tokens"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
)

// BootstrapTokenPhase creates the join token, the RBAC that joining relies on and the
// cluster-info ConfigMap, then waits until the controller-manager has signed cluster-info
// with the token and checks that signature itself: a join command printed after this phase
// works.
//
// Reads Data.Cluster, Data.Token, Data.TokenTTL, the CA on disk and Data.Client; sets
// Data.Token when it generates one, and the token's expiry for show-join-command.
func BootstrapTokenPhase() Phase {
	return Phase{
		Name:  "bootstrap-token",
		Short: "Create the join token, the RBAC joining relies on and the signed cluster-info",
		Run:   runBootstrapToken,
	}
}

func runBootstrapToken(ctx context.Context, d *Data) error {
	b := &d.BootstrapData
	if b.Token.IsZero() {
		t, err := tokens.Generate()
		if err != nil {
			return err
		}
		b.Token = t
		d.Log.Debug("generated a join token", "token", t)
	}
	cs, err := clusterClient(ctx, d)
	if err != nil {
		return err
	}
	if err := ensureJoinToken(ctx, d, cs); err != nil {
		return err
	}
	if err := ensureObjects(ctx, d, cs, bootstrap.NodeJoinRBAC()...); err != nil {
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
	if err := ensureObjects(ctx, d, cs, objs...); err != nil {
		return err
	}
	return waitForClusterInfoSignature(ctx, d, cs)
}

// ensureJoinToken makes sure the token Secret of Data's token exists, works as a join
// token and has at least half its lifetime left; otherwise it (re)writes it.
func ensureJoinToken(ctx context.Context, d *Data, cs kubernetes.Interface) error {
	b := &d.BootstrapData
	tok := b.Token
	now := d.Now()
	var expires time.Time
	switch {
	case b.TokenTTL == 0:
		expires = now.Add(tokens.DefaultTTL)
	case b.TokenTTL > 0:
		expires = now.Add(b.TokenTTL)
	}
	spec, out, err := tokens.NewStore(cs, d.Log).EnsureJoinToken(ctx, tok, bootstrap.JoinTokenSpec(expires), now)
	if errors.Is(err, tokens.ErrIDTaken) {
		return fmt.Errorf("%w: pass another --token, or delete Secret %s/%s", err, tokens.SecretNamespace, tokens.SecretName(tok.ID))
	}
	if err != nil {
		return err
	}
	b.tokenExpires = spec.Expires
	if out == apiclient.Unchanged {
		d.Out.Say("using existing bootstrap token %s (%s)", tok.ID, describeExpiry(spec.Expires))
		return nil
	}
	reportOutcome(d, tokenSecretName(tok.ID), out)
	d.Out.Say("bootstrap token %s %s", tok.ID, describeExpiry(spec.Expires))
	return nil
}

// tokenSecretName names token id's Secret for messages, as apiclient.Describe would.
func tokenSecretName(id string) string {
	return "Secret " + tokens.SecretNamespace + "/" + tokens.SecretName(id)
}

func describeExpiry(t time.Time) string {
	if t.IsZero() {
		return "never expires"
	}
	return "expires " + t.UTC().Format(time.RFC3339)
}

// waitForClusterInfoSignature waits until the bootstrapsigner has signed cluster-info with
// Data's token and the signature verifies.
func waitForClusterInfoSignature(ctx context.Context, d *Data, cs kubernetes.Interface) error {
	tok := d.BootstrapData.Token
	d.Out.Say("waiting for the controller-manager to sign cluster-info with token %s", tok.ID)
	err := d.Waiter.WaitFor(ctx, d, fmt.Sprintf("cluster-info to be signed with token %s", tok.ID), func(ctx context.Context) error {
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
		d.Out.Say("cluster-info is signed with token %s and the signature verifies", tok.ID)
		return nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the signature of cluster-info (the controller-manager signs it when run with --controllers=*,bootstrapsigner,tokencleaner): %w", err)
	}
	return nil
}
