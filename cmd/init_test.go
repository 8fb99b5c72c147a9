package cmd

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kforge/kforge/internal/testutil"
	"github.com/kforge/kforge/preflight"
)

// quietSystem is the real machine for preflight, minus everything that touches the network:
// names resolve to loopback without DNS, ports are free, and the runtime socket answers.
// Tests send no traffic beyond this process.
type quietSystem struct{ preflight.System }

func (quietSystem) LookupHost(context.Context, string) ([]string, error) {
	return []string{"127.0.0.1"}, nil
}
func (quietSystem) Listen(context.Context, string) error   { return nil }
func (quietSystem) DialUnix(context.Context, string) error { return nil }

// run executes kforge with args and returns stdout; stderr is attached to failures.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCommand(&rootOptions{
		streams:   Streams{In: strings.NewReader(""), Out: &out, Err: &errOut},
		preflight: quietSystem{preflight.LocalSystem()},
	})
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	if err != nil && errOut.Len() > 0 {
		t.Logf("stderr:\n%s", errOut.String())
	}
	return out.String(), err
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := run(t, args...)
	if err != nil {
		t.Fatalf("kforge %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func TestInitHelpGolden(t *testing.T) {
	testutil.Golden(t, "init-help.golden", []byte(mustRun(t, "init", "--help")))
	testutil.Golden(t, "init-phase-help.golden", []byte(mustRun(t, "init", "phase", "--help")))
}

// layout is a temp node: a cluster.toml and the dirs the phases write.
type layout struct {
	dir, config, pki, kube, manifests, etcd string
}

func (l layout) flags() []string {
	return []string{"--config", l.config, "--node", "cp1", "--cert-dir", l.pki,
		"--kubeconfig-dir", l.kube, "--manifests-dir", l.manifests}
}

func newLayout(t *testing.T, extra string) layout {
	t.Helper()
	dir := t.TempDir()
	l := layout{dir: dir, config: filepath.Join(dir, "cluster.toml"), pki: filepath.Join(dir, "pki"),
		kube: filepath.Join(dir, "kube"), manifests: filepath.Join(dir, "manifests"), etcd: filepath.Join(dir, "etcd")}
	cfg := fmt.Sprintf(`version = "kforge/v1alpha1"
control_plane_endpoint = "cp.example.test"
%s
[etcd.local]
data_dir = %q

[[hosts]]
name = "cp1"
address = "192.0.2.10"
roles = ["control-plane"]
`, extra, l.etcd)
	if err := os.WriteFile(l.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return l
}

func (l layout) runOffline(t *testing.T) {
	t.Helper()
	for _, p := range [][]string{{"certs", "all"}, {"kubeconfig", "all"}, {"etcd", "local"}, {"control-plane", "all"}} {
		mustRun(t, append(append([]string{"init", "phase"}, p...), l.flags()...)...)
	}
}

// snapshot records every file's mode, content and mtime under dir.
type fileState struct {
	mode  fs.FileMode
	data  string
	mtime time.Time
}

func snapshot(t *testing.T, dir string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		st := fileState{mode: info.Mode(), mtime: info.ModTime()}
		if !e.IsDir() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			st.data = string(b)
		}
		out[rel] = st
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// wantFiles is the file set of shared/REFERENCE.md for one init node, with modes.
var wantFiles = map[string]fs.FileMode{
	"pki":                                    fs.ModeDir | 0o700,
	"pki/ca.crt":                             0o644,
	"pki/ca.key":                             0o600,
	"pki/apiserver.crt":                      0o644,
	"pki/apiserver.key":                      0o600,
	"pki/apiserver-kubelet-client.crt":       0o644,
	"pki/apiserver-kubelet-client.key":       0o600,
	"pki/front-proxy-ca.crt":                 0o644,
	"pki/front-proxy-ca.key":                 0o600,
	"pki/front-proxy-client.crt":             0o644,
	"pki/front-proxy-client.key":             0o600,
	"pki/etcd":                               fs.ModeDir | 0o700,
	"pki/etcd/ca.crt":                        0o644,
	"pki/etcd/ca.key":                        0o600,
	"pki/etcd/server.crt":                    0o644,
	"pki/etcd/server.key":                    0o600,
	"pki/etcd/peer.crt":                      0o644,
	"pki/etcd/peer.key":                      0o600,
	"pki/etcd/healthcheck-client.crt":        0o644,
	"pki/etcd/healthcheck-client.key":        0o600,
	"pki/apiserver-etcd-client.crt":          0o644,
	"pki/apiserver-etcd-client.key":          0o600,
	"pki/sa.key":                             0o600,
	"pki/sa.pub":                             0o644,
	"kube/admin.conf":                        0o600,
	"kube/super-admin.conf":                  0o600,
	"kube/kubelet.conf":                      0o600,
	"kube/controller-manager.conf":           0o600,
	"kube/scheduler.conf":                    0o600,
	"manifests/etcd.yaml":                    0o600,
	"manifests/kube-apiserver.yaml":          0o600,
	"manifests/kube-controller-manager.yaml": 0o600,
	"manifests/kube-scheduler.yaml":          0o600,
	"etcd":                                   fs.ModeDir | 0o700,
	// Beyond the reference: the [security] defaults.
	"pki/encryption-config.yaml":                0o600,
	"kube/apiserver":                            fs.ModeDir | 0o755,
	"kube/apiserver/admission-config.yaml":      0o600,
	"kube/apiserver/audit-policy.yaml":          0o600,
	"kube/apiserver/authentication-config.yaml": 0o600,
}

// certRow is one row of the certificate table in shared/REFERENCE.md.
type certRow struct {
	file, signer, cn string
	org              []string
	dns              []string
	ips              []string
	server, client   bool
	ca               bool
}

var referenceTable = []certRow{
	{file: "ca", signer: "ca", cn: "kubernetes", ca: true},
	{file: "apiserver", signer: "ca", cn: "kube-apiserver", server: true,
		dns: []string{"cp.example.test", "cp1", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		ips: []string{"10.96.0.1", "192.0.2.10"}},
	{file: "apiserver-kubelet-client", signer: "ca", cn: "kube-apiserver-kubelet-client", org: []string{"kubeadm:cluster-admins"}, client: true},
	{file: "front-proxy-ca", signer: "front-proxy-ca", cn: "front-proxy-ca", ca: true},
	{file: "front-proxy-client", signer: "front-proxy-ca", cn: "front-proxy-client", client: true},
	{file: "etcd/ca", signer: "etcd/ca", cn: "etcd-ca", ca: true},
	{file: "etcd/server", signer: "etcd/ca", cn: "cp1", server: true, client: true,
		dns: []string{"cp1", "localhost"}, ips: []string{"127.0.0.1", "192.0.2.10", "::1"}},
	{file: "etcd/peer", signer: "etcd/ca", cn: "cp1", server: true, client: true,
		dns: []string{"cp1", "localhost"}, ips: []string{"127.0.0.1", "192.0.2.10", "::1"}},
	{file: "etcd/healthcheck-client", signer: "etcd/ca", cn: "kube-etcd-healthcheck-client", client: true},
	{file: "apiserver-etcd-client", signer: "etcd/ca", cn: "kube-apiserver-etcd-client", client: true},
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

func TestOfflinePhasesProduceTheReferenceFileSet(t *testing.T) {
	l := newLayout(t, "")
	l.runOffline(t)
	got := map[string]fs.FileMode{}
	for rel, st := range snapshot(t, l.dir) {
		if rel == "." || rel == "cluster.toml" || rel == "kube" || rel == "manifests" {
			continue
		}
		got[rel] = st.mode
	}
	if diff := cmp.Diff(wantFiles, got); diff != "" {
		t.Fatalf("file set and modes (-want +got):\n%s", diff)
	}

	now := time.Now()
	for _, row := range referenceTable {
		t.Run(row.file, func(t *testing.T) {
			c := readCert(t, filepath.Join(l.pki, row.file+".crt"))
			signer := readCert(t, filepath.Join(l.pki, row.signer+".crt"))
			if c.Subject.CommonName != row.cn {
				t.Errorf("CN = %q, want %q", c.Subject.CommonName, row.cn)
			}
			if !slices.Equal(c.Subject.Organization, row.org) {
				t.Errorf("O = %q, want %q", c.Subject.Organization, row.org)
			}
			dns := slices.Sorted(slices.Values(c.DNSNames))
			if !slices.Equal(dns, row.dns) {
				t.Errorf("DNS SANs = %q, want %q", dns, row.dns)
			}
			var ips []string
			for _, ip := range c.IPAddresses {
				ips = append(ips, ip.String())
			}
			sort.Strings(ips)
			if !slices.Equal(ips, row.ips) {
				t.Errorf("IP SANs = %q, want %q", ips, row.ips)
			}
			if c.IsCA != row.ca {
				t.Errorf("IsCA = %v, want %v", c.IsCA, row.ca)
			}
			hasEKU := func(u x509.ExtKeyUsage) bool { return slices.Contains(c.ExtKeyUsage, u) }
			if !row.ca && (hasEKU(x509.ExtKeyUsageServerAuth) != row.server || hasEKU(x509.ExtKeyUsageClientAuth) != row.client) {
				t.Errorf("ext key usages = %v, want server=%v client=%v", c.ExtKeyUsage, row.server, row.client)
			}
			if row.ca && c.KeyUsage&x509.KeyUsageCertSign == 0 {
				t.Errorf("CA lacks the cert-sign key usage")
			}
			pool := x509.NewCertPool()
			pool.AddCert(signer)
			usage := x509.ExtKeyUsageAny
			if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Errorf("chain to %s: %v", row.signer, err)
			}
			life := c.NotAfter.Sub(now)
			wantLife := 365 * 24 * time.Hour
			if row.ca {
				wantLife = 10 * 365 * 24 * time.Hour
			}
			if life < wantLife-time.Hour || life > wantLife+time.Hour {
				t.Errorf("lifetime = %s, want about %s", life, wantLife)
			}
			if c.NotBefore.After(now.Add(-time.Minute)) {
				t.Errorf("NotBefore %s is not backdated for clock skew", c.NotBefore)
			}
			if _, err := exec.LookPath("openssl"); err == nil {
				out, err := exec.Command("openssl", "verify", "-CAfile", filepath.Join(l.pki, row.signer+".crt"),
					filepath.Join(l.pki, row.file+".crt")).CombinedOutput()
				if err != nil {
					t.Errorf("openssl verify: %v\n%s", err, out)
				}
			} else {
				t.Log("openssl is not installed, so the independent chain check is left out; .ci/run installs it")
			}
		})
	}
}

func TestOfflinePhasesConverge(t *testing.T) {
	l := newLayout(t, "")
	l.runOffline(t)
	before := snapshot(t, l.dir)
	time.Sleep(20 * time.Millisecond) // a rewrite would show a newer mtime
	l.runOffline(t)
	if diff := cmp.Diff(before, snapshot(t, l.dir), cmp.AllowUnexported(fileState{})); diff != "" {
		t.Fatalf("a second run changed files (-before +after):\n%s", diff)
	}

	// Deleting one leaf regenerates only that leaf.
	for _, f := range []string{"apiserver.crt", "apiserver.key"} {
		if err := os.Remove(filepath.Join(l.pki, f)); err != nil {
			t.Fatal(err)
		}
	}
	mustRun(t, append([]string{"init", "phase", "certs", "all"}, l.flags()...)...)
	after := snapshot(t, l.dir)
	var changed []string
	for rel, st := range after {
		if b, ok := before[rel]; !ok || b != st {
			changed = append(changed, rel)
		}
	}
	sort.Strings(changed)
	// The pki directory's own mtime changes because two entries were replaced.
	if diff := cmp.Diff([]string{"pki", "pki/apiserver.crt", "pki/apiserver.key"}, changed); diff != "" {
		t.Errorf("files changed by regenerating one leaf (-want +got):\n%s", diff)
	}
}

func TestOfflinePhasesRefuseAMismatchedCertificate(t *testing.T) {
	l := newLayout(t, "")
	l.runOffline(t)
	// The same PKI for another node name: etcd/server no longer has the right SANs.
	other := strings.Replace(mustRead(t, l.config), `name = "cp1"`, `name = "cp2"`, 1)
	if err := os.WriteFile(l.config, []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, l.pki)
	_, err := run(t, "init", "phase", "certs", "etcd-server", "--config", l.config, "--node", "cp2",
		"--cert-dir", l.pki, "--kubeconfig-dir", l.kube, "--manifests-dir", l.manifests)
	if err == nil || !strings.Contains(err.Error(), `phase "certs/etcd-server"`) || !strings.Contains(err.Error(), "cp2") {
		t.Fatalf("want a mismatch error naming the phase and the missing SAN, got %v", err)
	}
	if diff := cmp.Diff(before, snapshot(t, l.pki), cmp.AllowUnexported(fileState{})); diff != "" {
		t.Errorf("a mismatched certificate was touched (-before +after):\n%s", diff)
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestInitDryRunWritesNothing(t *testing.T) {
	l := newLayout(t, "")
	out := mustRun(t, append([]string{"init", "--dry-run", "--ignore-preflight-errors=all"}, l.flags()...)...)
	for _, want := range []string{
		"[dry-run] a real run would change ",
		"create  0600  " + l.pki + "/ca.key  (holds a key or credential: content not shown)",
		"create  0600  " + l.manifests + "/kube-apiserver.yaml",
		"the kubelet would (re)start these static pods",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry-run output lacks %q:\n%s", want, out)
		}
	}
	for _, p := range []string{l.pki, l.kube, l.manifests, l.etcd} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("dry run created %s", p)
		}
	}
	scratch := strings.TrimPrefix(strings.SplitN(out, "\n", 2)[0], "[dry-run] writing nothing outside ")
	if _, err := os.Stat(scratch); err == nil {
		t.Errorf("dry run left its scratch dir %s behind", scratch)
	}
}

func TestInitSkipPhasesValidated(t *testing.T) {
	l := newLayout(t, "")
	_, err := run(t, append([]string{"init", "--skip-phases", "certs/nope"}, l.flags()...)...)
	if err == nil || !strings.Contains(err.Error(), "unknown phase certs/nope") {
		t.Fatalf("want an unknown phase error, got %v", err)
	}
}

func TestInitPhaseSlashForm(t *testing.T) {
	l := newLayout(t, "")
	mustRun(t, append([]string{"init", "phase", "certs/ca"}, l.flags()...)...)
	if _, err := os.Stat(filepath.Join(l.pki, "ca.key")); err != nil {
		t.Fatalf("certs/ca did not write ca.key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(l.pki, "apiserver.crt")); err == nil {
		t.Fatal("certs/ca also wrote apiserver.crt")
	}
}

// TestDirectoryFlagsFollowTheConfigRule is issue 10, item 1: the directory flags of init,
// join, reset and certs refuse what cluster.toml's directory settings refuse, naming the
// flag. Every run is a dry run, so that even without the rule nothing is written.
func TestDirectoryFlagsFollowTheConfigRule(t *testing.T) {
	t.Setenv(envToken, "")
	pin := "sha256:" + strings.Repeat("ab", 32)
	for _, cmd := range [][]string{
		{"init", "--dry-run", "--ignore-preflight-errors=all", "--node", "cp1", "--advertise-address", "192.0.2.10"},
		{"join", "127.0.0.1:6443", "--dry-run", "--token", "k4fg3x.q7w8e9r0t1y2u3i4", "--discovery-token-ca-cert-hash", pin, "--discovery-timeout", "1ms"},
		{"reset", "--dry-run", "--node", "cp1"},
	} {
		for _, tc := range []struct{ flag, value, want string }{
			{"--cert-dir", "/var/lib", "is a system directory"},
			{"--cert-dir", "/", "is the root directory"},
			{"--kubeconfig-dir", "/usr", "is a system directory"},
			{"--kubeconfig-dir", "kube", "is not an absolute path"},
			{"--manifests-dir", "/etc/kubernetes/manifests/../..", "is not a clean path"},
			{"--manifests-dir", "/var", "is a system directory"},
		} {
			t.Run(cmd[0]+" "+tc.flag+" "+tc.value, func(t *testing.T) {
				args := append(slices.Clone(cmd), tc.flag, tc.value)
				_, err := run(t, args...)
				if err == nil || !strings.Contains(err.Error(), tc.flag+": ") || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("kforge %s: err = %v, want one naming %s and saying %q", strings.Join(args, " "), err, tc.flag, tc.want)
				}
			})
		}
	}
	for _, args := range [][]string{
		{"certs", "check-expiration", "--cert-dir", "/etc"},
		{"certs", "check-expiration", "--cert-dir", "pki"},
	} {
		if _, err := run(t, args...); err == nil || !strings.Contains(err.Error(), "--cert-dir: ") {
			t.Errorf("kforge %s: err = %v, want one naming --cert-dir", strings.Join(args, " "), err)
		}
	}
}

// TestInitAdvertiseAddressNamed is issue 10, item 22: a bad --advertise-address without a
// file blamed "the file's hosts".
func TestInitAdvertiseAddressNamed(t *testing.T) {
	for _, addr := range []string{"999.0.0.1", "10.0.0.300", "cp1.example.com", "fe80::1%eth0", "0.0.0.0"} {
		t.Run(addr, func(t *testing.T) {
			_, err := run(t, "init", "--dry-run", "--ignore-preflight-errors=all", "--node", "cp1", "--advertise-address", addr)
			if err == nil || !strings.Contains(err.Error(), "--advertise-address") || !strings.Contains(err.Error(), addr) {
				t.Fatalf("init --advertise-address %s: err = %v, want one naming the flag and the address", addr, err)
			}
		})
	}
}
