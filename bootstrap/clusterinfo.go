package bootstrap

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"

	"github.com/kforge/kforge/tokens"
)

// ClusterInfo returns the ConfigMap kube-public/cluster-info holding kubeconfig, the
// cluster-only kubeconfig (endpoint and CA) discovery trusts once its signature checks out.
// The controller-manager's bootstrapsigner adds a jws-kubeconfig-<token-id> key per
// signing token.
func ClusterInfo(kubeconfig []byte) *corev1.ConfigMap {
	return configMap(NamespacePublic, ClusterInfoName, bootstrapapi.KubeConfigKey, kubeconfig)
}

// Errors of VerifyClusterInfoJWS, wrapped.
var (
	// ErrNotSigned means cluster-info carries no signature for the token yet: the
	// bootstrapsigner has not run, or the token has no signing usage.
	ErrNotSigned = errors.New("not signed for this token")
	// ErrBadSignature means a signature is there but does not prove that its signer knew
	// the token secret: forged, stale (made over other content) or for another token.
	ErrBadSignature = errors.New("the signature does not verify")
)

// jwsAlgorithm is the only algorithm the bootstrapsigner uses: HMAC-SHA256 keyed with the
// token secret.
const jwsAlgorithm = "HS256"

// VerifyClusterInfoJWS checks that cm, the cluster-info ConfigMap, carries under
// jws-kubeconfig-<id> a detached JWS (RFC 7515, appendix F) over its kubeconfig made with
// token t: protected header {"alg":"HS256","kid":"<id>"}, HMAC-SHA256 keyed with the
// token secret. The comparison is constant-time. Errors wrap ErrNotSigned or
// ErrBadSignature and never include the secret.
func VerifyClusterInfoJWS(cm *corev1.ConfigMap, t tokens.Token) error {
	if cm == nil {
		return errors.New("verifying cluster-info: no ConfigMap")
	}
	content, ok := cm.Data[bootstrapapi.KubeConfigKey]
	if !ok {
		return fmt.Errorf("verifying cluster-info: it has no %q key", bootstrapapi.KubeConfigKey)
	}
	key := bootstrapapi.JWSSignatureKeyPrefix + t.ID
	sig, ok := cm.Data[key]
	if !ok {
		return fmt.Errorf("verifying cluster-info for bootstrap token %s: %w (no %q key)", t.ID, ErrNotSigned, key)
	}
	if err := verifyDetachedJWS(sig, []byte(content), t); err != nil {
		return fmt.Errorf("verifying cluster-info for bootstrap token %s: %w", t.ID, err)
	}
	return nil
}

func verifyDetachedJWS(sig string, content []byte, t tokens.Token) error {
	parts := strings.Split(sig, ".")
	if len(parts) != 3 || parts[1] != "" {
		return fmt.Errorf("%w: it is not a detached compact JWS (header..signature)", ErrBadSignature)
	}
	headerJSON, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return fmt.Errorf("%w: its header is not base64url", ErrBadSignature)
	}
	var header struct {
		Alg  string   `json:"alg"`
		Kid  string   `json:"kid"`
		Crit []string `json:"crit"`
	}
	if err := json.Unmarshal(headerJSON, &header); err != nil {
		return fmt.Errorf("%w: its header is not JSON: %v", ErrBadSignature, err)
	}
	switch {
	case header.Alg != jwsAlgorithm:
		return fmt.Errorf("%w: it uses algorithm %q, want %s", ErrBadSignature, header.Alg, jwsAlgorithm)
	case header.Kid != t.ID:
		return fmt.Errorf("%w: it is for key ID %q, want %q", ErrBadSignature, header.Kid, t.ID)
	case len(header.Crit) > 0:
		return fmt.Errorf("%w: it has critical header extensions %q", ErrBadSignature, header.Crit)
	}
	got, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return fmt.Errorf("%w: its signature is not base64url", ErrBadSignature)
	}
	mac := hmac.New(sha256.New, []byte(t.Secret))
	mac.Write([]byte(parts[0]))
	mac.Write([]byte{'.'})
	mac.Write([]byte(base64.RawURLEncoding.EncodeToString(content)))
	if !hmac.Equal(got, mac.Sum(nil)) {
		return fmt.Errorf("%w: it was not made over this kubeconfig with this token's secret", ErrBadSignature)
	}
	return nil
}
