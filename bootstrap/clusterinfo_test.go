package bootstrap

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/cluster-bootstrap/token/jws"

	"github.com/kforge/kforge/tokens"
)

const testKubeconfig = `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Zm9v
    server: https://192.0.2.10:6443
  name: ""
contexts: null
current-context: ""
kind: Config
users: null
`

// sign is the bootstrapsigner: cluster-bootstrap's own JWS helper.
func sign(t *testing.T, content string, tok tokens.Token) string {
	t.Helper()
	sig, err := jws.ComputeDetachedSignature(content, tok.ID, tok.Secret)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func TestVerifyClusterInfoJWS(t *testing.T) {
	tok := tokens.Token{ID: "abcdef", Secret: "0123456789abcdef"}
	other := tokens.Token{ID: "abcdef", Secret: "fedcba9876543210"}
	otherID := tokens.Token{ID: "zyxwvu", Secret: "0123456789abcdef"}
	header := func(json string) string { return base64.RawURLEncoding.EncodeToString([]byte(json)) }
	good := sign(t, testKubeconfig, tok)
	_, goodSig, _ := strings.Cut(good, "..")

	tests := []struct {
		name    string
		data    map[string]string
		verify  tokens.Token
		wantIs  error
		wantErr string
	}{
		{
			name:   "signed by the bootstrapsigner",
			data:   map[string]string{"kubeconfig": testKubeconfig, "jws-kubeconfig-abcdef": good},
			verify: tok,
		},
		{
			name: "other tokens' signatures do not matter",
			data: map[string]string{"kubeconfig": testKubeconfig, "jws-kubeconfig-abcdef": good,
				"jws-kubeconfig-zyxwvu": "garbage"},
			verify: tok,
		},
		{
			name:    "not signed yet",
			data:    map[string]string{"kubeconfig": testKubeconfig},
			verify:  tok,
			wantIs:  ErrNotSigned,
			wantErr: `no "jws-kubeconfig-abcdef" key`,
		},
		{
			name:    "forged with another secret",
			data:    map[string]string{"kubeconfig": testKubeconfig, "jws-kubeconfig-abcdef": sign(t, testKubeconfig, other)},
			verify:  tok,
			wantIs:  ErrBadSignature,
			wantErr: "not made over this kubeconfig with this token's secret",
		},
		{
			name:   "verified with the wrong token",
			data:   map[string]string{"kubeconfig": testKubeconfig, "jws-kubeconfig-abcdef": good},
			verify: other,
			wantIs: ErrBadSignature,
		},
		{
			name:    "signature of another token ID under this key",
			data:    map[string]string{"kubeconfig": testKubeconfig, "jws-kubeconfig-abcdef": sign(t, testKubeconfig, otherID)},
			verify:  tok,
			wantIs:  ErrBadSignature,
			wantErr: `key ID "zyxwvu"`,
		},
		{
			name:   "kubeconfig changed after signing (stale signature)",
			data:   map[string]string{"kubeconfig": strings.Replace(testKubeconfig, "192.0.2.10", "192.0.2.66", 1), "jws-kubeconfig-abcdef": good},
			verify: tok,
			wantIs: ErrBadSignature,
		},
		{
			name: "algorithm none",
			data: map[string]string{"kubeconfig": testKubeconfig,
				"jws-kubeconfig-abcdef": header(`{"alg":"none","kid":"abcdef"}`) + ".."},
			verify:  tok,
			wantIs:  ErrBadSignature,
			wantErr: `algorithm "none"`,
		},
		{
			name: "critical header extensions",
			data: map[string]string{"kubeconfig": testKubeconfig,
				"jws-kubeconfig-abcdef": header(`{"alg":"HS256","kid":"abcdef","crit":["b64"],"b64":false}`) + ".." + goodSig},
			verify:  tok,
			wantIs:  ErrBadSignature,
			wantErr: "critical header extensions",
		},
		{
			name:    "not a detached JWS",
			data:    map[string]string{"kubeconfig": testKubeconfig, "jws-kubeconfig-abcdef": strings.Replace(good, "..", ".eA.", 1)},
			verify:  tok,
			wantIs:  ErrBadSignature,
			wantErr: "not a detached compact JWS",
		},
		{
			name:    "no kubeconfig",
			data:    map[string]string{"jws-kubeconfig-abcdef": good},
			verify:  tok,
			wantErr: `it has no "kubeconfig" key`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cm := ClusterInfo([]byte("unused"))
			cm.Data = tc.data
			err := VerifyClusterInfoJWS(cm, tc.verify)
			if tc.wantIs == nil && tc.wantErr == "" {
				if err != nil {
					t.Fatalf("VerifyClusterInfoJWS: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("VerifyClusterInfoJWS succeeded, want an error")
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error %q does not wrap %q", err, tc.wantIs)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not contain %q", err, tc.wantErr)
			}
			for _, s := range []string{tok.Secret, other.Secret} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q contains a token secret", err)
				}
			}
		})
	}
}

func TestVerifyClusterInfoJWSNil(t *testing.T) {
	if err := VerifyClusterInfoJWS(nil, tokens.Token{ID: "abcdef"}); err == nil {
		t.Fatal("nil ConfigMap verified")
	}
}

func TestClusterInfo(t *testing.T) {
	cm := ClusterInfo([]byte(testKubeconfig))
	if cm.Namespace != "kube-public" || cm.Name != "cluster-info" {
		t.Errorf("ConfigMap is %s/%s, want kube-public/cluster-info", cm.Namespace, cm.Name)
	}
	if got := cm.Data["kubeconfig"]; got != testKubeconfig {
		t.Errorf("kubeconfig = %q", got)
	}
	var _ *corev1.ConfigMap = cm
}
