package fleet

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/internal/testutil"
)

// TestCertsScriptAndParse runs the script readCerts sends to a host against files under a
// temp directory and parses what it prints: the host's clock, the first certificate of a
// PEM file, the client certificate of a kubeconfig, and no private key at all.
func TestCertsScriptAndParse(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh on this machine to run the script with")
	}
	ca := testutil.NewCA(t, "kubernetes", 24*time.Hour)
	sign := func(cn string, notAfter time.Time) (certPEM, keyPEM []byte) {
		return ca.Sign(&x509.Certificate{Subject: pkix.Name{CommonName: cn}, NotBefore: notAfter.Add(-time.Hour), NotAfter: notAfter,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	}
	dir := t.TempDir()
	apiserverAt := time.Now().Add(-3 * time.Hour).Truncate(time.Second).UTC()
	adminAt := time.Now().Add(5 * time.Hour).Truncate(time.Second).UTC()
	kubeletAt := time.Now().Add(-2 * time.Hour).Truncate(time.Second).UTC()
	apiserver, _ := sign("kube-apiserver", apiserverAt)
	admin, adminKey := sign("kubernetes-admin", adminAt)
	kubeletCert, kubeletKey := sign("system:node:cp1", kubeletAt)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	etcdCA := testutil.NewCA(t, "etcd-ca", 24*time.Hour)
	files := []certFile{
		{name: "ca", path: write("ca.crt", ca.PEM), kind: "ca", keyPath: write("ca.key", []byte("the CA's key"))},
		// The etcd CA's key is not on the host: what it signs is external.
		{name: "etcd-ca", path: write("etcd-ca.crt", etcdCA.PEM), kind: "ca", keyPath: filepath.Join(dir, "etcd-ca.key")},
		{name: "apiserver", path: write("apiserver.crt", apiserver), kind: "leaf", signer: "ca"},
		{name: "front-proxy-client", path: filepath.Join(dir, "missing.crt"), kind: "leaf", signer: "front-proxy-ca"},
		{name: "admin.conf", path: write("admin.conf", []byte(fmt.Sprintf("apiVersion: v1\nusers:\n- name: kubernetes-admin\n  user:\n"+
			"    client-certificate-data: %s\n    client-key-data: %s\n", base64.StdEncoding.EncodeToString(admin), base64.StdEncoding.EncodeToString(adminKey)))), kind: "kubeconfig", signer: "ca"},
		{name: "kubelet-client", path: write("kubelet-client.pem", append(append([]byte{}, kubeletCert...), kubeletKey...)), kind: "kubelet"},
		{name: "etcd-server", path: write("etcd-server.crt", apiserver), kind: "leaf", signer: "etcd-ca"},
	}
	out, err := exec.Command("sh", "-c", certsScript(files)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "PRIVATE KEY") || strings.Contains(string(out), base64.StdEncoding.EncodeToString(adminKey)) || strings.Contains(string(out), "the CA's key") {
		t.Errorf("the script printed a private key:\n%s", out)
	}
	now, notAfter, hasKey, err := parseCerts(out)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(now); d < -time.Minute || d > time.Minute {
		t.Errorf("host clock %s, want about now", now)
	}
	got := hostCerts(files, now, notAfter, hasKey)
	want := HostCerts{Now: now,
		CAs: []HostCert{
			{Name: "ca", Path: files[0].path, NotAfter: ca.Cert.NotAfter.UTC()},
			{Name: "etcd-ca", Path: files[1].path, NotAfter: etcdCA.Cert.NotAfter.UTC(), External: true},
		},
		Leaves: []HostCert{
			{Name: "apiserver", Path: files[2].path, NotAfter: apiserverAt, Signer: "ca"},
			{Name: "admin.conf", Path: files[4].path, NotAfter: adminAt, Signer: "ca"},
			{Name: "etcd-server", Path: files[6].path, NotAfter: apiserverAt, Signer: "etcd-ca", External: true},
		},
		KubeletClient: &HostCert{Name: "kubelet-client", Path: files[5].path, NotAfter: kubeletAt},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("certificates (-want +got):\n%s", diff)
	}
}

func TestParseCertsErrors(t *testing.T) {
	for _, tc := range []struct{ name, out, want string }{
		{"no clock", "", "did not print its clock"},
		{"bad clock", "now soon\n", "reading the host's clock"},
		{"kubeconfig not base64", "now 1\nfile /etc/kubernetes/admin.conf\n!!!\n", "/etc/kubernetes/admin.conf: client-certificate-data is not base64"},
		{"no certificate", "now 1\nfile /var/lib/kubelet/pki/kubelet-client-current.pem\n", "kubelet-client-current.pem: no PEM certificate in it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := parseCerts([]byte(tc.out))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one that says %q", err, tc.want)
			}
		})
	}
}

// TestMakePlanExpiredCertificates: expired certificates, judged by each host's clock, plan
// an offline renewal of the control planes before anything else (never an init, even
// with the API refusing), a re-bootstrap of expired kubelets, and a refusal for an expired
// CA.
func TestMakePlanExpiredCertificates(t *testing.T) {
	now := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	cert := func(name string, expiresIn time.Duration) HostCert {
		return HostCert{Name: name, Path: "/etc/kubernetes/pki/" + name + ".crt", NotAfter: now.Add(expiresIn)}
	}
	kubelet := func(expiresIn time.Duration) *HostCert {
		c := HostCert{Name: "kubelet-client", Path: "/var/lib/kubelet/pki/kubelet-client-current.pem", NotAfter: now.Add(expiresIn)}
		return &c
	}
	valid := 300 * 24 * time.Hour
	cpCerts := func(apiserver, admin, kubeletIn time.Duration) HostCerts {
		return HostCerts{Now: now, CAs: []HostCert{cert("ca", 9*365*24*time.Hour)},
			Leaves:        []HostCert{cert("apiserver", apiserver), cert("apiserver-kubelet-client", apiserver-2*time.Hour), {Name: "admin.conf", Path: "/etc/kubernetes/admin.conf", NotAfter: now.Add(admin)}},
			KubeletClient: kubelet(kubeletIn)}
	}
	workerCerts := func(kubeletIn time.Duration) HostCerts { return HostCerts{Now: now, KubeletClient: kubelet(kubeletIn)} }
	allValid := map[string]HostCerts{"cp1": cpCerts(valid, valid, valid), "cp2": cpCerts(valid, valid, valid), "w1": workerCerts(valid), "w2": workerCerts(valid)}
	with := func(kv ...any) map[string]HostCerts {
		out := map[string]HostCerts{}
		for k, v := range allValid {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1].(HostCerts)
		}
		return out
	}
	nodes := map[string]Node{"cp1": {Ready: true, ControlPlane: true}, "cp2": {Ready: true, ControlPlane: true}, "w1": {}, "w2": {Ready: true}}
	tests := []struct {
		name      string
		obs       Observed
		wantSteps []Step
		wantNotes []string // the recovery's notes, control planes then kubelets
		wantErr   error
		wantMsg   []string
	}{
		{
			name:      "nothing expired: no recovery",
			obs:       Observed{Cluster: true, Nodes: nodes, Certs: allValid},
			wantSteps: nil, // the plain plan, not compared here
		},
		{
			name: "apiserver of cp1 expired 3h ago, the cluster off: cp1 renews first, nothing else is planned, no init",
			obs:  Observed{Certs: with("cp1", cpCerts(-3*time.Hour, valid, valid)), State: map[string][]string{"cp1": {"/etc/kubernetes/pki/ca.crt"}}},
			wantSteps: []Step{{Host: "cp1", Role: "control-plane", Action: ActionRenewCerts,
				Note: "certificates expired on cp1 (apiserver-kubelet-client expired 5h ago, and 1 more): renews offline, restarts static pods"}},
			wantNotes: []string{"certificates expired on cp1 (apiserver-kubelet-client expired 5h ago, and 1 more): renews offline, restarts static pods"},
		},
		{
			name: "every certificate expired everywhere, the API refusing: both control planes renew, in file order; kubelets after",
			obs: Observed{Certs: with("cp1", cpCerts(-50*time.Hour, -50*time.Hour, -49*time.Hour), "cp2", cpCerts(-time.Minute, valid, valid),
				"w1", workerCerts(-2*time.Hour)), Rejected: &Rejection{Host: "cp1", TLS: true, Expired: true}},
			wantSteps: []Step{
				{Host: "cp1", Role: "control-plane", Action: ActionRenewCerts,
					Note: "certificates expired on cp1 (apiserver-kubelet-client expired 2d ago, and 3 more): renews offline, restarts static pods"},
				{Host: "cp2", Role: "control-plane", Action: ActionRenewCerts,
					Note: "certificates expired on cp2 (apiserver-kubelet-client expired 2h ago, and 1 more): renews offline, restarts static pods"},
			},
			wantNotes: []string{
				"certificates expired on cp1 (apiserver-kubelet-client expired 2d ago, and 3 more): renews offline, restarts static pods",
				"certificates expired on cp2 (apiserver-kubelet-client expired 2h ago, and 1 more): renews offline, restarts static pods",
				"kubelet client certificate of w1 expired 2h ago: re-bootstraps",
			},
		},
		{
			name: "only cp2's kubelet expired: its kubelet runs no static pod, so cp2 renews offline",
			obs:  Observed{Certs: with("cp2", cpCerts(valid, valid, -10*time.Minute))},
			wantSteps: []Step{{Host: "cp2", Role: "control-plane", Action: ActionRenewCerts,
				Note: "certificates expired on cp2 (kubelet-client expired 10m ago): renews offline, restarts static pods"}},
			wantNotes: []string{"certificates expired on cp2 (kubelet-client expired 10m ago): renews offline, restarts static pods"},
		},
		{
			name:      "a worker's kubelet expired, the cluster answers: the plain plan, and a re-bootstrap",
			obs:       Observed{Cluster: true, Nodes: nodes, Certs: with("w1", workerCerts(-2*time.Hour))},
			wantNotes: []string{"kubelet client certificate of w1 expired 2h ago: re-bootstraps"},
		},
		{
			name: "a worker not in the cluster joins; its old kubelet certificate is not re-bootstrapped",
			obs:  Observed{Cluster: true, Nodes: map[string]Node{"cp1": {Ready: true, ControlPlane: true}}, Certs: with("w1", workerCerts(-2*time.Hour))},
		},
		{
			name: "a reset worker is not re-bootstrapped either",
			obs:  Observed{Cluster: true, Nodes: nodes, Stale: map[string]bool{"w1": true}, Certs: with("w1", workerCerts(-2*time.Hour))},
		},
		{
			name: "by the host's clock: a certificate that expires in a minute there has not expired",
			obs:  Observed{Cluster: true, Nodes: nodes, Certs: with("w1", workerCerts(time.Minute))},
		},
		{
			name: "an unreachable host is not recovered",
			obs:  Observed{Cluster: true, Nodes: nodes, Certs: with("w1", workerCerts(-time.Hour)), Unreachable: map[string]bool{"w1": true}},
		},
		{
			name: "the CA expired: a refusal that says when and what to do",
			obs: Observed{Certs: with("cp1", HostCerts{Now: now, CAs: []HostCert{cert("ca", -72*time.Hour)},
				Leaves: []HostCert{cert("apiserver", -72*time.Hour)}})},
			wantErr: ErrCAExpired,
			wantMsg: []string{"cp1: ca (/etc/kubernetes/pki/ca.crt) expired 3d ago", "never makes a new CA", "kforge reset on every host"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := MakePlan(testutil.Cluster(t), tc.obs, PlanOptions{})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
				for _, m := range tc.wantMsg {
					if !strings.Contains(err.Error(), m) {
						t.Errorf("error does not say %q:\n%v", m, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Init != "" {
				t.Errorf("plans init on %s", p.Init)
			}
			if tc.wantSteps != nil {
				if diff := cmp.Diff(tc.wantSteps, p.Steps); diff != "" {
					t.Errorf("steps (-want +got):\n%s", diff)
				}
			}
			var notes []string
			for _, r := range append(append([]CertRecovery{}, p.Recovery.ControlPlanes...), p.Recovery.Kubelets...) {
				notes = append(notes, r.Note)
			}
			if diff := cmp.Diff(tc.wantNotes, notes); diff != "" {
				t.Errorf("recovery notes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAgo(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{40 * time.Second, "40s"}, {6 * time.Minute, "6m"}, {3*time.Hour + 59*time.Minute, "3h"}, {47 * time.Hour, "47h"}, {50 * time.Hour, "2d"},
	} {
		if got := ago(tc.d); got != tc.want {
			t.Errorf("ago(%s) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

// TestRenewedBeforeQuorum: with a local etcd, the renewals that come before etcd can have
// a quorum of members with valid certificates do not wait for their apiserver.
func TestRenewedBeforeQuorum(t *testing.T) {
	for _, tc := range []struct {
		cps, expired int
		external     bool
		want         int
	}{
		{cps: 1, expired: 1, want: 0},
		{cps: 2, expired: 1, want: 0}, // the other member and this one make 2 of 2
		{cps: 2, expired: 2, want: 1},
		{cps: 3, expired: 1, want: 0},
		{cps: 3, expired: 2, want: 0}, // 1 valid + the first renewed = 2 of 3
		{cps: 3, expired: 3, want: 1},
		{cps: 5, expired: 5, want: 2},
		{cps: 5, expired: 4, want: 1},
		{cps: 3, expired: 3, external: true, want: 0},
	} {
		t.Run(fmt.Sprintf("%d of %d, external %v", tc.expired, tc.cps, tc.external), func(t *testing.T) {
			c := testutil.Cluster(t)
			var hosts []config.Host
			for i := range tc.cps {
				hosts = append(hosts, config.Host{Name: fmt.Sprintf("cp%d", i+1), Address: fmt.Sprintf("192.0.2.%d", i+10), Roles: []string{config.RoleControlPlane}})
			}
			c.Hosts = hosts
			if tc.external {
				c.Etcd.Local, c.Etcd.External = nil, &config.ExternalEtcd{Endpoints: []string{"https://192.0.2.99:2379"}}
			}
			if got := renewedBeforeQuorum(c, tc.expired); got != tc.want {
				t.Errorf("renewedBeforeQuorum = %d, want %d", got, tc.want)
			}
		})
	}
}
