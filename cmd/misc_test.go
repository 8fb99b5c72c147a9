package cmd

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/internal/testutil"
	"github.com/kforge/kforge/phases"
	"github.com/spf13/cobra"
)

func TestVersion(t *testing.T) {
	out := mustRun(t, "version")
	if !strings.HasPrefix(out, "kforge ") || !strings.Contains(out, "default Kubernetes v1.") {
		t.Errorf("version output = %q", out)
	}
	var v versionInfo
	if err := json.Unmarshal([]byte(mustRun(t, "version", "-o", "json")), &v); err != nil {
		t.Fatalf("version -o json: %v", err)
	}
	if v.Version == "" || v.GoVersion == "" {
		t.Errorf("version -o json = %+v", v)
	}
	if _, err := run(t, "version", "-o", "yaml"); err == nil {
		t.Error("version -o yaml: want an error")
	}
}

func TestConfigPrintDefaultsValidates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.toml")
	if err := os.WriteFile(path, []byte(mustRun(t, "config", "print-defaults")), 0o644); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, "config", "validate", "-f", path)
	if !strings.Contains(out, "is valid") {
		t.Errorf("validate output = %q", out)
	}
}

func TestConfigValidateReportsEveryProblemWithLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.toml")
	bad := "version = \"kforge/v1alpha1\"\n[networking]\npod_cidr = \"10.0.0.0/33\"\nservice_cidr = \"nope\"\n"
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := run(t, "config", "validate", "-f", path)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{":3:", "networking.pod_cidr", ":4:", "networking.service_cidr"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestCompletion(t *testing.T) {
	out := mustRun(t, "completion", "bash")
	if !strings.Contains(out, "kforge") {
		t.Error("bash completion script does not mention kforge")
	}
}

// TestCheckExpirationMissingDir is issue 10, item 22: a mistyped --cert-dir listed every
// certificate as missing and exited 0.
func TestCheckExpirationMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nonexistent")
	_, err := run(t, "certs", "check-expiration", "--cert-dir", dir)
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("certs check-expiration --cert-dir %s: err = %v, want one naming the directory", dir, err)
	}
	file := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "certs", "check-expiration", "--cert-dir", file); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("certs check-expiration --cert-dir %s: err = %v, want one saying it is not a directory", file, err)
	}
	// An empty directory is a host without certificates: every row says (missing).
	if out := mustRun(t, "certs", "check-expiration", "--cert-dir", t.TempDir()); !strings.Contains(out, "(missing)") {
		t.Errorf("check-expiration of an empty directory:\n%s", out)
	}
}

// TestCheckExpirationTable: kubeadm's two tables, the kubeconfigs among the
// certificates, the CAs after them.
func TestCheckExpirationTable(t *testing.T) {
	out := mustRun(t, "certs", "check-expiration", "--cert-dir", t.TempDir(), "--kubeconfig-dir", t.TempDir())
	for _, want := range []string{"CERTIFICATE AUTHORITY  EXTERNALLY MANAGED", "\nadmin.conf ", "\nscheduler.conf ", "\nCERTIFICATE AUTHORITY  EXPIRES", "\nfront-proxy-ca "} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// TestCertsRenewNames: CA names, unknown names and no name are refused before anything
// is read.
func TestCertsRenewNames(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"certs", "renew"}, "name what to renew"},
		{[]string{"certs", "renew", "ca"}, "ca is a CA"},
		{[]string{"certs", "renew", "apiserver", "etcd-ca"}, "etcd-ca is a CA"},
		{[]string{"certs", "renew", "kubelet.conf"}, "unknown certificate kubelet.conf"},
		{[]string{"certs", "renew", "all"}, "--config (-f) is required"},
	} {
		if _, err := run(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want one saying %q", tc.args, err, tc.want)
		}
	}
}

// TestCheckExpirationJSON: `certs check-expiration -o json` gives every certificate of the
// table with its expiry, as certs.ExpiryReport, which kforge status reads from each
// control-plane host.
func TestCheckExpirationJSON(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.NewCA(t, "kubernetes", 48*time.Hour)
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	var rep certs.ExpiryReport
	out := mustRun(t, "certs", "check-expiration", "--cert-dir", dir, "--kubeconfig-dir", t.TempDir(), "-o", "json")
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("check-expiration -o json: %v", err)
	}
	if len(rep.Certificates) != 14 || rep.Certificates[10].Name != "admin.conf" || rep.Certificates[10].Signer != certs.NameCA {
		t.Fatalf("check-expiration -o json: %+v, want the 10 certificates of the table, then admin.conf and the other kubeconfigs", rep)
	}
	for _, r := range rep.Certificates {
		switch {
		case r.Name == certs.NameCA:
			if r.Missing || !r.NotAfter.Equal(ca.Cert.NotAfter) || !r.External || r.ResidualSeconds <= 47*3600 || r.ResidualSeconds > 48*3600 {
				t.Errorf("ca: %+v, want present, expiring %s in 48h, external (no key)", r, ca.Cert.NotAfter)
			}
		case !r.Missing || !r.NotAfter.IsZero():
			t.Errorf("%s: %+v, want missing", r.Name, r)
		}
	}
	if _, err := run(t, "certs", "check-expiration", "--cert-dir", dir, "-o", "yaml"); err == nil {
		t.Error("check-expiration -o yaml: want an error")
	}
}

// TestRenewLoopAndStatusKnowTheDirectories: renew-loop and certs status build the host's
// Data from the directory flags; without their defaults every check would fail.
func TestRenewLoopAndStatusKnowTheDirectories(t *testing.T) {
	for _, c := range []*cobra.Command{newRenewLoopCommand(&rootOptions{}), newCertsStatusCommand(&rootOptions{})} {
		if err := c.ParseFlags(nil); err != nil {
			t.Fatal(err)
		}
		for flag, want := range map[string]string{"cert-dir": phases.DefaultCertDir, "kubeconfig-dir": phases.DefaultKubeconfigDir, "manifests-dir": phases.DefaultManifestsDir} {
			f := c.Flags().Lookup(flag)
			if f == nil || f.Value.String() != want {
				t.Errorf("%s --%s: %v, want default %s", c.Name(), flag, f, want)
			}
		}
	}
}
