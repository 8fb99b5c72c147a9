package cmd

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/tokens"
)

var tokenTestNow = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// tokenEnv runs the token commands against a fake clientset with a pinned clock.
type tokenEnv struct {
	cs *fake.Clientset
	// paths are the kubeconfig paths the client was built from.
	paths []string
}

// withFakeTokenClient returns a tokenEnv whose clientset holds objs.
func withFakeTokenClient(t *testing.T, objs ...runtime.Object) *tokenEnv {
	t.Helper()
	return &tokenEnv{cs: fake.NewClientset(objs...)}
}

// run runs kforge with args at -v 2 and checks that no secret in secrets reached stderr
// (slog).
func (e *tokenEnv) run(t *testing.T, secrets []string, args ...string) (string, error) {
	t.Helper()
	out, _, err := e.runStderr(t, secrets, args...)
	return out, err
}

func (e *tokenEnv) runStderr(t *testing.T, secrets []string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCommand(&rootOptions{
		streams: Streams{In: strings.NewReader(""), Out: &out, Err: &errOut},
		apiClient: func(path string) (kubernetes.Interface, error) {
			e.paths = append(e.paths, path)
			return e.cs, nil
		},
		now: func() time.Time { return tokenTestNow },
	})
	root.SetArgs(append([]string{"-v", "2"}, args...))
	err := root.ExecuteContext(context.Background())
	for _, s := range secrets {
		if strings.Contains(errOut.String(), s) {
			t.Errorf("kforge %s: stderr holds a token secret:\n%s", strings.Join(args, " "), errOut.String())
		}
		if err != nil && strings.Contains(err.Error(), s) {
			t.Errorf("kforge %s: error holds a token secret: %v", strings.Join(args, " "), err)
		}
	}
	return out.String(), errOut.String(), err
}

func secretData(t *testing.T, cs kubernetes.Interface, id string) map[string]string {
	t.Helper()
	sec, err := cs.CoreV1().Secrets("kube-system").Get(context.Background(), "bootstrap-token-"+id, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("getting the token Secret: %v", err)
	}
	if sec.Type != "bootstrap.kubernetes.io/token" {
		t.Errorf("Secret type = %q, want bootstrap.kubernetes.io/token", sec.Type)
	}
	got := map[string]string{}
	for k, v := range sec.Data {
		got[k] = string(v)
	}
	return got
}

func TestTokenCreate(t *testing.T) {
	const explicit = "abcdef.0123456789abcdef"
	tests := []struct {
		name     string
		args     []string
		wantData func(id, secret string) map[string]string
	}{
		{
			name: "explicit token with defaults",
			args: []string{explicit},
			wantData: func(id, secret string) map[string]string {
				return map[string]string{
					"token-id": id, "token-secret": secret,
					"expiration":                     "2026-03-05T05:06:07Z",
					"usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true",
					"auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
				}
			},
		},
		{
			name: "generated token with every flag",
			args: []string{"--ttl", "2h", "--usages", "authentication", "--groups", "system:bootstrappers:ci,system:bootstrappers:kubeadm:default-node-token",
				"--description", "CI runners", "--kubeconfig", "/tmp/other.conf"},
			wantData: func(id, secret string) map[string]string {
				return map[string]string{
					"token-id": id, "token-secret": secret,
					"expiration":                     "2026-03-04T07:06:07Z",
					"usage-bootstrap-authentication": "true",
					"auth-extra-groups":              "system:bootstrappers:ci,system:bootstrappers:kubeadm:default-node-token",
					"description":                    "CI runners",
				}
			},
		},
		{
			name: "ttl 0 never expires, signing only",
			args: []string{explicit, "--ttl", "0", "--usages", "signing", "--groups", ""},
			wantData: func(id, secret string) map[string]string {
				return map[string]string{"token-id": id, "token-secret": secret, "usage-bootstrap-signing": "true"}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := withFakeTokenClient(t)
			cs, paths := env.cs, &env.paths
			out, err := env.run(t, []string{"0123456789abcdef"}, append([]string{"token", "create"}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := tokens.Parse(strings.TrimSpace(out))
			if err != nil {
				t.Fatalf("output %q is not a token: %v", out, err)
			}
			if tc.args[0] == explicit && tok.Reveal() != explicit {
				t.Errorf("printed %s, want the given token", tok.Redacted())
			}
			if diff := cmp.Diff(tc.wantData(tok.ID, tok.Secret), secretData(t, cs, tok.ID)); diff != "" {
				t.Errorf("Secret data (-want +got):\n%s", diff)
			}
			wantPath := "/etc/kubernetes/admin.conf"
			if strings.Contains(strings.Join(tc.args, " "), "/tmp/other.conf") {
				wantPath = "/tmp/other.conf"
			}
			if diff := cmp.Diff([]string{wantPath}, *paths); diff != "" {
				t.Errorf("kubeconfig paths (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTokenCreateExisting(t *testing.T) {
	old := tokens.Token{ID: "abcdef", Secret: "0123456789abcdef"}
	t.Run("same token updates it", func(t *testing.T) {
		env := withFakeTokenClient(t, tokens.Secret(old, tokens.Spec{Description: "old"}))
		cs := env.cs
		if _, err := env.run(t, []string{old.Secret}, "token", "create", old.Reveal(), "--description", "new"); err != nil {
			t.Fatal(err)
		}
		if got := secretData(t, cs, "abcdef")["description"]; got != "new" {
			t.Errorf("description = %q, want new", got)
		}
	})
	t.Run("different secret is an error", func(t *testing.T) {
		env := withFakeTokenClient(t, tokens.Secret(old, tokens.Spec{Description: "old"}))
		cs := env.cs
		const other = "abcdef.ffffffffffffffff"
		_, err := env.run(t, []string{old.Secret, "ffffffffffffffff"}, "token", "create", other)
		if !errors.Is(err, tokens.ErrIDTaken) || !strings.Contains(err.Error(), "kforge token delete abcdef") {
			t.Fatalf("error = %v, want tokens.ErrIDTaken with a hint", err)
		}
		if got := secretData(t, cs, "abcdef"); got["token-secret"] != old.Secret || got["description"] != "old" {
			t.Errorf("the existing Secret was changed: %v", got)
		}
	})
}

func TestTokenCreateLogsOnlyTheID(t *testing.T) {
	env := withFakeTokenClient(t)
	_, stderr, err := env.runStderr(t, []string{"0123456789abcdef"}, "token", "create", "abcdef.0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	// runTokenStderr has checked that the secret is absent; check that the log line exists.
	if !strings.Contains(stderr, "abcdef.<redacted>") {
		t.Errorf("stderr at -v 2 does not log the redacted token:\n%s", stderr)
	}
}

func TestTokenCreateAPIErrors(t *testing.T) {
	env := withFakeTokenClient(t)
	cs := env.cs
	cs.PrependReactor("create", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(corev1.Resource("secrets"), "bootstrap-token-abcdef", errors.New("no"))
	})
	_, err := env.run(t, []string{"0123456789abcdef"}, "token", "create", "abcdef.0123456789abcdef")
	if err == nil || !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "abcdef.<redacted>") {
		t.Fatalf("error = %v, want a Forbidden error naming the redacted token", err)
	}
}

func TestTokenCreateBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{name: "negative ttl", args: []string{"--ttl", "-1h"}, want: []string{"--ttl -1h0m0s is negative", "0 for a token that never expires"}},
		{name: "unparsable ttl", args: []string{"--ttl", "tomorrow"}, want: []string{"invalid argument \"tomorrow\""}},
		{name: "unknown usage", args: []string{"--usages", "signing,bootstrap"}, want: []string{`unknown usage "bootstrap"`, "valid usages are authentication, signing"}},
		{name: "group outside system:bootstrappers", args: []string{"--groups", "system:nodes"},
			want: []string{`group "system:nodes"`, `must start with "system:bootstrappers:"`}},
		{name: "groups without authentication", args: []string{"--usages", "signing"}, want: []string{`--groups needs the "authentication" usage`}},
		{name: "every problem at once", args: []string{"--ttl", "-1s", "--usages", "x", "--groups", "admins"},
			want: []string{"--ttl", `unknown usage "x"`, `group "admins"`}},
		{name: "malformed token", args: []string{"abcdef.0123456789ABCDEF"}, want: []string{"an uppercase letter at position 11"}},
		{name: "too many args", args: []string{"abcdef.0123456789abcdef", "ghijkl.0123456789abcdef"}, want: []string{"accepts at most 1 arg"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := withFakeTokenClient(t)
			cs := env.cs
			_, err := env.run(t, []string{"0123456789ABCDEF"}, append([]string{"token", "create"}, tc.args...)...)
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if n := len(cs.Actions()); n != 0 {
				t.Errorf("bad input reached the API: %d actions", n)
			}
		})
	}
}

// writeKubeconfig writes an admin-style kubeconfig for server with a new CA and returns
// its path and the CA's pin.
func writeKubeconfig(t *testing.T, server string) (path, pin string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kubernetes"] = &clientcmdapi.Cluster{Server: server,
		CertificateAuthorityData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
	cfg.Clusters["other"] = &clientcmdapi.Cluster{Server: "https://wrong:6443"}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: "unused"}
	cfg.Contexts["admin@kubernetes"] = &clientcmdapi.Context{Cluster: "kubernetes", AuthInfo: "admin"}
	cfg.Contexts["other"] = &clientcmdapi.Context{Cluster: "other", AuthInfo: "admin"}
	cfg.CurrentContext = "admin@kubernetes"
	path = filepath.Join(t.TempDir(), "admin.conf")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path, certs.PinHash(cert)
}

func TestTokenCreatePrintJoinCommand(t *testing.T) {
	tests := []struct {
		server, endpoint string
	}{
		{server: "https://10.0.0.1:6443", endpoint: "10.0.0.1:6443"},
		{server: "https://cp.example.com", endpoint: "cp.example.com:443"},
		{server: "https://[fd00::1]:6443", endpoint: "[fd00::1]:6443"},
	}
	for _, tc := range tests {
		t.Run(tc.server, func(t *testing.T) {
			env := withFakeTokenClient(t)
			cs := env.cs
			path, pin := writeKubeconfig(t, tc.server)
			out, err := env.run(t, []string{"0123456789abcdef"}, "token", "create", "abcdef.0123456789abcdef", "--print-join-command", "--kubeconfig", path)
			if err != nil {
				t.Fatal(err)
			}
			want := "kforge join " + tc.endpoint + " --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash " + pin + "\n"
			if out != want {
				t.Errorf("output:\n%q\nwant:\n%q", out, want)
			}
			if !regexp.MustCompile(`sha256:[0-9a-f]{64}\n$`).MatchString(out) {
				t.Errorf("pin is malformed in %q", out)
			}
			secretData(t, cs, "abcdef")
		})
	}
	t.Run("unreadable kubeconfig creates nothing", func(t *testing.T) {
		env := withFakeTokenClient(t)
		cs := env.cs
		_, err := env.run(t, nil, "token", "create", "--print-join-command", "--kubeconfig", filepath.Join(t.TempDir(), "missing.conf"))
		if err == nil || !strings.Contains(err.Error(), "reading kubeconfig") {
			t.Fatalf("error = %v", err)
		}
		if n := len(cs.Actions()); n != 0 {
			t.Errorf("%d API actions, want none", n)
		}
	})
}

func tokenListFixture(t *testing.T) *tokenEnv {
	t.Helper()
	live := tokens.Secret(tokens.Token{ID: "abcdef", Secret: "0123456789abcdef"}, tokens.Spec{
		Expires: tokenTestNow.Add(23 * time.Hour), Usages: []string{tokens.UsageAuthentication, tokens.UsageSigning},
		Groups: []string{tokens.DefaultNodeGroup}, Description: "join token"})
	expired := tokens.Secret(tokens.Token{ID: "aaaaaa", Secret: "aaaaaaaaaaaaaaaa"}, tokens.Spec{
		Expires: tokenTestNow.Add(-time.Minute), Usages: []string{tokens.UsageSigning}})
	forever := tokens.Secret(tokens.Token{ID: "zzzzzz", Secret: "zzzzzzzzzzzzzzzz"}, tokens.Spec{})
	broken := tokens.Secret(tokens.Token{ID: "bbbbbb", Secret: "bbbbbbbbbbbbbbbb"}, tokens.Spec{})
	broken.Data["token-secret"] = []byte("short")
	opaque := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "kube-system"}, Type: corev1.SecretTypeOpaque}
	return withFakeTokenClient(t, live, expired, forever, broken, opaque)
}

var tokenListSecrets = []string{"0123456789abcdef", "aaaaaaaaaaaaaaaa", "zzzzzzzzzzzzzzzz"}

func TestTokenListText(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{
			name: "redacted",
			want: `TOKEN               TTL         EXPIRES                USAGES                   DESCRIPTION   EXTRA GROUPS
aaaaaa.<redacted>   expired     2026-03-04T05:05:07Z   signing                  <none>        <none>
abcdef.<redacted>   23h         2026-03-05T04:06:07Z   authentication,signing   join token    system:bootstrappers:kubeadm:default-node-token
zzzzzz.<redacted>   <forever>   <never>                <none>                   <none>        <none>
`,
		},
		{
			name: "show secrets",
			args: []string{"--show-secrets"},
			want: `TOKEN                     TTL         EXPIRES                USAGES                   DESCRIPTION   EXTRA GROUPS
aaaaaa.aaaaaaaaaaaaaaaa   expired     2026-03-04T05:05:07Z   signing                  <none>        <none>
abcdef.0123456789abcdef   23h         2026-03-05T04:06:07Z   authentication,signing   join token    system:bootstrappers:kubeadm:default-node-token
zzzzzz.zzzzzzzzzzzzzzzz   <forever>   <never>                <none>                   <none>        <none>
`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := tokenListFixture(t)
			out, err := env.run(t, tokenListSecrets, append([]string{"token", "list"}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, out); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
			if len(tc.args) == 0 {
				for _, s := range tokenListSecrets {
					if strings.Contains(out, s) {
						t.Errorf("output holds secret %s without --show-secrets", s)
					}
				}
			}
		})
	}
}

func TestTokenListJSON(t *testing.T) {
	exp := func(d time.Duration) *time.Time { e := tokenTestNow.Add(d); return &e }
	want := []tokenInfo{
		{ID: "aaaaaa", Expires: exp(-time.Minute), Expired: true, Usages: []string{"signing"}, Groups: []string{}},
		{ID: "abcdef", Expires: exp(23 * time.Hour), Usages: []string{"authentication", "signing"},
			Groups: []string{tokens.DefaultNodeGroup}, Description: "join token"},
		{ID: "zzzzzz", Usages: []string{}, Groups: []string{}},
	}
	for _, show := range []bool{false, true} {
		t.Run(map[bool]string{false: "redacted", true: "show secrets"}[show], func(t *testing.T) {
			env := tokenListFixture(t)
			args := []string{"token", "list", "-o", "json"}
			if show {
				args = append(args, "--show-secrets")
			}
			out, err := env.run(t, tokenListSecrets, args...)
			if err != nil {
				t.Fatal(err)
			}
			var got []tokenInfo
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out)
			}
			w := append([]tokenInfo{}, want...)
			if show {
				w[0].Token, w[1].Token, w[2].Token = "aaaaaa.aaaaaaaaaaaaaaaa", "abcdef.0123456789abcdef", "zzzzzz.zzzzzzzzzzzzzzzz"
			} else {
				for _, s := range tokenListSecrets {
					if strings.Contains(out, s) {
						t.Errorf("output holds secret %s without --show-secrets", s)
					}
				}
			}
			if diff := cmp.Diff(w, got, cmp.AllowUnexported(tokenInfo{}), cmp.Comparer(func(a, b tokens.Token) bool { return true })); diff != "" {
				t.Errorf("JSON (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("no tokens is an empty list", func(t *testing.T) {
		env := withFakeTokenClient(t)
		out, err := env.run(t, nil, "token", "list", "-o", "json")
		if err != nil || strings.TrimSpace(out) != "[]" {
			t.Fatalf("output %q, error %v; want []", out, err)
		}
	})
	t.Run("unknown format", func(t *testing.T) {
		env := withFakeTokenClient(t)
		if _, err := env.run(t, nil, "token", "list", "-o", "yaml"); err == nil || !strings.Contains(err.Error(), "use text or json") {
			t.Fatalf("error = %v", err)
		}
	})
}

func TestTokenDelete(t *testing.T) {
	a := tokens.Token{ID: "abcdef", Secret: "s3cr3ts3cr3ts3cr"}
	b := tokens.Token{ID: "ghijkl", Secret: "s3cr3ts3cr3ts3cr"}
	tests := []struct {
		name      string
		args      []string
		wantOut   string
		wantErr   []string
		wantAfter []string // Secrets left
	}{
		{name: "by id", args: []string{"abcdef"}, wantOut: "bootstrap token \"abcdef\" deleted\n", wantAfter: []string{"bootstrap-token-ghijkl"}},
		{name: "by full token", args: []string{a.Reveal()}, wantOut: "bootstrap token \"abcdef\" deleted\n", wantAfter: []string{"bootstrap-token-ghijkl"}},
		{name: "several", args: []string{"abcdef", b.Reveal()},
			wantOut: "bootstrap token \"abcdef\" deleted\nbootstrap token \"ghijkl\" deleted\n", wantAfter: []string{}},
		{name: "missing one still deletes the others", args: []string{"nother", "abcdef"},
			wantOut: "bootstrap token \"abcdef\" deleted\n", wantErr: []string{`deleting token "nother"`, "not found"},
			wantAfter: []string{"bootstrap-token-ghijkl"}},
		{name: "bad id", args: []string{"ABCDEF"}, wantErr: []string{"argument 1 is neither a token ID"},
			wantAfter: []string{"bootstrap-token-abcdef", "bootstrap-token-ghijkl"}},
		{name: "bad token deletes nothing", args: []string{"abcdef", "abcdef.0123"}, wantErr: []string{"argument 2", "has 4 characters, want 16"},
			wantAfter: []string{"bootstrap-token-abcdef", "bootstrap-token-ghijkl"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := withFakeTokenClient(t, tokens.Secret(a, tokens.Spec{}), tokens.Secret(b, tokens.Spec{}))
			cs := env.cs
			out, err := env.run(t, []string{a.Secret}, append([]string{"token", "delete"}, tc.args...)...)
			if len(tc.wantErr) == 0 && err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error = %v, want it to contain %q", err, w)
				}
			}
			if out != tc.wantOut {
				t.Errorf("output = %q, want %q", out, tc.wantOut)
			}
			list, lerr := cs.CoreV1().Secrets("kube-system").List(context.Background(), metav1.ListOptions{})
			if lerr != nil {
				t.Fatal(lerr)
			}
			left := []string{}
			for _, s := range list.Items {
				left = append(left, s.Name)
			}
			if diff := cmp.Diff(tc.wantAfter, left); diff != "" {
				t.Errorf("Secrets left (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("no args", func(t *testing.T) {
		env := withFakeTokenClient(t)
		if _, err := env.run(t, nil, "token", "delete"); err == nil {
			t.Fatal("want an error")
		}
	})
}

func TestTokenGenerate(t *testing.T) {
	env := withFakeTokenClient(t)
	cs, paths := env.cs, &env.paths
	seen := map[string]bool{}
	for range 5 {
		out, err := env.run(t, nil, "token", "generate")
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}\n$`).MatchString(out) {
			t.Fatalf("output %q is not a token", out)
		}
		if seen[out] {
			t.Fatalf("token generated twice")
		}
		seen[out] = true
	}
	if len(*paths) != 0 || len(cs.Actions()) != 0 {
		t.Errorf("generate used the API")
	}
}

func TestTokenHelpDoesNotChangeInit(t *testing.T) {
	out := mustRun(t, "--help")
	if !strings.Contains(out, "token") {
		t.Errorf("root help does not list token:\n%s", out)
	}
	out = mustRun(t, "token", "--help")
	for _, sub := range []string{"create", "list", "delete", "generate", "--kubeconfig"} {
		if !strings.Contains(out, sub) {
			t.Errorf("token help lacks %q", sub)
		}
	}
}
