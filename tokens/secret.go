package tokens

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
)

// DefaultTTL is how long a join token lives unless told otherwise.
const DefaultTTL = 24 * time.Hour

// DefaultNodeGroup is the extra group of the tokens nodes join with. The RBAC that joining
// relies on is bound to it, so a stock `kubeadm join` works with kforge's tokens and the
// other way round.
const DefaultNodeGroup = "system:bootstrappers:kubeadm:default-node-token"

// Usages of a token, as its Secret names them after "usage-bootstrap-".
const (
	// UsageAuthentication lets the token authenticate to the apiserver.
	UsageAuthentication = "authentication"
	// UsageSigning makes the bootstrapsigner sign cluster-info with the token.
	UsageSigning = "signing"
)

// SecretNamespace is where token Secrets live.
const SecretNamespace = metav1.NamespaceSystem

// Spec is what a token's Secret says about it, besides the token itself.
type Spec struct {
	// Expires is when the token stops working; the tokencleaner deletes it then. Zero means
	// the token never expires.
	Expires time.Time
	// Usages are UsageAuthentication and UsageSigning. A token with none can neither
	// authenticate nor sign: it only owns other objects, which are deleted with it.
	Usages []string
	// Groups are the extra groups the token authenticates as, besides system:bootstrappers.
	Groups []string
	// Description says what the token is for.
	Description string
}

// Expired reports whether the token has expired at now.
func (s Spec) Expired(now time.Time) bool {
	return !s.Expires.IsZero() && !now.Before(s.Expires)
}

// Has reports whether the token has usage u.
func (s Spec) Has(u string) bool { return slices.Contains(s.Usages, u) }

// SecretName is the name of token id's Secret in kube-system: "bootstrap-token-<id>".
func SecretName(id string) string { return bootstraputil.BootstrapTokenSecretName(id) }

// Secret returns the Secret kube-system/bootstrap-token-<id> that makes t a bootstrap
// token. Usages are written in a fixed order and groups as given.
func Secret(t Token, s Spec) *corev1.Secret {
	data := map[string][]byte{
		bootstrapapi.BootstrapTokenIDKey:     []byte(t.ID),
		bootstrapapi.BootstrapTokenSecretKey: []byte(t.Secret),
	}
	if s.Description != "" {
		data[bootstrapapi.BootstrapTokenDescriptionKey] = []byte(s.Description)
	}
	if !s.Expires.IsZero() {
		data[bootstrapapi.BootstrapTokenExpirationKey] = []byte(s.Expires.UTC().Format(time.RFC3339))
	}
	for _, u := range s.Usages {
		data[bootstrapapi.BootstrapTokenUsagePrefix+u] = []byte("true")
	}
	if len(s.Groups) > 0 {
		data[bootstrapapi.BootstrapTokenExtraGroupsKey] = []byte(strings.Join(s.Groups, ","))
	}
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      SecretName(t.ID),
			Namespace: SecretNamespace,
		},
		Type: bootstrapapi.SecretTypeBootstrapToken,
		Data: data,
	}
}

// ErrNotToken is wrapped by FromSecret's errors: the Secret is not a well-formed bootstrap
// token.
var ErrNotToken = errors.New("not a valid bootstrap token secret")

// FromSecret reads a bootstrap token Secret. Errors name the Secret and what is wrong with
// it, never a value.
func FromSecret(sec *corev1.Secret) (Token, Spec, error) {
	bad := func(why string) (Token, Spec, error) {
		return Token{}, Spec{}, fmt.Errorf("%w: Secret %s/%s %s", ErrNotToken, sec.Namespace, sec.Name, why)
	}
	if sec.Type != bootstrapapi.SecretTypeBootstrapToken {
		return bad(fmt.Sprintf("has type %q, want %q", sec.Type, bootstrapapi.SecretTypeBootstrapToken))
	}
	id := string(sec.Data[bootstrapapi.BootstrapTokenIDKey])
	if !bootstraputil.IsValidBootstrapTokenID(id) {
		return bad("has no valid " + bootstrapapi.BootstrapTokenIDKey)
	}
	if sec.Name != SecretName(id) {
		return bad(fmt.Sprintf("holds token ID %q, want it named %s", id, SecretName(id)))
	}
	secret := string(sec.Data[bootstrapapi.BootstrapTokenSecretKey])
	if !bootstraputil.IsValidBootstrapToken(bootstraputil.TokenFromIDAndSecret(id, secret)) {
		return bad("has no valid " + bootstrapapi.BootstrapTokenSecretKey)
	}
	var s Spec
	if exp, ok := sec.Data[bootstrapapi.BootstrapTokenExpirationKey]; ok {
		t, err := time.Parse(time.RFC3339, string(exp))
		if err != nil {
			return bad(fmt.Sprintf("has an %s that is not RFC 3339", bootstrapapi.BootstrapTokenExpirationKey))
		}
		s.Expires = t
	}
	for _, u := range []string{UsageAuthentication, UsageSigning} {
		if string(sec.Data[bootstrapapi.BootstrapTokenUsagePrefix+u]) == "true" {
			s.Usages = append(s.Usages, u)
		}
	}
	if g := strings.TrimSpace(string(sec.Data[bootstrapapi.BootstrapTokenExtraGroupsKey])); g != "" {
		for _, group := range strings.Split(g, ",") {
			s.Groups = append(s.Groups, strings.TrimSpace(group))
		}
	}
	s.Description = string(sec.Data[bootstrapapi.BootstrapTokenDescriptionKey])
	return Token{ID: id, Secret: secret}, s, nil
}

// Equal reports whether t and u are the same token, comparing the secrets in constant time.
func (t Token) Equal(u Token) bool {
	return t.ID == u.ID && subtle.ConstantTimeCompare([]byte(t.Secret), []byte(u.Secret)) == 1
}

// IsZero reports whether t is unset.
func (t Token) IsZero() bool { return t.ID == "" && t.Secret == "" }
