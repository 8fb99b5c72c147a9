package phases

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/preflight"
	"github.com/kforge/kforge/service"
)

// noWait is a Waiter whose conditions hold at once.
type noWait struct{}

func (noWait) WaitControlPlane(context.Context, *Data) error { return nil }
func (noWait) WaitFor(context.Context, *Data, string, func(context.Context) error) error {
	return nil
}

// testCluster is the default configuration with one control-plane host, cp1, changed by
// edit when it is not nil.
func testCluster(t *testing.T, edit func(c *config.Cluster)) *config.Cluster {
	t.Helper()
	c := &config.Cluster{Hosts: []config.Host{{Name: "cp1", Address: "10.77.0.11", Roles: []string{config.RoleControlPlane}}}}
	if edit != nil {
		edit(c)
	}
	config.SetDefaults(c)
	if err := c.Validate(); err != nil {
		t.Fatalf("test configuration is invalid: %v", err)
	}
	return c
}

// newTestData is a complete Data for host node of c, built through NewData as the commands
// build theirs: the default directories under a temp Root, the API client cs, and fakes for
// every other dependency, which report to out as "[fake] ..." and change nothing (services,
// ctr, etcd, cleanup steps) or wait for nothing. There is no super-admin client, as on a
// join. Tests replace the fields they exercise.
func newTestData(t *testing.T, c *config.Cluster, node string, out io.Writer, cs kubernetes.Interface) *Data {
	t.Helper()
	h, ok := c.HostByName(node)
	if !ok {
		t.Fatalf("test cluster has no host %q", node)
	}
	printer := NewPrinter(out)
	say := func(format string, args ...any) { fmt.Fprintf(out, "[fake] "+format+"\n", args...) }
	s := DataSpec{
		Cluster:          c,
		Node:             h,
		AdvertiseAddress: net.ParseIP(h.NodeIP()),
		CertDir:          DefaultCertDir,
		KubeconfigDir:    DefaultKubeconfigDir,
		ManifestsDir:     DefaultManifestsDir,
		PreflightSystem:  preflight.LocalSystem(),
		Out:              printer,
		Log:              slog.New(slog.DiscardHandler),
		JoinControlPlane: h.IsControlPlane(),
		Wait:             5 * time.Second,
	}
	return NewData(s, Deps{
		Root:     t.TempDir(),
		Now:      time.Now,
		Services: &service.DryRun{Say: say},
		Ctr: func(_ context.Context, args ...string) ([]byte, error) {
			say("ctr %s", strings.Join(args, " "))
			return nil, nil
		},
		Waiter: noWait{},
		Etcd:   DryRunEtcd(say),
		Client: func() (kubernetes.Interface, error) { return cs, nil },
		Act:    DryRunAct,
	})
}

// TestNewDataKeepsEveryDependency guards NewData against a Deps field it forgets: every
// dependency a dry run sets reaches Data.
func TestNewDataKeepsEveryDependency(t *testing.T) {
	c := testCluster(t, nil)
	s := DataSpec{Cluster: c, Node: &c.Hosts[0], PreflightSystem: preflight.LocalSystem(), Out: NewPrinter(io.Discard), SuperAdmin: true}
	deps := DryRunDeps(s, t.TempDir())
	d := reflect.ValueOf(NewData(s, deps)).Elem()
	dv := reflect.ValueOf(deps)
	for i := range dv.NumField() {
		name := dv.Type().Field(i).Name
		if name == "DryRunHost" {
			continue // the base of Data's overlay, checked below
		}
		got := d.FieldByName(name)
		switch {
		case !got.IsValid():
			t.Errorf("Data has no field %s for Deps.%s", name, name)
		case !dv.Field(i).IsZero() && got.IsZero():
			t.Errorf("NewData dropped Deps.%s", name)
		}
	}
	if d.FieldByName("overlay").IsNil() {
		t.Error("a dry run with a Root has no overlay of the host")
	}
}

// TestHostKubeconfigClient checks which kubeconfig reset's client comes from: the most
// capable one the host holds, and none when it holds neither.
func TestHostKubeconfigClient(t *testing.T) {
	kubeconfig := func(server string) []byte {
		return []byte("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: " + server +
			"\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user: {}\ncurrent-context: c\n")
	}
	tests := []struct {
		name       string
		files      []string
		wantServer string
	}{
		{name: "neither: no client"},
		{name: "a worker: kubelet.conf", files: []string{"kubelet.conf"}, wantServer: "https://kubelet.conf:6443"},
		{name: "a control plane: admin.conf", files: []string{"kubelet.conf", "admin.conf"}, wantServer: "https://admin.conf:6443"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tc.files {
				writeFile(t, filepath.Join(dir, f), kubeconfig("https://"+f+":6443"))
			}
			client := kubeconfigClient(dir, "")
			if tc.wantServer == "" {
				if client != nil {
					t.Fatal("a host without kubeconfigs has a client")
				}
				return
			}
			if client == nil {
				t.Fatal("no client")
			}
			cs, err := client()
			if err != nil {
				t.Fatal(err)
			}
			got := cs.(*kubernetes.Clientset).CoreV1().RESTClient().Get().URL().Host
			if want := strings.TrimPrefix(tc.wantServer, "https://"); got != want {
				t.Errorf("client talks to %s, want %s", got, want)
			}
		})
	}
}
