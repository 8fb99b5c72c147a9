package certs

import (
	"crypto"
	"crypto/x509"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kforge/kforge/config"
)

// testNow is the fixed clock of the tests, whole seconds as certificates store them.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testCluster is a defaulted cluster with a DNS control-plane endpoint and extra SANs.
func testCluster(t *testing.T, alg string) *config.Cluster {
	t.Helper()
	c := config.Default()
	c.ControlPlaneEndpoint = "lb.example.com:6443"
	c.APIServer.CertSANs = []string{"10.0.0.100", "extra.example.com"}
	c.Etcd.Local.ServerCertSANs = []string{"etcd.example.com"}
	c.Etcd.Local.PeerCertSANs = []string{"192.168.50.5"}
	c.Certificates.KeyAlgorithm = alg
	return c
}

func testParams(c *config.Cluster) Params {
	return Params{
		Cluster:          c,
		NodeName:         "cp-1",
		AdvertiseAddress: net.ParseIP("192.168.1.10"),
		Now:              func() time.Time { return testNow },
	}
}

// ensureAll runs Ensure for every spec of the table in order and returns the outcomes.
func ensureAll(t *testing.T, dir string, p Params) map[string]Outcome {
	t.Helper()
	got := map[string]Outcome{}
	for _, s := range Table(p.Cluster) {
		o, err := s.Ensure(dir, p)
		if err != nil {
			t.Fatalf("Ensure(%s): %v", s.Name, err)
		}
		got[s.Name] = o
	}
	return got
}

// newPKI creates the whole PKI of c under a new <tmp>/pki and returns that directory.
func newPKI(t *testing.T, c *config.Cluster) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	ensureAll(t, dir, testParams(c))
	if _, err := EnsureServiceAccountKeys(dir, c.Certificates.KeyAlgorithm); err != nil {
		t.Fatalf("EnsureServiceAccountKeys: %v", err)
	}
	return dir
}

type fileState struct {
	Data    string
	Mode    fs.FileMode
	ModTime time.Time
}

// snapshot records content, mode and mtime of every file and directory under dir.
func snapshot(t *testing.T, dir string) map[string]fileState {
	t.Helper()
	m := map[string]fileState{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		fst := fileState{Mode: st.Mode()}
		if !d.IsDir() {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			fst.Data = string(b)
			fst.ModTime = st.ModTime()
		}
		m[rel] = fst
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot of %s: %v", dir, err)
	}
	return m
}

// ageFiles sets every file's mtime an hour back, so that a rewrite would show.
func ageFiles(t *testing.T, dir string) {
	t.Helper()
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Chtimes(path, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// copyDir copies a PKI directory tree, keeping modes.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "pki")
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		st, err := d.Info()
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, st.Mode().Perm())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, st.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func mustReadCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	c, err := readCert(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustReadKey(t *testing.T, path string) crypto.Signer {
	t.Helper()
	k, err := readKey(path)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustLoadCA(t *testing.T, dir, base string) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	c, k, err := LoadCA(dir, base)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

func writeFile(t *testing.T, path string, data []byte, mode fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

func removeFiles(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}

// requireUnchanged fails when dir differs from the snapshot before.
func requireUnchanged(t *testing.T, dir string, before map[string]fileState) {
	t.Helper()
	if d := cmp.Diff(before, snapshot(t, dir)); d != "" {
		t.Errorf("files changed (-before +after):\n%s", d)
	}
}

func asMismatch(t *testing.T, err error) *MismatchError {
	t.Helper()
	var me *MismatchError
	if !errors.As(err, &me) {
		t.Fatalf("got error %v, want a *MismatchError", err)
	}
	return me
}
