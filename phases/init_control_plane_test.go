package phases

import (
	"bytes"
	"os"
	"path"
	"strings"
	"testing"

	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/fleet"
	"github.com/kforge/kforge/manifests"
)

func securityCluster(edit func(c *config.Cluster)) *config.Cluster {
	c := &config.Cluster{Hosts: []config.Host{
		{Name: "cp1", Address: "192.0.2.10", Roles: []string{config.RoleControlPlane}},
		{Name: "cp2", Address: "192.0.2.11", Roles: []string{config.RoleControlPlane}},
	}}
	if edit != nil {
		edit(c)
	}
	config.SetDefaults(c)
	return c
}

func runControlPlane(t *testing.T, d *Data) error {
	t.Helper()
	return (&Workflow{Name: "init", Phases: []Phase{controlPlanePhase()}}).Run(t.Context(), d, "", nil)
}

// The control-plane phase writes the apiserver's security files before its manifest, makes
// the encryption key once with mode 0600, and keeps it on a re-run.
func TestControlPlaneWritesSecurityFiles(t *testing.T) {
	var out bytes.Buffer
	d := newTestData(t, securityCluster(nil), "cp1", &out, nil)
	d.Join.ControlPlane = false // init
	if err := runControlPlane(t, d); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	encPath := d.Path(path.Join(DefaultCertDir, manifests.EncryptionConfigFile))
	fi, err := os.Stat(encPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, want 0600", encPath, fi.Mode().Perm())
	}
	key, _ := os.ReadFile(encPath)
	if !bytes.Contains(key, []byte("secretbox")) {
		t.Errorf("encryption configuration has no secretbox key:\n%s", key)
	}
	for _, name := range []string{manifests.AuditPolicyFile, manifests.AdmissionConfigFile, manifests.AuthenticationConfigFile} {
		p := path.Join(DefaultKubeconfigDir, manifests.APIServerConfigDir, name)
		if _, err := os.Stat(d.Path(p)); err != nil {
			t.Errorf("the apiserver's %s was not written: %v", p, err)
		}
	}
	m, err := os.ReadFile(d.Path(path.Join(DefaultManifestsDir, "kube-apiserver.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(m, []byte("--encryption-provider-config=/etc/kubernetes/pki/encryption-config.yaml")) {
		t.Errorf("apiserver manifest does not read the encryption configuration:\n%s", m)
	}

	out.Reset()
	if err := runControlPlane(t, d); err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(encPath)
	if !bytes.Equal(key, again) {
		t.Error("a re-run replaced the encryption key: Secrets written under the first one could no longer be read")
	}
	if !strings.Contains(out.String(), "using existing /etc/kubernetes/pki/encryption-config.yaml") {
		t.Errorf("re-run output does not say it kept the key:\n%s", out.String())
	}
}

// A lost key on a host whose apiserver already read one is not replaced by a new key,
// which could not read the Secrets the old one encrypted.
func TestControlPlaneKeepsALostKeyLost(t *testing.T) {
	var out bytes.Buffer
	d := newTestData(t, securityCluster(nil), "cp1", &out, nil)
	d.Join.ControlPlane = false // init
	if err := runControlPlane(t, d); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	encPath := d.Path(path.Join(DefaultCertDir, manifests.EncryptionConfigFile))
	if err := os.Remove(encPath); err != nil {
		t.Fatal(err)
	}
	err := runControlPlane(t, d)
	if err == nil || !strings.Contains(err.Error(), "restore the file") {
		t.Fatalf("init with the key gone and the apiserver reading it: %v, want a refusal", err)
	}
	if _, err := os.Stat(encPath); err == nil {
		t.Error("the refused init made a new encryption key")
	}
}

// A joining control plane never makes a key of its own: a second key would leave each
// apiserver unable to read the other's Secrets.
func TestControlPlaneJoinNeedsTheClusterKey(t *testing.T) {
	var out bytes.Buffer
	d := newTestData(t, securityCluster(nil), "cp2", &out, nil)
	if !d.Join.ControlPlane {
		t.Fatal("test data for cp2 is not a control-plane join")
	}
	err := runControlPlane(t, d)
	if err == nil || !strings.Contains(err.Error(), "must use the cluster's encryption key") {
		t.Fatalf("join without the shared key: %v, want a refusal", err)
	}
	if _, err := os.Stat(d.Path(path.Join(DefaultCertDir, manifests.EncryptionConfigFile))); err == nil {
		t.Error("the refused join wrote an encryption configuration")
	}
}

func TestControlPlaneSecuritySwitchesOff(t *testing.T) {
	off := false
	c := securityCluster(func(c *config.Cluster) {
		c.Security = config.Security{EncryptSecrets: &off, RestrictAnonymous: &off, PodSecurity: config.PodSecurityPrivileged, Audit: config.Audit{Enabled: &off}}
	})
	d := newTestData(t, c, "cp1", &bytes.Buffer{}, nil)
	d.Join.ControlPlane = false
	if err := runControlPlane(t, d); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		path.Join(DefaultCertDir, manifests.EncryptionConfigFile),
		path.Join(DefaultKubeconfigDir, manifests.APIServerConfigDir, manifests.AuditPolicyFile),
		path.Join(DefaultKubeconfigDir, manifests.APIServerConfigDir, manifests.AuthenticationConfigFile),
	} {
		if _, err := os.Stat(d.Path(p)); err == nil {
			t.Errorf("%s written with its switch off", p)
		}
	}
}

// The apiserver verifies kubelets with the cluster CA only when server_tls_bootstrap is on
// and the host records that every kubelet was seen serving a CA-signed certificate; with
// the option off, the record goes, so that turning it on again waits for the kubelets.
func TestControlPlaneKubeletCertificateAuthority(t *testing.T) {
	tests := []struct {
		name       string
		on, marker bool
		wantFlag   bool
		wantMarker bool
	}{
		{name: "off"},
		{name: "on, kubelets not verified", on: true},
		{name: "on and verified", on: true, marker: true, wantFlag: true, wantMarker: true},
		{name: "turned off after it was verified", marker: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			d := newTestData(t, securityCluster(func(c *config.Cluster) { c.Kubelet.ServerTLSBootstrap = tc.on }), "cp1", &out, nil)
			d.Join.ControlPlane = false
			marker := d.Path(fleet.KubeletServingMarker)
			if tc.marker {
				if err := os.MkdirAll(path.Dir(marker), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(marker, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := runControlPlane(t, d); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			m, err := os.ReadFile(d.Path(path.Join(DefaultManifestsDir, "kube-apiserver.yaml")))
			if err != nil {
				t.Fatal(err)
			}
			if got := bytes.Contains(m, []byte("--kubelet-certificate-authority=/etc/kubernetes/pki/ca.crt")); got != tc.wantFlag {
				t.Errorf("manifest has --kubelet-certificate-authority: %t, want %t", got, tc.wantFlag)
			}
			_, err = os.Stat(marker)
			if got := err == nil; got != tc.wantMarker {
				t.Errorf("%s exists after the run: %t, want %t\n%s", fleet.KubeletServingMarker, got, tc.wantMarker, out.String())
			}
		})
	}
}
