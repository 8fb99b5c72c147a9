package tokens

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

func TestSecretRoundTrip(t *testing.T) {
	tok := Token{ID: "abcdef", Secret: "0123456789abcdef"}
	expires := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	tests := []struct {
		name     string
		spec     Spec
		wantData map[string]string
	}{
		{
			name: "join token",
			spec: Spec{Expires: expires, Usages: []string{UsageAuthentication, UsageSigning},
				Groups: []string{DefaultNodeGroup}, Description: "join"},
			wantData: map[string]string{
				"token-id": "abcdef", "token-secret": "0123456789abcdef",
				"expiration":                     "2026-03-04T05:06:07Z",
				"usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true",
				"auth-extra-groups": DefaultNodeGroup, "description": "join",
			},
		},
		{
			name:     "owner token: no usages, never expires",
			spec:     Spec{},
			wantData: map[string]string{"token-id": "abcdef", "token-secret": "0123456789abcdef"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sec := Secret(tok, tc.spec)
			if sec.Namespace != "kube-system" || sec.Name != "bootstrap-token-abcdef" || sec.Type != "bootstrap.kubernetes.io/token" {
				t.Errorf("Secret %s/%s type %s", sec.Namespace, sec.Name, sec.Type)
			}
			got := map[string]string{}
			for k, v := range sec.Data {
				got[k] = string(v)
			}
			if diff := cmp.Diff(tc.wantData, got); diff != "" {
				t.Errorf("data (-want +got):\n%s", diff)
			}
			back, spec, err := FromSecret(sec)
			if err != nil {
				t.Fatal(err)
			}
			if !back.Equal(tok) {
				t.Errorf("token %v, want %v", back.Redacted(), tok.Redacted())
			}
			if diff := cmp.Diff(tc.spec, spec); diff != "" {
				t.Errorf("spec (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFromSecretErrors(t *testing.T) {
	tok := Token{ID: "abcdef", Secret: "0123456789abcdef"}
	edit := func(f func(s *corev1.Secret)) *corev1.Secret {
		s := Secret(tok, Spec{Expires: time.Now()})
		f(s)
		return s
	}
	tests := []struct {
		name    string
		sec     *corev1.Secret
		wantErr string
	}{
		{name: "wrong type", sec: edit(func(s *corev1.Secret) { s.Type = corev1.SecretTypeOpaque }), wantErr: `has type "Opaque"`},
		{name: "name does not match ID", sec: edit(func(s *corev1.Secret) { s.Name = "bootstrap-token-zzzzzz" }), wantErr: `holds token ID "abcdef"`},
		{name: "bad secret", sec: edit(func(s *corev1.Secret) { s.Data["token-secret"] = []byte("0123456789ABCDEF") }), wantErr: "has no valid token-secret"},
		{name: "bad expiration", sec: edit(func(s *corev1.Secret) { s.Data["expiration"] = []byte("tomorrow") }), wantErr: "not RFC 3339"},
		{name: "no ID", sec: edit(func(s *corev1.Secret) { delete(s.Data, "token-id") }), wantErr: "has no valid token-id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := FromSecret(tc.sec)
			if err == nil || !errors.Is(err, ErrNotToken) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "0123456789") {
				t.Errorf("error %q contains the secret", err)
			}
		})
	}
}

func TestSpecExpired(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		exp  time.Time
		want bool
	}{
		{name: "never", want: false},
		{name: "future", exp: now.Add(time.Second), want: false},
		{name: "now", exp: now, want: true},
		{name: "past", exp: now.Add(-time.Second), want: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := (Spec{Expires: tc.exp}).Expired(now); got != tc.want {
				t.Errorf("Expired = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTokenEqual(t *testing.T) {
	a := Token{ID: "abcdef", Secret: "0123456789abcdef"}
	for _, tc := range []struct {
		b    Token
		want bool
	}{
		{b: a, want: true},
		{b: Token{ID: "abcdef", Secret: "0123456789abcdeg"}},
		{b: Token{ID: "abcdeg", Secret: "0123456789abcdef"}},
		{b: Token{}},
	} {
		if got := a.Equal(tc.b); got != tc.want {
			t.Errorf("Equal(%s) = %v, want %v", tc.b.Redacted(), got, tc.want)
		}
	}
	if !(Token{}).IsZero() || a.IsZero() {
		t.Error("IsZero is wrong")
	}
}
