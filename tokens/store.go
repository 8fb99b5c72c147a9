package tokens

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"

	"github.com/kforge/kforge/internal/apiclient"
)

// Errors of Store, for errors.Is. They name token IDs only, never a secret.
var (
	// ErrIDTaken means a token's ID is held by another token, or by a Secret that is not a
	// well-formed token.
	ErrIDTaken = errors.New("already exists with another secret")
	// ErrNotFound means a token has no Secret.
	ErrNotFound = errors.New("bootstrap token not found")
)

// Store reads and writes the Secrets of bootstrap tokens in kube-system. Reads and writes
// are retried on conflicts and transient errors (apiclient.Retry, apiclient.Ensure). Every
// writer of token Secrets goes through it.
type Store struct {
	client kubernetes.Interface
	log    *slog.Logger
}

// NewStore returns the token store of the cluster cs reaches. log gets the warnings about
// malformed token Secrets, never a secret.
func NewStore(cs kubernetes.Interface, log *slog.Logger) *Store {
	return &Store{client: cs, log: log}
}

// Entry is a token and what its Secret says about it.
type Entry struct {
	Token Token
	Spec  Spec
}

// Get reads token id. found is false when it has no Secret. A Secret that is not a
// well-formed token is an error wrapping ErrNotToken.
func (s *Store) Get(ctx context.Context, id string) (t Token, spec Spec, found bool, err error) {
	sec, err := s.secret(ctx, SecretName(id))
	if err != nil || sec == nil {
		return Token{}, Spec{}, false, err
	}
	t, spec, err = FromSecret(sec)
	if err != nil {
		return Token{}, Spec{}, false, err
	}
	return t, spec, true, nil
}

// secret reads Secret kube-system/name; a missing one is nil.
func (s *Store) secret(ctx context.Context, name string) (*corev1.Secret, error) {
	var sec *corev1.Secret
	err := apiclient.Retry(ctx, func(ctx context.Context) error {
		got, err := s.client.CoreV1().Secrets(SecretNamespace).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			sec = nil
			return nil
		case err != nil:
			return err
		}
		sec = got
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading Secret %s/%s: %w", SecretNamespace, name, err)
	}
	return sec, nil
}

// Create writes t's Secret with spec. The Secret of the same token is updated in place; one
// of another token with t's ID, or one that is not a well-formed token, is left alone and
// the error wraps ErrIDTaken.
func (s *Store) Create(ctx context.Context, t Token, spec Spec) (apiclient.Outcome, error) {
	_, out, err := s.CreateOwner(ctx, t, spec)
	return out, err
}

// CreateOwner is Create for a token whose Secret owns other objects, so that the cluster
// deletes them with it: it also returns the Secret as the cluster now has it, whose name
// and UID an owner reference needs.
func (s *Store) CreateOwner(ctx context.Context, t Token, spec Spec) (*corev1.Secret, apiclient.Outcome, error) {
	have, _, found, err := s.Get(ctx, t.ID)
	switch {
	case errors.Is(err, ErrNotToken), found && !have.Equal(t):
		return nil, apiclient.Unchanged, taken(t.ID)
	case err != nil:
		return nil, apiclient.Unchanged, err
	}
	return s.write(ctx, t, spec)
}

func taken(id string) error {
	return fmt.Errorf("bootstrap token %s %w", id, ErrIDTaken)
}

func (s *Store) write(ctx context.Context, t Token, spec Spec) (*corev1.Secret, apiclient.Outcome, error) {
	got, out, err := apiclient.Ensure(ctx, s.client, Secret(t, spec))
	if err != nil {
		return nil, out, fmt.Errorf("writing bootstrap token %s: %w", t.Redacted(), err)
	}
	return got.(*corev1.Secret), out, nil
}

// EnsureJoinToken makes t a join token with want, unless its Secret already holds t as a
// join token (JoinTokenUsable) that lives at least half as long as want would: until half
// of want's lifetime from now has passed, or forever when want never expires. It returns
// the Spec the cluster now has, and Unchanged when it kept the existing one. A Secret of
// another token with t's ID is an error wrapping ErrIDTaken; a Secret that is not a
// well-formed token is logged and rewritten.
func (s *Store) EnsureJoinToken(ctx context.Context, t Token, want Spec, now time.Time) (Spec, apiclient.Outcome, error) {
	have, spec, found, err := s.Get(ctx, t.ID)
	switch {
	case errors.Is(err, ErrNotToken):
		s.log.Warn("rewriting a malformed bootstrap token secret", "token", t, "error", err)
	case err != nil:
		return Spec{}, apiclient.Unchanged, err
	case found && !have.Equal(t):
		return Spec{}, apiclient.Unchanged, taken(t.ID)
	case found && livesAsLong(spec, want, now):
		return spec, apiclient.Unchanged, nil
	}
	_, out, err := s.write(ctx, t, want)
	if err != nil {
		return Spec{}, out, err
	}
	return want, out, nil
}

// livesAsLong reports whether have can join nodes at now and lives at least half as long
// as want.
func livesAsLong(have, want Spec, now time.Time) bool {
	switch {
	case !JoinTokenUsable(have, now):
		return false
	case want.Expires.IsZero():
		return have.Expires.IsZero()
	}
	return !have.Expires.IsZero() && have.Expires.Sub(now) >= want.Expires.Sub(now)/2
}

// JoinTokenUsable reports whether a token with spec s can join nodes at now: it has not
// expired, authenticates, signs cluster-info and is in DefaultNodeGroup.
func JoinTokenUsable(s Spec, now time.Time) bool {
	return !s.Expired(now) && s.Has(UsageAuthentication) && s.Has(UsageSigning) &&
		slices.Contains(s.Groups, DefaultNodeGroup)
}

// Owner reads the token whose Secret ref names. found is false when ref names no token
// Secret, when that Secret is gone, and when it has another UID than ref: a new Secret of
// the same name owns nothing. A Secret that is not a well-formed token is an error wrapping
// ErrNotToken.
func (s *Store) Owner(ctx context.Context, ref metav1.OwnerReference) (t Token, spec Spec, found bool, err error) {
	if ref.Kind != "Secret" || !strings.HasPrefix(ref.Name, bootstrapapi.BootstrapTokenSecretPrefix) {
		return Token{}, Spec{}, false, nil
	}
	sec, err := s.secret(ctx, ref.Name)
	if err != nil || sec == nil || (ref.UID != "" && sec.UID != ref.UID) {
		return Token{}, Spec{}, false, err
	}
	t, spec, err = FromSecret(sec)
	if err != nil {
		return Token{}, Spec{}, false, err
	}
	return t, spec, true, nil
}

// Delete deletes token id's Secret. A token that does not exist is an error wrapping
// ErrNotFound.
func (s *Store) Delete(ctx context.Context, id string) error {
	name := SecretName(id)
	err := apiclient.Retry(ctx, func(ctx context.Context) error {
		return s.client.CoreV1().Secrets(SecretNamespace).Delete(ctx, name, metav1.DeleteOptions{})
	})
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("deleting token %q: %w (no Secret %s/%s)", id, ErrNotFound, SecretNamespace, name)
	case err != nil:
		return fmt.Errorf("deleting Secret %s/%s: %w", SecretNamespace, name, err)
	}
	return nil
}

// List returns the well-formed tokens of the cluster, sorted by ID. Malformed token
// Secrets are logged by name and skipped.
func (s *Store) List(ctx context.Context) ([]Entry, error) {
	var list *corev1.SecretList
	err := apiclient.Retry(ctx, func(ctx context.Context) error {
		var err error
		list, err = s.client.CoreV1().Secrets(SecretNamespace).List(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("type", string(bootstrapapi.SecretTypeBootstrapToken)).String(),
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listing bootstrap token Secrets in %s: %w", SecretNamespace, err)
	}
	entries := []Entry{}
	for i := range list.Items {
		sec := &list.Items[i]
		if sec.Type != bootstrapapi.SecretTypeBootstrapToken {
			continue
		}
		t, spec, err := FromSecret(sec)
		if err != nil {
			s.log.Warn("skipping a malformed bootstrap token Secret", "err", err)
			continue
		}
		entries = append(entries, Entry{Token: t, Spec: spec})
	}
	slices.SortFunc(entries, func(a, b Entry) int { return strings.Compare(a.Token.ID, b.Token.ID) })
	return entries, nil
}

// LongestJoinToken returns the entry of entries that can join nodes at now
// (JoinTokenUsable) and lives longest; of equals, the one with the lowest ID. ok is false
// when none can join nodes.
func LongestJoinToken(entries []Entry, now time.Time) (e Entry, ok bool) {
	usable := slices.DeleteFunc(slices.Clone(entries), func(e Entry) bool { return !JoinTokenUsable(e.Spec, now) })
	if len(usable) == 0 {
		return Entry{}, false
	}
	return slices.MaxFunc(usable, func(a, b Entry) int {
		switch {
		case a.Spec.Expires.Equal(b.Spec.Expires):
			return strings.Compare(b.Token.ID, a.Token.ID)
		case a.Spec.Expires.IsZero():
			return 1
		case b.Spec.Expires.IsZero():
			return -1
		}
		return a.Spec.Expires.Compare(b.Spec.Expires)
	}), true
}
