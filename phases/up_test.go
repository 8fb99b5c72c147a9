package phases

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kforge/kforge/bundle"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/host"
)

func upCluster(t *testing.T) *config.Cluster {
	t.Helper()
	c := &config.Cluster{Hosts: []config.Host{
		{Name: "cp1", Address: "192.0.2.10", Roles: []string{config.RoleControlPlane}},
		{Name: "cp2", Address: "192.0.2.11", Roles: []string{config.RoleControlPlane}},
		{Name: "w1", Address: "192.0.2.20", Roles: []string{config.RoleWorker}},
		{Name: "w2", Address: "192.0.2.21", Roles: []string{config.RoleWorker}},
	}}
	config.SetDefaults(c)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestUpReportsEveryUnreachableHost: one run names every host it cannot reach, each with
// its own reason, and fails without touching anything.
func TestUpReportsEveryUnreachableHost(t *testing.T) {
	var out bytes.Buffer
	kforge := filepath.Join(t.TempDir(), "kforge")
	writeFile(t, kforge, []byte("#!/bin/sh\n"))
	rep, err := Up(t.Context(), UpOptions{
		Cluster: upCluster(t),
		Kforge:  kforge,
		Connect: func(_ context.Context, h *config.Host) (host.Host, error) {
			return nil, errors.New("dial tcp " + h.Address + ":22: connection refused")
		},
		Out: NewPrinter(&out),
		Log: slog.New(slog.DiscardHandler),
	})
	if err == nil {
		t.Fatal("Up succeeded with every host unreachable")
	}
	if len(rep.Hosts) != 4 {
		t.Fatalf("report has %d hosts, want 4: %+v", len(rep.Hosts), rep.Hosts)
	}
	for _, h := range rep.Hosts {
		if h.Result != ResultFailed || !strings.Contains(h.Error, "unreachable") || !strings.Contains(h.Error, ":22: connection refused") {
			t.Errorf("%s: %+v, want failed as unreachable with its own reason", h.Host, h)
		}
	}
	if f := rep.Failed(); f == nil || strings.Count(f.Error(), "unreachable") != 4 {
		t.Errorf("Failed() = %v, want all four hosts", f)
	}
}

func TestUpPlan(t *testing.T) {
	ready := func(name string, labels map[string]string) *corev1.Node {
		n := readyNode(name, true)
		n.Labels = labels
		return &n
	}
	var out bytes.Buffer
	u := &up{o: UpOptions{Out: NewPrinter(&out)}, c: upCluster(t), reports: map[string]*HostReport{}}
	for _, h := range u.c.Hosts {
		u.reports[h.Name] = &HostReport{Host: h.Name}
	}
	// A fresh cluster: init on the first control plane, joins for the rest.
	if got := u.plan(); got != "cp1" {
		t.Errorf("init host = %q, want cp1", got)
	}
	want := map[string]string{"cp1": ActionInit, "cp2": ActionJoinControlPlane, "w1": ActionJoinWorker, "w2": ActionJoinWorker}
	for n, a := range want {
		if u.reports[n].Action != a {
			t.Errorf("%s: action %q, want %q", n, u.reports[n].Action, a)
		}
	}
	// An existing cluster with cp1 and w1, and a worker w9 no longer in the file.
	u = &up{o: UpOptions{Out: NewPrinter(&out)}, c: upCluster(t), reports: map[string]*HostReport{}}
	for _, h := range u.c.Hosts {
		u.reports[h.Name] = &HostReport{Host: h.Name}
	}
	u.nodes = map[string]*corev1.Node{"cp1": ready("cp1", map[string]string{"node-role.kubernetes.io/control-plane": ""}), "w1": ready("w1", nil), "w9": ready("w9", nil)}
	u.cs = fake.NewClientset()
	if got := u.plan(); got != "" {
		t.Errorf("init host = %q for an existing cluster, want none", got)
	}
	want = map[string]string{"cp1": ActionUnchanged, "cp2": ActionJoinControlPlane, "w1": ActionUnchanged, "w2": ActionJoinWorker, "w9": ActionUnchanged}
	for n, a := range want {
		if u.reports[n].Action != a {
			t.Errorf("%s: action %q, want %q", n, u.reports[n].Action, a)
		}
	}
	if u.reports["w9"].Result != ResultNotInFile || !strings.Contains(out.String(), "not in the file: w9") {
		t.Errorf("w9 is not reported as missing from the file: %+v\n%s", u.reports["w9"], out.String())
	}
}

func TestUpBundleFilesPerRole(t *testing.T) {
	u := &up{bundle: &bundle.Bundle{Manifest: bundle.Manifest{Files: []bundle.File{
		{Path: "bin/kubelet", Kind: bundle.KindBinary, Install: "/usr/local/bin/kubelet"},
		{Path: "bin/kube-apiserver", Kind: bundle.KindFile},
		{Path: "images/apiserver.tar", Kind: bundle.KindImage, Images: []string{"registry.k8s.io/kube-apiserver:v1.34.4"}},
		{Path: "images/etcd.tar", Kind: bundle.KindImage, Images: []string{"registry.k8s.io/etcd:3.6.4-0"}},
		{Path: "images/proxy.tar", Kind: bundle.KindImage, Images: []string{"registry.k8s.io/kube-proxy:v1.34.4"}},
	}}}}
	c := upCluster(t)
	paths := func(h *config.Host) string {
		var p []string
		for _, f := range u.bundleFiles(h) {
			p = append(p, f.Path)
		}
		return strings.Join(p, " ")
	}
	if got, want := paths(&c.Hosts[0]), "bin/kubelet images/apiserver.tar images/etcd.tar images/proxy.tar"; got != want {
		t.Errorf("control plane gets %q, want %q", got, want)
	}
	if got, want := paths(&c.Hosts[2]), "bin/kubelet images/proxy.tar"; got != want {
		t.Errorf("worker gets %q, want %q", got, want)
	}
}

func TestUpRedactsHostOutput(t *testing.T) {
	var log bytes.Buffer
	u := &up{o: UpOptions{HostLog: &log}}
	u.addSecret("q7w8e9r0t1y2u3i4")
	u.addSecret("k4fg3x.q7w8e9r0t1y2u3i4")
	w := &lineWriter{u: u, host: "cp1"}
	w.Write([]byte("kforge join 10.0.0.1:6443 --token k4fg3x.q7w8e9r0t1y2u3i4 \\\n    --discovery"))
	w.flush()
	if strings.Contains(log.String(), "q7w8e9r0t1y2u3i4") {
		t.Errorf("a secret reached the host log:\n%s", log.String())
	}
	if !strings.Contains(log.String(), "cp1: kforge join 10.0.0.1:6443 --token <redacted>") || !strings.Contains(w.tail(5), "--discovery") {
		t.Errorf("host log = %q, tail = %q", log.String(), w.tail(5))
	}
}
