package phases

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/kubelet"
)

// newKubeletCertData is d of a control plane after the certs and kubeconfig phases of init,
// with the client certificate and key embedded in its kubelet.conf, and the name of the
// timestamped file kforge keeps them in.
func newKubeletCertData(t *testing.T) (d *Data, pair []byte, name string) {
	t.Helper()
	d = newTestData(t, testCluster(t, nil), "cp1", io.Discard, nil)
	if err := (&Workflow{Name: "init", Phases: []Phase{certsPhase(), kubeconfigPhase()}}).Run(t.Context(), d, "", nil); err != nil {
		t.Fatal(err)
	}
	cert, key, err := embeddedClientCert(d)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := certs.ParseCertPEM(cert)
	if err != nil {
		t.Fatal(err)
	}
	return d, append(cert, key...), kubelet.ClientCertFileName(parsed.NotBefore)
}

// kubeletPKIFiles describes every entry of the kubelet's certificate directory: a file's
// mode, mtime and content's hash (keys stay out of test logs), or a link's target.
func kubeletPKIFiles(t *testing.T, d *Data) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(d.Path(kubelet.CertDir))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		p := filepath.Join(d.Path(kubelet.CertDir), e.Name())
		st, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			if err != nil {
				t.Fatal(err)
			}
			out[e.Name()] = "-> " + target
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = fmt.Sprintf("%v %s sha256:%x", st.Mode(), st.ModTime().Format(time.RFC3339Nano), sha256.Sum256(b))
	}
	return out
}

// checkRerunChangesNothing runs run on d again and checks that the kubelet's certificate
// directory is as it was.
func checkRerunChangesNothing(t *testing.T, d *Data, run func(d *Data) error) {
	t.Helper()
	before := kubeletPKIFiles(t, d)
	if err := run(d); err != nil {
		t.Fatalf("second run: %v", err)
	}
	if diff := cmp.Diff(before, kubeletPKIFiles(t, d)); diff != "" {
		t.Errorf("a second run changed the kubelet's certificates (-before +after):\n%s", diff)
	}
}

var timestamped = regexp.MustCompile(`^kubelet-client-\d{4}(-\d\d){5}\.pem$`)

// checkClientCertLayout checks that kubelet-client-current.pem links to a timestamped file
// beside it, the layout the kubelet's certificate store rotates, holding pair with mode
// 0600; and that the directory holds nothing else but others. It returns the file's name.
func checkClientCertLayout(t *testing.T, d *Data, pair []byte, others ...string) string {
	t.Helper()
	current := d.Path(kubelet.ClientCertPath)
	st, err := os.Lstat(current)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("%s is not a symlink (mode %v): the kubelet refuses to rotate it", kubelet.ClientCertPath, st.Mode())
	}
	target, err := os.Readlink(current)
	if err != nil {
		t.Fatal(err)
	}
	if !timestamped.MatchString(target) {
		t.Fatalf("%s links to %q, want kubelet-client-<YYYY-MM-DD-HH-MM-SS>.pem beside it", kubelet.ClientCertPath, target)
	}
	file := filepath.Join(d.Path(kubelet.CertDir), target)
	st, err = os.Lstat(file)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want a regular file with mode 0600", target, st.Mode())
	}
	got, err := os.ReadFile(current)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, pair) {
		t.Errorf("%s holds other bytes than the client certificate and key", kubelet.ClientCertPath)
	}
	cert, err := certs.ParseCertPEM(got)
	if err != nil {
		t.Fatal(err)
	}
	if want := "kubelet-client-" + cert.NotBefore.UTC().Format("2006-01-02-15-04-05") + ".pem"; target != want {
		t.Errorf("the timestamped file is %s, want %s (the certificate's NotBefore)", target, want)
	}
	want := map[string]bool{"kubelet-client-current.pem": true, target: true}
	for _, o := range others {
		want[o] = true
	}
	for name := range kubeletPKIFiles(t, d) {
		if !want[name] {
			t.Errorf("%s is left in %s", name, kubelet.CertDir)
		}
		delete(want, name)
	}
	for name := range want {
		t.Errorf("%s is missing from %s", name, kubelet.CertDir)
	}
	return target
}

// TestKubeletFinalizeLaysOutTheClientCert: init seeds the kubelet's client certificate as
// a timestamped file and the kubelet-client-current.pem link to it, as kubeadm does, and a
// second run changes nothing. A plain kubelet-client-current.pem (what kforge wrote before)
// makes the kubelet fail every rotation: "expected ... to be a symlink but it is a file".
func TestKubeletFinalizeLaysOutTheClientCert(t *testing.T) {
	d, pair, _ := newKubeletCertData(t)
	finalize := func(d *Data) error {
		return (&Workflow{Name: "init", Phases: []Phase{kubeletFinalizePhase()}}).Run(t.Context(), d, "", nil)
	}
	if err := finalize(d); err != nil {
		t.Fatal(err)
	}
	checkClientCertLayout(t, d, pair)
	checkRerunChangesNothing(t, d, finalize)
}

// TestKubeletClientCertConverges starts kubelet-start (init, join and reconfigure run it)
// or kubelet-finalize from what older kforge versions, the kubelet, or a killed run left,
// and checks the layout the kubelet rotates, the same bytes, nothing of anyone else's
// touched, and that a second run changes nothing.
func TestKubeletClientCertConverges(t *testing.T) {
	base, pair, name := newKubeletCertData(t)
	const rotated = "kubelet-client-2027-01-02-03-04-05.pem"
	write := func(t *testing.T, d *Data, file string, data []byte) {
		t.Helper()
		if err := os.MkdirAll(d.Path(kubelet.CertDir), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d.Path(kubelet.CertDir), file), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	link := func(t *testing.T, d *Data, file, target string) {
		t.Helper()
		if err := os.MkdirAll(d.Path(kubelet.CertDir), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(d.Path(kubelet.CertDir), file)); err != nil {
			t.Fatal(err)
		}
	}
	startKubeletPhase := func(d *Data) error { return startKubelet(t.Context(), d, nil) }
	finalizePhase := func(d *Data) error { return kubeletFinalizePhase().Run(t.Context(), d) }
	for _, tc := range []struct {
		name  string
		run   func(d *Data) error
		setup func(t *testing.T, d *Data)
		// layout: the layout is checked, with these other files kept; else the directory
		// must be exactly as setup left it.
		layout bool
		others []string
	}{
		{
			name: "a plain file from an older kforge", run: startKubeletPhase, layout: true, others: []string{"kubelet.crt", "kubelet.key"},
			setup: func(t *testing.T, d *Data) {
				write(t, d, "kubelet-client-current.pem", pair)
				write(t, d, "kubelet.crt", []byte("the kubelet's serving certificate"))
				write(t, d, "kubelet.key", []byte("its key"))
			},
		},
		{
			name: "a plain file, on a re-run of init", run: finalizePhase, layout: true,
			setup: func(t *testing.T, d *Data) { write(t, d, "kubelet-client-current.pem", pair) },
		},
		{
			name: "killed after the timestamped copy was written", run: startKubeletPhase, layout: true,
			setup: func(t *testing.T, d *Data) {
				write(t, d, "kubelet-client-current.pem", pair)
				write(t, d, name, pair)
			},
		},
		{
			name: "killed before the link was renamed into place", run: startKubeletPhase, layout: true,
			setup: func(t *testing.T, d *Data) {
				write(t, d, "kubelet-client-current.pem", pair)
				write(t, d, name, pair)
				link(t, d, ".kubelet-client-current.pem.tmp-link", name)
			},
		},
		{
			name: "a link to nothing, on a re-run of init", run: finalizePhase, layout: true,
			setup: func(t *testing.T, d *Data) {
				link(t, d, "kubelet-client-current.pem", "kubelet-client-2020-01-01-00-00-00.pem")
			},
		},
		{
			name: "the kubelet rotated: left alone", run: startKubeletPhase,
			setup: func(t *testing.T, d *Data) {
				write(t, d, name, pair)
				write(t, d, rotated, []byte("the kubelet's newer pair"))
				link(t, d, "kubelet-client-current.pem", filepath.Join(kubelet.CertDir, rotated))
			},
		},
		{
			name: "the kubelet rotated, on a re-run of init: left alone", run: finalizePhase,
			setup: func(t *testing.T, d *Data) {
				write(t, d, rotated, []byte("the kubelet's newer pair"))
				link(t, d, "kubelet-client-current.pem", filepath.Join(kubelet.CertDir, rotated))
			},
		},
		{
			name: "nothing yet on a join: left to the TLS bootstrap", run: startKubeletPhase,
			setup: func(*testing.T, *Data) {},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newTestData(t, base.Cluster, "cp1", io.Discard, nil)
			if err := os.CopyFS(d.Path("/"), os.DirFS(base.Path("/"))); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, d)
			before := kubeletPKIFiles(t, d)
			if err := tc.run(d); err != nil {
				t.Fatal(err)
			}
			if tc.layout {
				checkClientCertLayout(t, d, pair, tc.others...)
				for _, o := range tc.others {
					if got, want := kubeletPKIFiles(t, d)[o], before[o]; got != want {
						t.Errorf("%s changed: %q, was %q", o, got, want)
					}
				}
			} else if diff := cmp.Diff(before, kubeletPKIFiles(t, d)); diff != "" {
				t.Errorf("the kubelet's certificates changed (-before +after):\n%s", diff)
			}
			checkRerunChangesNothing(t, d, tc.run)
		})
	}
}

// TestKubeletClientCertDryRun: a dry run reads the kubelet's certificate links through the
// overlay: it plans nothing over the layout kforge made, and over an older kforge's plain
// file it plans the timestamped file and the link, and changes nothing on the host.
func TestKubeletClientCertDryRun(t *testing.T) {
	host, pair, name := newKubeletCertData(t)
	plan := func() []string {
		t.Helper()
		run := func(d *Data) error { return layOutKubeletClientCert(d, nil) }
		var out []string
		for _, ch := range planOver(t, host, host.Cluster, host.Node, run) {
			out = append(out, ch.Action+" "+ch.NewMode+" "+ch.Path)
		}
		return out
	}
	if err := kubeletFinalizePhase().Run(t.Context(), host); err != nil {
		t.Fatal(err)
	}
	if got := plan(); len(got) != 0 {
		t.Errorf("a dry run over kforge's layout plans %q, want nothing", got)
	}

	// An older kforge's plain file.
	if err := os.Remove(host.Path(kubelet.ClientCertPath)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(host.Path(kubelet.CertDir), name)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(host.Path(kubelet.ClientCertPath), pair, 0o600); err != nil {
		t.Fatal(err)
	}
	before := kubeletPKIFiles(t, host)
	want := []string{
		"create 0600 " + filepath.Join(kubelet.CertDir, name),
		"update symlink " + kubelet.ClientCertPath,
	}
	if diff := cmp.Diff(want, plan()); diff != "" {
		t.Errorf("the plan over a plain file (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(before, kubeletPKIFiles(t, host)); diff != "" {
		t.Errorf("a dry run changed the host (-before +after):\n%s", diff)
	}
}
