package discovery

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kforge/kforge/internal/testutil"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/cluster-bootstrap/token/jws"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/kubeconfig"
	"github.com/kforge/kforge/tokens"
)

const (
	testToken   = "abcdef.0123456789abcdef"
	forgeSecret = "ffffffffffffffff"
)

// fixture is a TLS API server on loopback serving cluster-info; respond decides the
// ConfigMap data (nil: 404) of the n-th request (from 0).
type fixture struct {
	srv      *httptest.Server
	caPEM    []byte // the server's own certificate, the CA cluster-info names
	ca       *x509.Certificate
	requests atomic.Int32

	mu      sync.Mutex
	respond func(n int) map[string]string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(f.requests.Add(1)) - 1
		// A literal, not ClusterInfoPath: the path is the API server's, not ours to choose.
		if r.URL.Path != "/api/v1/namespaces/kube-public/configmaps/cluster-info" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		f.mu.Lock()
		data := f.respond(n)
		f.mu.Unlock()
		if data == nil {
			http.NotFound(w, r)
			return
		}
		cm := corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: metav1.ObjectMeta{Namespace: "kube-public", Name: "cluster-info"},
			Data:       data,
		}
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(cm); err != nil {
			t.Errorf("encoding cluster-info: %v", err)
		}
	}))
	// Handshakes rejected on purpose would otherwise be logged to stderr.
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	f.ca = f.srv.Certificate()
	f.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.ca.Raw})
	return f
}

func (f *fixture) endpoint() string { return f.srv.Listener.Addr().String() }

// clusterInfo returns the cluster-only kubeconfig for server and caPEM.
func clusterInfo(t *testing.T, server string, caPEM []byte) string {
	t.Helper()
	kc, err := kubeconfig.ClusterOnly("", server, caPEM)
	if err != nil {
		t.Fatal(err)
	}
	return string(kc)
}

// signed returns ConfigMap data holding content and its JWS made with id and secret.
func signed(t *testing.T, content, id, secret string) map[string]string {
	t.Helper()
	sig, err := jws.ComputeDetachedSignature(content, id, secret)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		bootstrapapi.KubeConfigKey:              content,
		bootstrapapi.JWSSignatureKeyPrefix + id: sig,
	}
}

// otherCA returns a self-signed CA certificate unrelated to the server's.
func otherCA(t *testing.T) (*x509.Certificate, []byte) {
	t.Helper()
	caPEM := testutil.CAPEM(t)
	block, _ := pem.Decode(caPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert, caPEM
}

func pinOf(c *x509.Certificate) []byte {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return sum[:]
}

func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestDiscover(t *testing.T) {
	tok, err := tokens.Parse(testToken)
	if err != nil {
		t.Fatal(err)
	}
	other, otherPEM := otherCA(t)

	// env is what a case's hooks see.
	type env struct {
		f       *fixture
		good    string // cluster-info naming the server and its own certificate
		changed string // cluster-info naming another server, same CA
		foreign string // cluster-info naming the server and an unrelated CA
	}
	tests := []struct {
		name    string
		pins    func(e env) [][]byte
		unsafe  bool
		respond func(t *testing.T, e env, n int) map[string]string
		// endpoint overrides the fixture's.
		endpoint     func(t *testing.T) string
		want         func(e env) *Result
		wantErr      error
		wantMsg      []string // substrings of the error, each with %ENDPOINT% replaced
		wantRequests int      // -1: do not check
	}{
		{
			name: "success",
			pins: func(e env) [][]byte { return [][]byte{pinOf(e.f.ca)} },
			respond: func(t *testing.T, e env, n int) map[string]string {
				return signed(t, e.good, tok.ID, tok.Secret)
			},
			want:         func(e env) *Result { return &Result{Server: e.f.srv.URL, CAPEM: e.f.caPEM} },
			wantRequests: 2,
		},
		{
			name: "success with one of several pins",
			pins: func(e env) [][]byte { return [][]byte{pinOf(other), pinOf(e.f.ca)} },
			respond: func(t *testing.T, e env, n int) map[string]string {
				return signed(t, e.good, tok.ID, tok.Secret)
			},
			want:         func(e env) *Result { return &Result{Server: e.f.srv.URL, CAPEM: e.f.caPEM} },
			wantRequests: 2,
		},
		{
			name:   "success without pin when unsafe skip is asked for",
			unsafe: true,
			respond: func(t *testing.T, e env, n int) map[string]string {
				return signed(t, e.good, tok.ID, tok.Secret)
			},
			want:         func(e env) *Result { return &Result{Server: e.f.srv.URL, CAPEM: e.f.caPEM} },
			wantRequests: 2,
		},
		{
			name: "signature appears late",
			pins: func(e env) [][]byte { return [][]byte{pinOf(e.f.ca)} },
			respond: func(t *testing.T, e env, n int) map[string]string {
				switch {
				case n == 0:
					return nil // cluster-info not created yet
				case n < 3:
					return map[string]string{bootstrapapi.KubeConfigKey: e.good}
				}
				return signed(t, e.good, tok.ID, tok.Secret)
			},
			want:         func(e env) *Result { return &Result{Server: e.f.srv.URL, CAPEM: e.f.caPEM} },
			wantRequests: 5,
		},
		{
			name: "wrong pin",
			pins: func(e env) [][]byte { return [][]byte{pinOf(other)} },
			respond: func(t *testing.T, e env, n int) map[string]string {
				return signed(t, e.good, tok.ID, tok.Secret)
			},
			wantErr:      ErrCAPinMismatch,
			wantMsg:      []string{"%FOUNDPIN%", certs.PinHash(other), "--discovery-token-ca-cert-hash"},
			wantRequests: 1,
		},
		{
			name: "forged signature",
			pins: func(e env) [][]byte { return [][]byte{pinOf(e.f.ca)} },
			respond: func(t *testing.T, e env, n int) map[string]string {
				return signed(t, e.good, tok.ID, forgeSecret)
			},
			wantErr:      ErrBadSignature,
			wantMsg:      []string{"signature for token abcdef does not verify", "%ENDPOINT%"},
			wantRequests: 1,
		},
		{
			name: "token never signed",
			pins: func(e env) [][]byte { return [][]byte{pinOf(e.f.ca)} },
			respond: func(t *testing.T, e env, n int) map[string]string {
				// Signed for another token only.
				return signed(t, e.good, "zzzzzz", tok.Secret)
			},
			wantErr:      ErrTokenUnknown,
			wantMsg:      []string{`token abcdef is unknown or expired: create one with "kforge token create"`},
			wantRequests: -1,
		},
		{
			name:         "unreachable endpoint",
			pins:         func(e env) [][]byte { return [][]byte{pinOf(e.f.ca)} },
			respond:      func(t *testing.T, e env, n int) map[string]string { return nil },
			endpoint:     closedPort,
			wantErr:      ErrUnreachable,
			wantMsg:      []string{"%ENDPOINT% unreachable"},
			wantRequests: 0,
		},
		{
			name:         "cluster-info never served",
			pins:         func(e env) [][]byte { return [][]byte{pinOf(e.f.ca)} },
			respond:      func(t *testing.T, e env, n int) map[string]string { return nil },
			wantErr:      ErrNoClusterInfo,
			wantMsg:      []string{"%ENDPOINT%", "404"},
			wantRequests: -1,
		},
		{
			name: "content changed between fetches",
			pins: func(e env) [][]byte { return [][]byte{pinOf(e.f.ca)} },
			respond: func(t *testing.T, e env, n int) map[string]string {
				if n == 0 {
					return signed(t, e.good, tok.ID, tok.Secret)
				}
				return signed(t, e.changed, tok.ID, tok.Secret)
			},
			wantErr:      ErrContentChanged,
			wantMsg:      []string{"%ENDPOINT%", "differs"},
			wantRequests: 2,
		},
		{
			name:   "server certificate not from the signed CA",
			unsafe: true,
			respond: func(t *testing.T, e env, n int) map[string]string {
				return signed(t, e.foreign, tok.ID, tok.Secret)
			},
			wantErr:      ErrBadClusterInfo,
			wantMsg:      []string{"does not verify against the CA"},
			wantRequests: 1, // the second fails in the TLS handshake
		},
		{
			name: "cluster-info with two clusters",
			pins: func(e env) [][]byte { return [][]byte{pinOf(e.f.ca)} },
			respond: func(t *testing.T, e env, n int) map[string]string {
				kc := strings.Replace(e.good, "clusters:\n", "clusters:\n- cluster:\n    server: https://192.0.2.1:6443\n  name: second\n", 1)
				return signed(t, kc, tok.ID, tok.Secret)
			},
			wantErr:      ErrBadClusterInfo,
			wantMsg:      []string{"2 clusters"},
			wantRequests: 1,
		},
		{
			name: "no pin without unsafe skip",
			respond: func(t *testing.T, e env, n int) map[string]string {
				return signed(t, e.good, tok.ID, tok.Secret)
			},
			wantErr:      ErrNoPin,
			wantMsg:      []string{"--discovery-token-ca-cert-hash", "--discovery-token-unsafe-skip-ca-verification"},
			wantRequests: 0,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			e := env{f: f}
			e.good = clusterInfo(t, f.srv.URL, f.caPEM)
			e.changed = clusterInfo(t, "https://192.0.2.99:6443", f.caPEM)
			e.foreign = clusterInfo(t, f.srv.URL, otherPEM)
			f.respond = func(n int) map[string]string { return tc.respond(t, e, n) }

			endpoint := f.endpoint()
			if tc.endpoint != nil {
				endpoint = tc.endpoint(t)
			}
			opts := Options{
				Endpoint:                 endpoint,
				Token:                    tok,
				UnsafeSkipCAVerification: tc.unsafe,
				Timeout:                  time.Second,
				Interval:                 20 * time.Millisecond,
			}
			if tc.pins != nil {
				opts.CAPins = tc.pins(e)
			}

			got, err := Discover(context.Background(), opts)

			if diff := cmp.Diff(tc.wantErr, err, cmpopts.EquateErrors()); diff != "" {
				t.Fatalf("Discover() error mismatch (-want +got):\n%s\nerror: %v", diff, err)
			}
			if err != nil {
				msg := err.Error()
				t.Logf("error: %s", msg)
				if strings.Contains(msg, tok.Secret) || strings.Contains(msg, forgeSecret) {
					t.Errorf("error leaks a token secret: %s", msg)
				}
				for _, w := range tc.wantMsg {
					w = strings.ReplaceAll(w, "%ENDPOINT%", endpoint)
					w = strings.ReplaceAll(w, "%FOUNDPIN%", certs.PinHash(f.ca))
					if !strings.Contains(msg, w) {
						t.Errorf("error %q does not contain %q", msg, w)
					}
				}
			}
			var want *Result
			if tc.want != nil {
				want = tc.want(e)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Discover() result mismatch (-want +got):\n%s", diff)
			}
			if n := int(f.requests.Load()); tc.wantRequests >= 0 && n != tc.wantRequests {
				t.Errorf("server got %d requests, want %d", n, tc.wantRequests)
			}
		})
	}
}

func TestDiscoverCancelled(t *testing.T) {
	tok, err := tokens.Parse(testToken)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Discover(ctx, Options{Endpoint: closedPort(t), Token: tok, UnsafeSkipCAVerification: true, Timeout: time.Minute})
	if !cmp.Equal(context.Canceled, err, cmpopts.EquateErrors()) {
		t.Fatalf("Discover() on a cancelled context = %v, want context.Canceled", err)
	}
}

func TestDiscoverFromFile(t *testing.T) {
	_, caPEM := otherCA(t)
	const server = "https://192.0.2.10:6443"
	dir := t.TempDir()
	write := func(t *testing.T, name string, data []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	embedded, err := kubeconfig.ClusterOnly("kforge", server, caPEM)
	if err != nil {
		t.Fatal(err)
	}
	write(t, "ca.crt", caPEM)
	caFile := "apiVersion: v1\nkind: Config\nclusters:\n- name: kforge\n  cluster:\n    server: " + server +
		"\n    certificate-authority: ca.crt\n"
	twoClusters := "apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster:\n    server: " + server +
		"\n- name: b\n  cluster:\n    server: " + server + "\n"
	noCA := "apiVersion: v1\nkind: Config\nclusters:\n- name: kforge\n  cluster:\n    server: " + server + "\n"

	tests := []struct {
		name    string
		file    string // content; empty: the file does not exist
		want    *Result
		wantMsg string
	}{
		{name: "embedded CA", file: string(embedded), want: &Result{Server: server, CAPEM: caPEM, ClusterName: "kforge"}},
		{name: "CA file relative to the kubeconfig", file: caFile, want: &Result{Server: server, CAPEM: caPEM, ClusterName: "kforge"}},
		{name: "missing file", wantMsg: "reading kubeconfig"},
		{name: "two clusters and no context", file: twoClusters, wantMsg: "2 clusters"},
		{name: "no CA", file: noCA, wantMsg: "no certificate authority"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "missing.conf")
			if tc.file != "" {
				path = write(t, "discovery"+string(rune('a'+i))+".conf", []byte(tc.file))
			}
			got, err := DiscoverFromFile(path)
			if tc.wantMsg != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
					t.Fatalf("DiscoverFromFile() error = %v, want one containing %q", err, tc.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatalf("DiscoverFromFile() = %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("DiscoverFromFile() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTLSConfigs checks the two fetches' trust: the first trusts nothing, the second only
// the discovered CA.
func TestTLSConfigs(t *testing.T) {
	tok, err := tokens.Parse(testToken)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	good := clusterInfo(t, f.srv.URL, f.caPEM)
	f.respond = func(int) map[string]string { return signed(t, good, tok.ID, tok.Secret) }
	var cfgs []*tls.Config
	opts := Options{
		Endpoint: f.endpoint(), Token: tok, CAPins: [][]byte{pinOf(f.ca)},
		Timeout: time.Second, Interval: 20 * time.Millisecond,
		NewTransport: func(c *tls.Config) http.RoundTripper {
			cfgs = append(cfgs, c)
			return defaultTransport(c)
		},
	}
	if _, err := Discover(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if len(cfgs) != 2 {
		t.Fatalf("got %d transports, want 2", len(cfgs))
	}
	if !cfgs[0].InsecureSkipVerify || cfgs[0].Certificates != nil {
		t.Errorf("first fetch: InsecureSkipVerify=%v, client certs %d: want an anonymous fetch that trusts nothing",
			cfgs[0].InsecureSkipVerify, len(cfgs[0].Certificates))
	}
	if cfgs[1].InsecureSkipVerify || cfgs[1].RootCAs == nil {
		t.Fatalf("second fetch: InsecureSkipVerify=%v, RootCAs set %v: want verification against the discovered CA",
			cfgs[1].InsecureSkipVerify, cfgs[1].RootCAs != nil)
	}
	want := x509.NewCertPool()
	want.AddCert(f.ca)
	if !cfgs[1].RootCAs.Equal(want) {
		t.Errorf("second fetch trusts other roots than the discovered CA")
	}
}

// TestOptionsCheck is issue 10, item 21: a negative timeout became the default, and a bad
// endpoint was retried until the timeout.
func TestOptionsCheck(t *testing.T) {
	tok, err := tokens.Parse("abcdef.0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	pin := [][]byte{make([]byte, 32)}
	for name, tc := range map[string]struct {
		opts Options
		want string
	}{
		"negative timeout":  {Options{Endpoint: "127.0.0.1:1", Token: tok, CAPins: pin, Timeout: -5 * time.Second}, "is negative"},
		"port out of range": {Options{Endpoint: "127.0.0.1:99999", Token: tok, CAPins: pin}, `has port "99999"`},
		"a scheme":          {Options{Endpoint: "https://127.0.0.1:1", Token: tok, CAPins: pin}, "is not host:port"},
		"no port":           {Options{Endpoint: "127.0.0.1", Token: tok, CAPins: pin}, "is not host:port"},
		"no pin":            {Options{Endpoint: "127.0.0.1:1", Token: tok}, "without a CA pin"},
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			_, err := Discover(t.Context(), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Discover = %v, want an error saying %q", err, tc.want)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("Discover took %s to refuse, want at once", d)
			}
		})
	}
}
