package cmd

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/internal/testutil"
	"github.com/kforge/kforge/phases"
)

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
