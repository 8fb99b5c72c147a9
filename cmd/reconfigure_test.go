package cmd

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kforge/kforge/bundle"
	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/fleet"
)

// TestReconfigurePlansAndAppliesAControlPlaneChange: on a host init set up, an added
// apiserver extra arg is planned (JSON, the apiserver manifest alone, restarting the
// apiserver), applied, and then planned as nothing; the etcd member's manifest stays.
func TestReconfigurePlansAndAppliesAControlPlaneChange(t *testing.T) {
	l := newLayout(t, "")
	l.runOffline(t)
	etcdBefore := mustRead(t, filepath.Join(l.manifests, "etcd.yaml"))

	changed := newLayout(t, "[apiserver]\nextra_args = { max-requests-inflight = \"500\" }\n")
	// The same host and directories, the edited file.
	cfg := strings.Replace(mustRead(t, changed.config), changed.etcd, l.etcd, 1)
	if err := os.WriteFile(l.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	plan := func() fleet.HostPlan {
		t.Helper()
		out := mustRun(t, append([]string{"reconfigure", "phase", "control-plane", "--dry-run", "-o", "json"}, l.flags()...)...)
		var p fleet.HostPlan
		if err := json.Unmarshal([]byte(out), &p); err != nil {
			t.Fatalf("the plan is not JSON: %v\n%s", err, out)
		}
		return p
	}
	p := plan()
	if p.Node != "cp1" || p.Role != "control-plane" || len(p.Changes) != 1 ||
		p.Changes[0].Path != filepath.Join(l.manifests, "kube-apiserver.yaml") || p.Changes[0].Action != "update" ||
		!strings.Contains(p.Changes[0].Diff, "+    - --max-requests-inflight=500") ||
		len(p.Restarts) != 1 || p.Restarts[0] != "kube-apiserver" {
		t.Fatalf("plan = %+v", p)
	}
	if strings.Contains(mustRead(t, filepath.Join(l.manifests, "kube-apiserver.yaml")), "max-requests-inflight") {
		t.Fatal("the dry run wrote the manifest")
	}

	mustRun(t, append([]string{"reconfigure", "phase", "etcd"}, l.flags()...)...)
	mustRun(t, append([]string{"reconfigure", "phase", "control-plane"}, l.flags()...)...)
	if !strings.Contains(mustRead(t, filepath.Join(l.manifests, "kube-apiserver.yaml")), "--max-requests-inflight=500") {
		t.Error("reconfigure did not write the new flag")
	}
	if got := mustRead(t, filepath.Join(l.manifests, "etcd.yaml")); got != etcdBefore {
		t.Errorf("the etcd manifest changed:\nbefore:\n%s\nafter:\n%s", etcdBefore, got)
	}
	if p := plan(); !p.Empty() {
		t.Errorf("after the change, the plan is %+v, want nothing", p)
	}
}

func TestReconfigureRefusals(t *testing.T) {
	l := newLayout(t, "")
	if _, err := run(t, append([]string{"reconfigure", "-o", "json"}, l.flags()...)...); err == nil || !strings.Contains(err.Error(), "add --dry-run") {
		t.Errorf("-o json without --dry-run: %v", err)
	}
	if _, err := run(t, "reconfigure", "--dry-run"); err == nil || !strings.Contains(err.Error(), "--config (-f) is required") {
		t.Errorf("no file: %v", err)
	}
	// A host that never joined: the Member check stops the run before it writes anything.
	_, err := run(t, append([]string{"reconfigure", "--dry-run"}, l.flags()...)...)
	if err == nil || !strings.Contains(err.Error(), "this host has not joined the cluster") {
		t.Errorf("a host that never joined: %v", err)
	}
}

// TestReconfigureSignsANewNameAgain: a name added to apiserver.cert_sans is planned as a
// new apiserver certificate, and reconfigure signs it again for the same key.
func TestReconfigureSignsANewNameAgain(t *testing.T) {
	l := newLayout(t, "")
	l.runOffline(t)
	key := mustRead(t, filepath.Join(l.pki, "apiserver.key"))
	changed := newLayout(t, "[apiserver]\ncert_sans = [\"api.example.test\"]\n")
	cfg := strings.Replace(mustRead(t, changed.config), changed.etcd, l.etcd, 1)
	if err := os.WriteFile(l.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, append([]string{"reconfigure", "phase", "certs", "--dry-run", "-o", "json"}, l.flags()...)...)
	var p fleet.HostPlan
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("the plan is not JSON: %v\n%s", err, out)
	}
	if len(p.Changes) != 1 || p.Changes[0].Path != filepath.Join(l.pki, "apiserver.crt") || len(p.Restarts) != 0 {
		t.Fatalf("plan = %+v, want the apiserver certificate alone, restarting nothing", p)
	}
	mustRun(t, append([]string{"reconfigure", "phase", "certs"}, l.flags()...)...)
	cert, err := certs.ParseCertPEM([]byte(mustRead(t, filepath.Join(l.pki, "apiserver.crt"))))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(cert.DNSNames, "api.example.test") {
		t.Errorf("the apiserver certificate's names after reconfigure: %v", cert.DNSNames)
	}
	if mustRead(t, filepath.Join(l.pki, "apiserver.key")) != key {
		t.Error("reconfigure replaced the apiserver key")
	}
}

func TestCheckOwnSHA256(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sum, _, err := bundle.HashFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkOwnSHA256(sum); err != nil {
		t.Errorf("this binary's own sum: %v", err)
	}
	if err := checkOwnSHA256(strings.Repeat("0", 64)); err == nil || !strings.Contains(err.Error(), "another build") {
		t.Errorf("another sum: %v, want an error saying it is another build", err)
	}
}
