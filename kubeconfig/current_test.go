package kubeconfig

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kforge/kforge/certs"
)

// twoClusters returns a kubeconfig with clusters a and b, each with its own CA and a
// context of its own, whose current context is current.
func twoClusters(caA, caB *testCA, current string) *clientcmdapi.Config {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["a"] = &clientcmdapi.Cluster{Server: "https://a.example:6443", CertificateAuthorityData: caA.certPEM}
	cfg.Clusters["b"] = &clientcmdapi.Cluster{Server: "https://10.0.0.2:6443", CertificateAuthorityData: caB.certPEM}
	cfg.AuthInfos["admin-a"] = &clientcmdapi.AuthInfo{Token: "a"}
	cfg.AuthInfos["admin-b"] = &clientcmdapi.AuthInfo{Token: "b"}
	cfg.Contexts["ctx-a"] = &clientcmdapi.Context{Cluster: "a", AuthInfo: "admin-a"}
	cfg.Contexts["ctx-b"] = &clientcmdapi.Context{Cluster: "b", AuthInfo: "admin-b"}
	cfg.CurrentContext = current
	return cfg
}

func TestJoinTarget(t *testing.T) {
	caA, caB := newTestCA(t, "ca-a"), newTestCA(t, "ca-b")
	files := map[string][]byte{"/pki/ca-b.crt": caB.certPEM}
	readFile := func(path string) ([]byte, error) {
		if b, ok := files[path]; ok {
			return b, nil
		}
		return nil, fs.ErrNotExist
	}
	edit := func(current string, f func(*clientcmdapi.Config)) *clientcmdapi.Config {
		cfg := twoClusters(caA, caB, current)
		f(cfg)
		return cfg
	}

	tests := []struct {
		name         string
		cfg          *clientcmdapi.Config
		readFile     ReadFileFunc
		wantEndpoint string
		wantPin      string
		wantErr      string // substring; empty: no error
		wantNoCtx    bool   // the error is ErrNoCurrentContext
	}{
		{name: "current context on the second cluster", cfg: twoClusters(caA, caB, "ctx-b"),
			wantEndpoint: "10.0.0.2:6443", wantPin: certs.PinHash(caB.cert)},
		{name: "current context on the first cluster", cfg: twoClusters(caA, caB, "ctx-a"),
			wantEndpoint: "a.example:6443", wantPin: certs.PinHash(caA.cert)},
		{name: "no port is 443", cfg: edit("ctx-b", func(c *clientcmdapi.Config) { c.Clusters["b"].Server = "https://cp.example" }),
			wantEndpoint: "cp.example:443", wantPin: certs.PinHash(caB.cert)},
		{name: "IPv6", cfg: edit("ctx-b", func(c *clientcmdapi.Config) { c.Clusters["b"].Server = "https://[fd00::1]:6443" }),
			wantEndpoint: "[fd00::1]:6443", wantPin: certs.PinHash(caB.cert)},
		{name: "CA from a file", readFile: readFile,
			cfg: edit("ctx-b", func(c *clientcmdapi.Config) {
				c.Clusters["b"].CertificateAuthorityData, c.Clusters["b"].CertificateAuthority = nil, "/pki/ca-b.crt"
			}),
			wantEndpoint: "10.0.0.2:6443", wantPin: certs.PinHash(caB.cert)},
		{name: "CA file missing", readFile: readFile,
			cfg: edit("ctx-b", func(c *clientcmdapi.Config) {
				c.Clusters["b"].CertificateAuthorityData, c.Clusters["b"].CertificateAuthority = nil, "/pki/gone.crt"
			}),
			wantErr: `reading the CA of cluster "b": file does not exist`},
		{name: "CA file without a reader",
			cfg: edit("ctx-b", func(c *clientcmdapi.Config) {
				c.Clusters["b"].CertificateAuthorityData, c.Clusters["b"].CertificateAuthority = nil, "/pki/ca-b.crt"
			}),
			wantErr: `cluster "b" reads its CA from /pki/ca-b.crt, want it embedded`},
		{name: "no CA", cfg: edit("ctx-b", func(c *clientcmdapi.Config) { c.Clusters["b"].CertificateAuthorityData = nil }),
			wantErr: `cluster "b" has no certificate-authority-data, so there is no CA to pin`},
		{name: "CA unparseable", cfg: edit("ctx-b", func(c *clientcmdapi.Config) { c.Clusters["b"].CertificateAuthorityData = []byte("junk") }),
			wantErr: `reading the CA of cluster "b"`},
		{name: "server is not a URL", cfg: edit("ctx-b", func(c *clientcmdapi.Config) { c.Clusters["b"].Server = "10.0.0.2:6443" }),
			wantErr: `cluster "b" has server "10.0.0.2:6443", want a URL`},
		{name: "no current context", cfg: twoClusters(caA, caB, ""), wantErr: "has no current context", wantNoCtx: true},
		{name: "current context not defined", cfg: twoClusters(caA, caB, "ctx-c"),
			wantErr: `current context "ctx-c" is not defined`, wantNoCtx: true},
		{name: "current context names no cluster", cfg: edit("ctx-b", func(c *clientcmdapi.Config) { c.Contexts["ctx-b"].Cluster = "" }),
			wantErr: `current context "ctx-b" names no cluster`, wantNoCtx: true},
		{name: "cluster not defined", cfg: edit("ctx-b", func(c *clientcmdapi.Config) { delete(c.Clusters, "b") }),
			wantErr: `context "ctx-b" names cluster "b", which is not defined`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			endpoint, pin, err := JoinTarget(tc.cfg, tc.readFile)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("JoinTarget() error = %v, want one containing %q", err, tc.wantErr)
				}
				if got := errors.Is(err, ErrNoCurrentContext); got != tc.wantNoCtx {
					t.Errorf("errors.Is(%v, ErrNoCurrentContext) = %t, want %t", err, got, tc.wantNoCtx)
				}
				return
			}
			if err != nil {
				t.Fatalf("JoinTarget() = %v", err)
			}
			if diff := cmp.Diff([]string{tc.wantEndpoint, tc.wantPin}, []string{endpoint, pin}); diff != "" {
				t.Errorf("JoinTarget() endpoint and pin (-want +got):\n%s", diff)
			}
			gotPin, err := CAPin(tc.cfg, tc.readFile)
			if err != nil || gotPin != tc.wantPin {
				t.Errorf("CAPin() = %q, %v; want %q", gotPin, err, tc.wantPin)
			}
		})
	}
}

func TestCurrentCluster(t *testing.T) {
	caA, caB := newTestCA(t, "ca-a"), newTestCA(t, "ca-b")
	// Many runs, since map order is random: the current context decides, never the map.
	for range 20 {
		got, err := CurrentCluster(twoClusters(caA, caB, "ctx-b"), nil)
		if err != nil {
			t.Fatal(err)
		}
		want := Cluster{Name: "b", Server: "https://10.0.0.2:6443", CAPEM: caB.certPEM}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("CurrentCluster() (-want +got):\n%s", diff)
		}
	}
}

func TestCurrentUser(t *testing.T) {
	ca := newTestCA(t, "ca")
	tests := []struct {
		name      string
		edit      func(*clientcmdapi.Config)
		wantName  string
		wantToken string
		wantErr   string
	}{
		{name: "the current context's user", edit: func(*clientcmdapi.Config) {}, wantName: "admin-b", wantToken: "b"},
		{name: "user not defined", edit: func(c *clientcmdapi.Config) { c.Contexts["ctx-b"].AuthInfo = "other" },
			wantErr: `context "ctx-b" names user "other", which is not defined`},
		{name: "no user", edit: func(c *clientcmdapi.Config) { c.Contexts["ctx-b"].AuthInfo = "" },
			wantErr: `current context "ctx-b" names no user`},
		{name: "no current context", edit: func(c *clientcmdapi.Config) { c.CurrentContext = "" },
			wantErr: "has no current context"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := twoClusters(ca, ca, "ctx-b")
			tc.edit(cfg)
			name, user, err := CurrentUser(cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("CurrentUser() error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if name != tc.wantName || user.Token != tc.wantToken {
				t.Errorf("CurrentUser() = %q with token %q, want %q with token %q", name, user.Token, tc.wantName, tc.wantToken)
			}
		})
	}
}
