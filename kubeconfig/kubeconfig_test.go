package kubeconfig

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kforge/kforge/config"
)

// redact replaces the base64 of each secret with its placeholder, failing the test when a
// secret does not appear exactly once (so a golden file can never hold key material, and a
// placeholder can never hide a missing field).
func redact(t *testing.T, data []byte, secrets map[string][]byte) []byte {
	t.Helper()
	for placeholder, secret := range secrets {
		enc := []byte(base64.StdEncoding.EncodeToString(secret))
		if n := bytes.Count(data, enc); n != 1 {
			t.Fatalf("%s appears %d times in the kubeconfig, want once", placeholder, n)
		}
		data = bytes.ReplaceAll(data, enc, []byte(placeholder))
	}
	return data
}

func TestBuildGolden(t *testing.T) {
	ca := newTestCA(t, "kubernetes")
	c := config.Default()
	c.ControlPlaneEndpoint = "cp.example.com"
	for _, spec := range Specs("cp1") {
		t.Run(spec.Name, func(t *testing.T) {
			certPEM, keyPEM := ca.issue(t, leafOpts{cn: spec.CommonName, orgs: spec.Organization})
			got, err := Build(c.Name, spec.Server(c, "10.0.0.10"), ca.certPEM, spec.CommonName, certPEM, keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			got = redact(t, got, map[string][]byte{
				"REDACTED-CA-CERT":     ca.certPEM,
				"REDACTED-CLIENT-CERT": certPEM,
				"REDACTED-CLIENT-KEY":  keyPEM,
			})
			checkGolden(t, spec.FileName, got)
		})
	}
}

func TestClusterOnlyGolden(t *testing.T) {
	ca := newTestCA(t, "kubernetes")
	got, err := ClusterOnly("", "https://cp.example.com:6443", ca.certPEM)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "cluster-info.conf", redact(t, got, map[string][]byte{"REDACTED-CA-CERT": ca.certPEM}))

	cfg, err := clientcmd.Load(got)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.AuthInfos) != 0 || len(cfg.Contexts) != 0 || len(cfg.Clusters) != 1 {
		t.Errorf("got %d users, %d contexts, %d clusters; want 0, 0, 1", len(cfg.AuthInfos), len(cfg.Contexts), len(cfg.Clusters))
	}
	if cl := cfg.Clusters[""]; cl == nil || !bytes.Equal(cl.CertificateAuthorityData, ca.certPEM) {
		t.Errorf("cluster \"\" missing or CA not embedded: %+v", cfg.Clusters)
	}
}

func TestBuildContent(t *testing.T) {
	ca := newTestCA(t, "kubernetes")
	certPEM, keyPEM := ca.issue(t, leafOpts{cn: AdminUser, orgs: []string{AdminGroup}})
	data, err := Build("prod", "https://10.0.0.10:6443", ca.certPEM, AdminUser, certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CurrentContext != "kubernetes-admin@prod" {
		t.Errorf("current context = %q, want kubernetes-admin@prod", cfg.CurrentContext)
	}
	ctx := cfg.Contexts[cfg.CurrentContext]
	if ctx == nil || ctx.Cluster != "prod" || ctx.AuthInfo != AdminUser {
		t.Fatalf("context = %+v, want cluster prod and user %s", ctx, AdminUser)
	}
	if got := cfg.Clusters["prod"]; got == nil || got.Server != "https://10.0.0.10:6443" || !bytes.Equal(got.CertificateAuthorityData, ca.certPEM) {
		t.Errorf("cluster = %+v", got)
	}
	u := cfg.AuthInfos[AdminUser]
	if u == nil || !bytes.Equal(u.ClientCertificateData, certPEM) || !bytes.Equal(u.ClientKeyData, keyPEM) {
		t.Errorf("user %s does not embed the given certificate and key", AdminUser)
	}

	again, err := Build("prod", "https://10.0.0.10:6443", ca.certPEM, AdminUser, certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, again) {
		t.Error("Build is not deterministic")
	}
}

func TestBuildErrors(t *testing.T) {
	ca := newTestCA(t, "kubernetes")
	certPEM, keyPEM := ca.issue(t, leafOpts{cn: AdminUser})
	tests := []struct {
		name                   string
		cluster, server, user  string
		caPEM, certPEM, keyPEM []byte
		want                   string
	}{
		{name: "no cluster name", server: "https://a:6443", user: "u", caPEM: ca.certPEM, certPEM: certPEM, keyPEM: keyPEM, want: "cluster name is empty"},
		{name: "no server", cluster: "k", user: "u", caPEM: ca.certPEM, certPEM: certPEM, keyPEM: keyPEM, want: "server URL is empty"},
		{name: "no user", cluster: "k", server: "https://a:6443", caPEM: ca.certPEM, certPEM: certPEM, keyPEM: keyPEM, want: "user name is empty"},
		{name: "no CA", cluster: "k", server: "https://a:6443", user: "u", certPEM: certPEM, keyPEM: keyPEM, want: "CA certificate is empty"},
		{name: "no cert", cluster: "k", server: "https://a:6443", user: "u", caPEM: ca.certPEM, keyPEM: keyPEM, want: "client certificate is empty"},
		{name: "no key", cluster: "k", server: "https://a:6443", user: "u", caPEM: ca.certPEM, certPEM: certPEM, want: "client key is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(tc.cluster, tc.server, tc.caPEM, tc.user, tc.certPEM, tc.keyPEM)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Build() error = %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := ClusterOnly("k", "", ca.certPEM); err == nil {
		t.Error("ClusterOnly with no server: want an error")
	}
}

func TestSpecs(t *testing.T) {
	type row struct {
		Name, FileName, CommonName string
		Organization               []string
		Local                      bool
	}
	var got []row
	for _, s := range Specs("cp1") {
		if s.Desc == "" {
			t.Errorf("spec %s has no description", s.Name)
		}
		got = append(got, row{s.Name, s.FileName, s.CommonName, s.Organization, s.LocalEndpoint})
	}
	want := []row{
		{"admin", "admin.conf", "kubernetes-admin", []string{"kubeadm:cluster-admins"}, false},
		{"super-admin", "super-admin.conf", "kubernetes-super-admin", []string{"system:masters"}, false},
		{"kubelet", "kubelet.conf", "system:node:cp1", []string{"system:nodes"}, false},
		{"controller-manager", "controller-manager.conf", "system:kube-controller-manager", nil, true},
		{"scheduler", "scheduler.conf", "system:kube-scheduler", nil, true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Specs(cp1) (-want +got):\n%s", diff)
	}
}

func TestSpecServer(t *testing.T) {
	local := Spec{LocalEndpoint: true}
	remote := Spec{}
	tests := []struct {
		name      string
		endpoint  string
		extraArgs map[string]string
		addr      string
		spec      Spec
		want      string
	}{
		{name: "remote", endpoint: "lb.example.com", addr: "10.0.0.10", spec: remote, want: "https://lb.example.com:6443"},
		{name: "remote with port", endpoint: "lb.example.com:8443", addr: "10.0.0.10", spec: remote, want: "https://lb.example.com:8443"},
		{name: "local", endpoint: "lb.example.com", addr: "10.0.0.10", spec: local, want: "https://10.0.0.10:6443"},
		{name: "local ipv6", endpoint: "lb.example.com", addr: "fd00::10", spec: local, want: "https://[fd00::10]:6443"},
		{name: "local secure-port", endpoint: "lb.example.com", extraArgs: map[string]string{"secure-port": "7443"}, addr: "10.0.0.10", spec: local, want: "https://10.0.0.10:7443"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := config.Default()
			c.ControlPlaneEndpoint = tc.endpoint
			c.APIServer.ExtraArgs = tc.extraArgs
			if got := tc.spec.Server(c, tc.addr); got != tc.want {
				t.Errorf("Server() = %q, want %q", got, tc.want)
			}
		})
	}
}
