package phases

import (
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/manifests"
)

// initHost sets up cp1 as init would (certificates, kubeconfigs, static pods) under a temp
// root and returns its Data, ready for a certs-renew run.
func initHost(t *testing.T) *Data {
	t.Helper()
	d := newTestData(t, testCluster(t, nil), "cp1", io.Discard, nil)
	d.Join.ControlPlane = false // init, not a join
	wf := &Workflow{Name: "init", Phases: []Phase{certsPhase(), kubeconfigPhase(), etcdPhase(), controlPlanePhase()}}
	if err := wf.Run(t.Context(), d, "", nil); err != nil {
		t.Fatal(err)
	}
	d.Join.ControlPlane = true // the host is now a control plane of the cluster
	d.Rewritten = nil
	return d
}

func renew(t *testing.T, d *Data, names ...string) error {
	t.Helper()
	if err := CheckRenewNames(names); err != nil {
		t.Fatal(err)
	}
	d.Rewritten, d.Renew = nil, RenewData{Only: names}
	return CertsRenewWorkflow().Run(t.Context(), d, "", nil)
}

// TestCertsRenewRestartsExactlyTheReaders renews one certificate or kubeconfig at a time
// and checks that exactly the static pods that read it get a new manifest.
func TestCertsRenewRestartsExactlyTheReaders(t *testing.T) {
	d := initHost(t)
	all := []string{manifests.NameEtcd, manifests.NameAPIServer, manifests.NameControllerManager, manifests.NameScheduler}
	for _, tc := range []struct {
		names []string
		want  []string
	}{
		{[]string{"apiserver"}, []string{manifests.NameAPIServer}},
		{[]string{"etcd-server"}, []string{manifests.NameEtcd}},
		{[]string{"etcd-peer", "front-proxy-client"}, []string{manifests.NameEtcd, manifests.NameAPIServer}},
		{[]string{"etcd-healthcheck-client"}, nil},
		{[]string{"controller-manager.conf"}, []string{manifests.NameControllerManager}},
		{[]string{"scheduler.conf"}, []string{manifests.NameScheduler}},
		{[]string{"admin.conf", "super-admin.conf"}, nil},
		{[]string{"all"}, all},
		{[]string{"all"}, all}, // renewal always renews
	} {
		if err := renew(t, d, tc.names...); err != nil {
			t.Fatalf("renew %v: %v", tc.names, err)
		}
		got := slices.Sorted(maps.Keys(d.Rewritten))
		want := slices.Clone(tc.want)
		slices.Sort(want)
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("renew %v: rewritten manifests (-want +got):\n%s", tc.names, d)
		}
	}
	// Nothing renewed: rendering the manifests again changes none.
	d.Rewritten = nil
	if err := (&Workflow{Name: "x", Phases: []Phase{reconfigureEtcdPhase(), controlPlanePhase()}}).Run(t.Context(), d, "", nil); err != nil {
		t.Fatal(err)
	}
	if len(d.Rewritten) != 0 {
		t.Errorf("manifests rewritten with nothing renewed: %v", d.Rewritten)
	}
}

// TestCertsRenewKeepsKeysAndCAs: every leaf and kubeconfig is renewed, for the key it had;
// no key, CA or other file of the PKI changes, and each kubeconfig keeps its server, CA
// and user.
func TestCertsRenewKeepsKeysAndCAs(t *testing.T) {
	d := initHost(t)
	pki := d.Path(d.CertDir)
	read := func(p string) string {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	before := map[string]string{}
	for _, f := range certs.Files(pki) {
		before[f] = read(f)
	}
	confBefore := map[string]string{}
	for _, f := range RenewKubeconfigs {
		confBefore[f] = read(d.Path(filepath.Join(d.KubeconfigDir, f)))
	}
	if err := renew(t, d, "all"); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range d.Renew.Renewed {
		names = append(names, r.Name)
	}
	var want []string
	for _, tg := range RenewTargets() {
		if tg.Name != KubeletClientTarget { // renewed only once expired
			want = append(want, tg.Name)
		}
	}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("renewed (-want +got):\n%s", diff)
	}
	for _, s := range certs.Table(d.Cluster) {
		changed := read(s.CertPath(pki)) != before[s.CertPath(pki)]
		if changed == s.IsCA {
			t.Errorf("%s: certificate changed = %v", s.Name, changed)
		}
		if read(s.KeyPath(pki)) != before[s.KeyPath(pki)] {
			t.Errorf("%s: key changed", s.Name)
		}
	}
	for _, f := range RenewKubeconfigs {
		old, err := clientcmd.Load([]byte(confBefore[f]))
		if err != nil {
			t.Fatal(err)
		}
		now, err := clientcmd.Load([]byte(read(d.Path(filepath.Join(d.KubeconfigDir, f)))))
		if err != nil {
			t.Fatal(err)
		}
		user := now.Contexts[now.CurrentContext].AuthInfo
		oldCert, _ := certs.ParseCertPEM(old.AuthInfos[user].ClientCertificateData)
		newCert, err := certs.ParseCertPEM(now.AuthInfos[user].ClientCertificateData)
		if err != nil {
			t.Fatal(err)
		}
		if newCert.SerialNumber.Cmp(oldCert.SerialNumber) == 0 || !newCert.NotAfter.After(oldCert.NotAfter.Add(-1)) {
			t.Errorf("%s: client certificate not renewed", f)
		}
		if diff := cmp.Diff(oldCert.Subject.String(), newCert.Subject.String()); diff != "" {
			t.Errorf("%s: subject changed:\n%s", f, diff)
		}
		old.AuthInfos[user].ClientCertificateData = now.AuthInfos[user].ClientCertificateData
		if diff := cmp.Diff(old, now); diff != "" {
			t.Errorf("%s: more than the client certificate changed (-old +new):\n%s", f, diff)
		}
	}
}

// TestCertsRenewDryRunWritesNothing: a dry run over a host writes nothing there, and its
// report lists every certificate and kubeconfig and every static pod it would restart.
func TestCertsRenewDryRunWritesNothing(t *testing.T) {
	host := initHost(t)
	before := snapshotTree(t, host.Root)
	s := DataSpec{Cluster: host.Cluster, Node: host.Node, AdvertiseAddress: host.AdvertiseAddress, CertDir: host.CertDir,
		KubeconfigDir: host.KubeconfigDir, ManifestsDir: host.ManifestsDir, PreflightSystem: host.PreflightSystem,
		Out: NewPrinter(io.Discard), Log: host.Log, JoinControlPlane: true}
	deps := DryRunDeps(s, t.TempDir())
	deps.DryRunHost = host.Root
	d := NewData(s, deps)
	if err := CertsRenewWorkflow().Run(t.Context(), d, "", nil); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, snapshotTree(t, host.Root)); diff != "" {
		t.Errorf("the dry run changed the host (-before +after):\n%s", diff)
	}
	r, err := d.RenewReport()
	if err != nil {
		t.Fatal(err)
	}
	// The kubelet's client certificate is renewed only once expired; here it is not.
	if len(r.Renewed) != len(RenewTargets())-1 || !r.DryRun {
		t.Errorf("report lists %d renewed (dry run %v), want %d", len(r.Renewed), r.DryRun, len(RenewTargets())-1)
	}
	want := []string{manifests.NameEtcd, manifests.NameAPIServer, manifests.NameControllerManager, manifests.NameScheduler}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(r.Restarts))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("planned restarts (-want +got):\n%s", diff)
	}
}

// TestCertsRenewKilledConverges: a run killed after renewing the certificates, before the
// manifests, leaves running pods on the old certificates; running again restarts every
// reader, and once done a further render changes nothing.
func TestCertsRenewKilledConverges(t *testing.T) {
	d := initHost(t)
	d.Rewritten = nil
	if err := CertsRenewWorkflow().Run(t.Context(), d, "certs", nil); err != nil {
		t.Fatal(err)
	}
	if err := CertsRenewWorkflow().Run(t.Context(), d, "kubeconfig", nil); err != nil {
		t.Fatal(err)
	}
	if len(d.Rewritten) != 0 {
		t.Fatalf("manifests written before the kill: %v", d.Rewritten)
	}
	// The re-run renews again and rewrites every manifest.
	if err := renew(t, d, "all"); err != nil {
		t.Fatal(err)
	}
	if len(d.Rewritten) != 4 {
		t.Errorf("re-run rewrote %v, want the four static pods", slices.Sorted(maps.Keys(d.Rewritten)))
	}
	// Or, without a re-run of renew, reconfigure's render of the manifests picks the
	// renewed files up.
	if err := CertsRenewWorkflow().Run(t.Context(), d, "certs", nil); err != nil {
		t.Fatal(err)
	}
	d.Rewritten = nil
	if err := (&Workflow{Name: "x", Phases: []Phase{reconfigureEtcdPhase(), controlPlanePhase()}}).Run(t.Context(), d, "", nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.Rewritten[manifests.NameAPIServer]; !ok {
		t.Errorf("rendering the manifests after a killed renewal did not rewrite the apiserver's: %v", d.Rewritten)
	}
}

// TestCertsRenewExternalCA: without ca.key, the certificates and kubeconfigs the cluster
// CA signs are left, listed, and fail the run at its end; the others are renewed.
func TestCertsRenewExternalCA(t *testing.T) {
	d := initHost(t)
	if err := os.Remove(d.Path(filepath.Join(d.CertDir, "ca.key"))); err != nil {
		t.Fatal(err)
	}
	err := renew(t, d, "all")
	var ext *ExternalRenewalError
	if !errors.As(err, &ext) {
		t.Fatalf("renew all with an external CA = %v, want an *ExternalRenewalError", err)
	}
	var left, renewed []string
	for _, f := range ext.Files {
		left = append(left, f.Name)
		if f.NotAfter.IsZero() {
			t.Errorf("%s: no expiry reported", f.Name)
		}
	}
	for _, f := range d.Renew.Renewed {
		renewed = append(renewed, f.Name)
	}
	wantLeft := []string{"apiserver", "apiserver-kubelet-client", "admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf"}
	wantRenewed := []string{"front-proxy-client", "etcd-server", "etcd-peer", "etcd-healthcheck-client", "apiserver-etcd-client"}
	if diff := cmp.Diff(wantLeft, left); diff != "" {
		t.Errorf("left to the operator (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantRenewed, renewed); diff != "" {
		t.Errorf("renewed (-want +got):\n%s", diff)
	}
}

func TestCheckRenewNames(t *testing.T) {
	if err := CheckRenewNames([]string{"apiserver", "ca"}); !errors.Is(err, certs.ErrCANotRenewed) {
		t.Errorf("CheckRenewNames(ca) = %v, want ErrCANotRenewed", err)
	}
	if err := CheckRenewNames([]string{"apiserver", "kubelet.conf"}); !errors.Is(err, ErrUnknownCertificate) {
		t.Errorf("CheckRenewNames(kubelet.conf) = %v, want ErrUnknownCertificate", err)
	}
	if err := CheckRenewNames([]string{"all", "apiserver", "admin.conf"}); err != nil {
		t.Errorf("CheckRenewNames(all, apiserver, admin.conf) = %v", err)
	}
}

// snapshotTree maps every file under root to its content.
func snapshotTree(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		m[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
