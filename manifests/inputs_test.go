package manifests

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestInputsChangeExactlyTheirReaders changes one certificate or kubeconfig at a time and
// checks that the config hash of exactly the components that read it changes.
func TestInputsChangeExactlyTheirReaders(t *testing.T) {
	pki := "/etc/kubernetes/pki/"
	inputs := map[string]string{}
	for _, f := range []string{
		pki + "ca.crt", pki + "apiserver.crt", pki + "apiserver-kubelet-client.crt", pki + "front-proxy-ca.crt",
		pki + "front-proxy-client.crt", pki + "etcd/ca.crt", pki + "etcd/server.crt", pki + "etcd/peer.crt",
		pki + "etcd/healthcheck-client.crt", pki + "apiserver-etcd-client.crt", pki + "sa.pub",
		"/etc/kubernetes/admin.conf", "/etc/kubernetes/super-admin.conf",
		"/etc/kubernetes/controller-manager.conf", "/etc/kubernetes/scheduler.conf",
	} {
		inputs[f] = InputFingerprint([]byte("v1 " + f))
	}
	hashes := func(in map[string]string) map[string]string {
		t.Helper()
		p := defaultParams()
		p.Inputs = in
		out := map[string]string{}
		for _, c := range allComponents() {
			pod := mustBuild(t, c.Build, p)
			out[c.Name] = pod.Annotations[ConfigHashAnnotation]
			if out[c.Name] == "" {
				t.Fatalf("%s has no %s", c.Name, ConfigHashAnnotation)
			}
		}
		return out
	}
	base := hashes(inputs)
	for _, tc := range []struct {
		file string
		want []string // components whose hash changes
	}{
		{pki + "apiserver.crt", []string{NameAPIServer}},
		{pki + "apiserver-kubelet-client.crt", []string{NameAPIServer}},
		{pki + "front-proxy-client.crt", []string{NameAPIServer}},
		{pki + "apiserver-etcd-client.crt", []string{NameAPIServer}},
		{pki + "etcd/server.crt", []string{NameEtcd}},
		{pki + "etcd/peer.crt", []string{NameEtcd}},
		{pki + "etcd/ca.crt", []string{NameEtcd, NameAPIServer}},
		{pki + "front-proxy-ca.crt", []string{NameAPIServer, NameControllerManager}},
		{pki + "ca.crt", []string{NameAPIServer, NameControllerManager}},
		{pki + "etcd/healthcheck-client.crt", nil}, // read by no static pod's flags
		{"/etc/kubernetes/controller-manager.conf", []string{NameControllerManager}},
		{"/etc/kubernetes/scheduler.conf", []string{NameScheduler}},
		{"/etc/kubernetes/admin.conf", nil},
	} {
		t.Run(tc.file, func(t *testing.T) {
			changed := map[string]string{}
			for k, v := range inputs {
				changed[k] = v
			}
			changed[tc.file] = InputFingerprint([]byte("v2 " + tc.file))
			got := hashes(changed)
			var diff []string
			for _, c := range allComponents() {
				if got[c.Name] != base[c.Name] {
					diff = append(diff, c.Name)
				}
			}
			want := slices.Clone(tc.want)
			slices.Sort(want)
			slices.Sort(diff)
			if d := cmp.Diff(want, diff); d != "" {
				t.Errorf("components whose config hash changed (-want +got):\n%s", d)
			}
		})
	}
}

// TestNoInputsKeepsTheAPIServerHash: without inputs the apiserver's hash covers its
// configuration files alone, as before inputs were hashed.
func TestNoInputsKeepsTheAPIServerHash(t *testing.T) {
	p := defaultParams()
	files, err := APIServerFiles(p)
	if err != nil {
		t.Fatal(err)
	}
	pod := mustBuild(t, APIServer, p)
	if got, want := pod.Annotations[ConfigHashAnnotation], ConfigHash(files); got != want {
		t.Errorf("config hash = %q, want %q", got, want)
	}
}
