package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"

	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/fleet"
	"github.com/kforge/kforge/host"
	"github.com/kforge/kforge/internal/apiclient"
	"github.com/kforge/kforge/internal/testutil"
	"github.com/kforge/kforge/kubeconfig"
	"github.com/kforge/kforge/phases"
	"github.com/kforge/kforge/servingcsr"
)

// TestWriteAdminKubeconfig: up writes the admin kubeconfig over one of the same cluster,
// but never over another cluster's (another CA) unless told to, and then keeps the old one.
func TestWriteAdminKubeconfig(t *testing.T) {
	build := func(ca []byte, server string) []byte {
		t.Helper()
		b, err := kubeconfig.Build("kubernetes", server, ca, "kubernetes-admin", []byte("cert"), []byte("key"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ca, otherCA := testutil.CAPEM(t), testutil.CAPEM(t)
	admin := build(ca, "https://192.0.2.10:6443")
	tests := []struct {
		name     string
		existing []byte // nil: no file
		replace  bool
		wantErr  string
		wantOld  bool
		wantSaid string
	}{
		{name: "no file yet"},
		{name: "the same cluster, another endpoint", existing: build(ca, "https://192.0.2.99:6443")},
		{name: "another cluster", existing: build(otherCA, "https://192.0.2.10:6443"), wantErr: "another cluster"},
		{name: "not a kubeconfig", existing: []byte("notes\n"), wantErr: "no kubeconfig of this cluster"},
		{name: "another cluster, --init-new-cluster", existing: build(otherCA, "https://192.0.2.10:6443"), replace: true,
			wantOld: true, wantSaid: "WARNING"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kforge-admin.conf")
			if tc.existing != nil {
				if err := os.WriteFile(path, tc.existing, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			err := writeAdminKubeconfig(path, admin, tc.replace, phases.NewPrinter(&out))
			got, _ := os.ReadFile(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "--init-new-cluster") {
					t.Fatalf("error = %v, want one saying %q and naming --init-new-cluster", err, tc.wantErr)
				}
				if !bytes.Equal(got, tc.existing) {
					t.Error("the existing file was changed")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, admin) {
				t.Error("the admin kubeconfig was not written")
			}
			old, oldErr := os.ReadFile(path + ".old")
			if tc.wantOld != (oldErr == nil) || (tc.wantOld && !bytes.Equal(old, tc.existing)) {
				t.Errorf("%s.old: %q, %v; want the replaced file kept: %v", path, old, oldErr, tc.wantOld)
			}
			if !strings.Contains(out.String(), tc.wantSaid) {
				t.Errorf("output %q does not say %q", out.String(), tc.wantSaid)
			}
		})
	}
	// A second replacement keeps the first copy: the new one goes to .old-1.
	t.Run("another cluster again, --init-new-cluster", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "kforge-admin.conf")
		first, second := build(otherCA, "https://192.0.2.10:6443"), build(testutil.CAPEM(t), "https://192.0.2.10:6443")
		for p, data := range map[string][]byte{path + ".old": first, path: second} {
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := writeAdminKubeconfig(path, admin, true, phases.NewPrinter(io.Discard)); err != nil {
			t.Fatal(err)
		}
		for p, want := range map[string][]byte{path + ".old": first, path + ".old-1": second, path: admin} {
			if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s after a second replacement: %v, or not the file it should hold", p, err)
			}
		}
	})
}

// TestConnectDryRunRecordsNoHostKey connects as `kforge up --accept-new-host-keys` does, with
// and without --dry-run: the dry run prints the fingerprint it would trust and writes no
// known_hosts; the real run records the key.
func TestConnectDryRunRecordsNoHostKey(t *testing.T) {
	key := testutil.NewSSHKey(t, "")
	srv := testutil.NewSSHServer(t, testutil.SSHServerOptions{AuthorizedKeys: []ssh.PublicKey{key.Public}})
	fp := ssh.FingerprintSHA256(srv.HostKey)
	for _, tc := range []struct {
		name    string
		dryRun  bool
		wantOut string
	}{
		{name: "dry run", dryRun: true, wantOut: "would trust the new host key"},
		{name: "real run", wantOut: "trusting the new host key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			knownHosts := filepath.Join(t.TempDir(), "ssh", "known_hosts")
			s := &sshOptions{identity: []string{key.Path}, knownHosts: knownHosts, acceptNewHostKeys: true}
			var out bytes.Buffer
			h := &config.Host{Name: "h1", Address: srv.Host, SSH: config.SSH{User: "root", Port: srv.Port}}
			conn, err := s.connect(phases.NewPrinter(&out), tc.dryRun)(t.Context(), h)
			if err != nil {
				t.Fatalf("connecting: %v", err)
			}
			conn.Close()
			if !strings.Contains(out.String(), tc.wantOut) || !strings.Contains(out.String(), fp) {
				t.Errorf("output %q lacks %q and the fingerprint %s", out.String(), tc.wantOut, fp)
			}
			_, err = os.Stat(knownHosts)
			switch {
			case tc.dryRun && !errors.Is(err, fs.ErrNotExist):
				t.Errorf("the dry run wrote %s (stat: %v)", knownHosts, err)
			case !tc.dryRun && err != nil:
				t.Errorf("the real run did not record the key: %v", err)
			}
		})
	}
}

// TestUpDialsTheBastionOnce: the hosts of a file behind one bastion, connected at once as
// up connects them, reach the bastion over a single connection.
func TestUpDialsTheBastionOnce(t *testing.T) {
	key := testutil.NewSSHKey(t, "")
	jump := testutil.NewSSHServer(t, testutil.SSHServerOptions{AuthorizedKeys: []ssh.PublicKey{key.Public}})
	target := testutil.NewSSHServer(t, testutil.SSHServerOptions{AuthorizedKeys: []ssh.PublicKey{key.Public}})
	knownHosts := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(knownHosts, []byte(jump.KnownHostsLine()+"\n"+target.KnownHostsLine()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &sshOptions{identity: []string{key.Path}, knownHosts: knownHosts}
	connect := s.connect(phases.NewPrinter(io.Discard), false)
	var hosts []*config.Host
	for i := range 20 {
		hosts = append(hosts, &config.Host{Name: fmt.Sprintf("h%d", i), Address: target.Host,
			SSH: config.SSH{Port: target.Port, User: "kforge", Bastion: fmt.Sprintf("jumper@%s", jump.Addr)}})
	}
	err := host.Each(t.Context(), hosts, 20, func(h *config.Host) string { return h.Name }, func(ctx context.Context, h *config.Host) error {
		conn, err := connect(ctx, h)
		if err != nil {
			return err
		}
		t.Cleanup(func() { conn.Close() })
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := jump.ConnCount(); got != 1 {
		t.Errorf("20 hosts behind one bastion opened %d connections to it, want 1", got)
	}
}

// TestFleetReportJSON: the cluster-level changes reach -o json under the names pipelines
// read.
func TestFleetReportJSON(t *testing.T) {
	rep := &fleet.Report{Cluster: "c", DryRun: true, Changes: fleet.ClusterChanges{
		Objects: []fleet.ObjectChange{{Addon: "coredns", Object: "Deployment kube-system/coredns", Change: fleet.ChangeUpdate,
			Fields: []apiclient.FieldChange{{Path: "spec.replicas", Old: int64(2), New: int64(3)}}}},
		Nodes: []fleet.NodeMarksChange{{Node: "w1", Added: []string{"label zone=a"}, Removed: []string{"taint gone:NoSchedule"}}},
	}}
	var out bytes.Buffer
	if err := printFleetReport(&out, rep, "json"); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	want := map[string]any{
		"objects": []any{map[string]any{"addon": "coredns", "object": "Deployment kube-system/coredns", "change": "update",
			"fields": []any{map[string]any{"path": "spec.replicas", "old": float64(2), "new": float64(3)}}}},
		"nodes": []any{map[string]any{"node": "w1", "added": []any{"label zone=a"}, "removed": []any{"taint gone:NoSchedule"}}},
	}
	if diff := cmp.Diff(want, got["cluster_changes"]); diff != "" {
		t.Errorf("cluster_changes (-want +got):\n%s", diff)
	}
	if got["dry_run"] != true {
		t.Errorf("dry_run = %v, want true", got["dry_run"])
	}
}

func TestServingSummary(t *testing.T) {
	csrs := []fleet.ServingCSR{{Name: "a", Verdict: servingcsr.Approve}, {Name: "b", Verdict: servingcsr.Pending}, {Name: "c", Verdict: servingcsr.Approve}}
	tests := []struct {
		name   string
		rep    fleet.ServingCertsReport
		dryRun bool
		want   string
	}{
		{name: "verified", rep: fleet.ServingCertsReport{CSRs: csrs, VerifyKubelets: true},
			want: "kubelet serving certificates: approved 2, left 1 pending; the apiserver verifies kubelets with the cluster CA"},
		{name: "dry run", rep: fleet.ServingCertsReport{CSRs: csrs, VerifyKubelets: true}, dryRun: true,
			want: "kubelet serving certificates: would approve 2, left 1 pending; the apiserver would verify kubelets with the cluster CA"},
		{name: "not verified", rep: fleet.ServingCertsReport{Note: "1 of 3 kubelets ..."},
			want: "kubelet serving certificates: approved 0, left 0 pending; the apiserver does not verify kubelets yet: 1 of 3 kubelets ..."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, servingSummary(&tc.rep, tc.dryRun)); diff != "" {
				t.Errorf("servingSummary (-want +got):\n%s", diff)
			}
		})
	}
}
