package phases

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/fleet"
	"github.com/kforge/kforge/host"
	"github.com/kforge/kforge/internal/testutil"
	"github.com/kforge/kforge/kubeconfig"
	"github.com/kforge/kforge/tokens"
)

// upLab is a fleet of fake hosts and a fake cluster: cp1 serves admin.conf once it has
// run init (or from the start, when the cluster exists).
type upLab struct {
	t       *testing.T
	c       *config.Cluster
	hosts   map[string]*testutil.FakeHost
	journal *testutil.Journal
	cs      *fake.Clientset
	admin   []byte
	// initialised is true once cp1 has an admin.conf.
	initialised bool
	out         bytes.Buffer
}

func newUpLab(t *testing.T, initialised bool, nodes ...*corev1.Node) *upLab {
	t.Helper()
	return newUpLabOf(t, testutil.Cluster(t), initialised, nodes...)
}

// newUpLabOf is newUpLab over the hosts of c.
func newUpLabOf(t *testing.T, c *config.Cluster, initialised bool, nodes ...*corev1.Node) *upLab {
	t.Helper()
	l := &upLab{t: t, c: c, hosts: map[string]*testutil.FakeHost{}, journal: &testutil.Journal{}, initialised: initialised}
	var objs []runtime.Object
	for _, n := range nodes {
		objs = append(objs, n)
	}
	l.cs = fake.NewClientset(objs...)
	admin, err := kubeconfig.Build("kubernetes", "https://192.0.2.10:6443", testutil.CAPEM(t), "kubernetes-admin", []byte("cert"), []byte("key"))
	if err != nil {
		t.Fatal(err)
	}
	l.admin = admin
	for _, h := range l.c.Hosts {
		fh := &testutil.FakeHost{HostName: h.Name, Journal: l.journal}
		fh.Rules = []testutil.Rule{
			{Match: regexp.MustCompile(`^check cluster state$`), Reply: func(string) (string, error) {
				if h.Name == "cp1" && l.initialised {
					return "/etc/kubernetes/pki/ca.crt\n/etc/kubernetes/pki/ca.key\n/etc/kubernetes/admin.conf\n", nil
				}
				return "", nil
			}},
			{Match: regexp.MustCompile(`^read admin\.conf$`), Reply: func(string) (string, error) {
				if h.Name == "cp1" && l.initialised {
					return string(l.admin), nil
				}
				return "", nil
			}},
			{Match: regexp.MustCompile(`^kforge init `), Reply: func(string) (string, error) {
				l.initialised = true
				return "[init] done\n", nil
			}},
			testutil.On(`^check kubelet\.conf$`, "joined\n"),
		}
		l.hosts[h.Name] = fh
	}
	return l
}

func (l *upLab) data(dryRun bool) *Data {
	kforge := filepath.Join(l.t.TempDir(), "kforge")
	writeFile(l.t, kforge, []byte("#!/bin/sh\n"))
	s := DataSpec{
		Cluster: l.c,
		Out:     NewPrinter(&l.out),
		Log:     slog.New(slog.DiscardHandler),
		Fleet: fleet.Options{
			Cluster: l.c,
			Kforge:  kforge,
			Connect: func(_ context.Context, h *config.Host) (host.Host, error) {
				fh, ok := l.hosts[h.Name]
				if !ok {
					return nil, fmt.Errorf("dial tcp %s:22: connection refused", h.Address)
				}
				return fh, nil
			},
			Client:       func([]byte) (kubernetes.Interface, error) { return l.cs, nil },
			PollInterval: time.Millisecond,
		},
	}
	// As kforge up builds it: the fleet acts on the hosts, this machine lends only its clock.
	return NewData(s, Deps{DryRun: dryRun, Now: time.Now})
}

// run runs the up workflow (or one phase of it) and returns the report.
func (l *upLab) run(d *Data, only string, skip ...string) (*fleet.Report, error) {
	err := UpWorkflow().Run(l.t.Context(), d, only, skip)
	return d.CloseFleet(l.t.Context()), err
}

// kforgeRuns lists the kforge commands every host ran, as "<host>: <verb>", in order.
func (l *upLab) kforgeRuns() []string {
	var out []string
	for _, e := range l.journal.Events() {
		host, cmd, _ := strings.Cut(e, ": ")
		if strings.HasPrefix(cmd, "kforge ") {
			out = append(out, host+": "+strings.Fields(cmd)[1])
		}
	}
	return out
}

func cpNode(name string) *corev1.Node {
	n := readyNode(name, true)
	n.Labels = map[string]string{"node-role.kubernetes.io/control-plane": ""}
	return &n
}

func workerNode(name string) *corev1.Node {
	n := readyNode(name, true)
	return &n
}

// TestUpFreshCluster: init on the first control plane after every host is prepared, then
// the other control plane, then the workers, each with its own token that is gone
// afterwards; secrets only ever on stdin.
func TestUpFreshCluster(t *testing.T) {
	l := newUpLab(t, false)
	rep, err := l.run(l.data(false), "")
	if err != nil {
		t.Fatalf("up: %v\n%s", err, l.out.String())
	}
	runs := l.kforgeRuns()
	last := func(verb string) int {
		i := -1
		for j, r := range runs {
			if strings.HasSuffix(r, ": "+verb) {
				i = j
			}
		}
		return i
	}
	initAt := slices.Index(runs, "cp1: init")
	cpJoinAt := slices.Index(runs, "cp2: join")
	if initAt < 0 || cpJoinAt < 0 {
		t.Fatalf("kforge runs %v: want init on cp1 and a join on cp2", runs)
	}
	if p := last("preflight"); p > initAt {
		t.Errorf("kforge runs %v: a preflight ran after init", runs)
	}
	for _, w := range []string{"w1: join", "w2: join"} {
		if i := slices.Index(runs, w); i < cpJoinAt {
			t.Errorf("kforge runs %v: %q is not after the control-plane join", runs, w)
		}
	}
	for _, h := range rep.Hosts {
		if h.Result != fleet.ResultOK {
			t.Errorf("%s: %+v, want ok", h.Host, h)
		}
	}
	secs, err := l.cs.CoreV1().Secrets(tokens.SecretNamespace).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(secs.Items) != 0 {
		t.Errorf("%d token Secrets left after up, want the workers' tokens deleted", len(secs.Items))
	}
	tokenRE := regexp.MustCompile(`[a-z0-9]{6}\.[a-z0-9]{16}`)
	for name, fh := range l.hosts {
		for i, cmd := range fh.Ran() {
			if tokenRE.MatchString(cmd) {
				t.Errorf("%s ran %q: a token on a command line", name, cmd)
			}
			if strings.HasPrefix(cmd, "kforge join") && !tokenRE.MatchString(fh.Stdin()[i]) {
				t.Errorf("%s: %q got no token on stdin", name, cmd)
			}
		}
	}
	if tokenRE.MatchString(l.out.String()) {
		t.Errorf("a token reached the output:\n%s", l.out.String())
	}
}

// TestUpRerunChangesNothing: with every host in the cluster, up runs no kforge anywhere.
func TestUpRerunChangesNothing(t *testing.T) {
	l := newUpLab(t, true, cpNode("cp1"), cpNode("cp2"), workerNode("w1"), workerNode("w2"))
	rep, err := l.run(l.data(false), "")
	if err != nil {
		t.Fatal(err)
	}
	if runs := l.kforgeRuns(); len(runs) != 0 {
		t.Errorf("kforge ran %v on a cluster that matches the file", runs)
	}
	for _, h := range rep.Hosts {
		if h.Action != fleet.ActionUnchanged || h.Result != fleet.ResultOK || h.Uploaded != 0 {
			t.Errorf("%s: %+v, want unchanged, ok, nothing uploaded", h.Host, h)
		}
	}
}

// TestUpConvergesNodeMarks: on a cluster that is already up, a worker's labels and taints
// from the file reach its Node, and the one kforge set before and the file dropped goes,
// while a label someone else set stays; no host is touched.
func TestUpConvergesNodeMarks(t *testing.T) {
	w1 := workerNode("w1")
	w1.Labels = map[string]string{"old": "x", "team": "db"}
	w1.Annotations = map[string]string{bootstrap.ManagedLabelsAnnotation: "old"}
	l := newUpLab(t, true, cpNode("cp1"), cpNode("cp2"), w1, workerNode("w2"))
	h, _ := l.c.HostByName("w1")
	h.Labels = map[string]string{"zone": "a"}
	h.Taints = []string{"dedicated=gpu:NoSchedule"}
	if _, err := l.run(l.data(false), ""); err != nil {
		t.Fatal(err)
	}
	if runs := l.kforgeRuns(); len(runs) != 0 {
		t.Errorf("kforge ran %v on a cluster whose hosts are all in it", runs)
	}
	n, err := l.cs.CoreV1().Nodes().Get(t.Context(), "w1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"zone": "a", "team": "db"}, n.Labels); diff != "" {
		t.Errorf("w1 labels (-want +got):\n%s", diff)
	}
	want := []corev1.Taint{{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}
	if diff := cmp.Diff(want, n.Spec.Taints); diff != "" {
		t.Errorf("w1 taints (-want +got):\n%s", diff)
	}
}

// TestUpReportsEveryUnreachableHost: one run names every host it cannot reach, each with
// its own reason, and fails without touching anything.
func TestUpReportsEveryUnreachableHost(t *testing.T) {
	l := newUpLab(t, false)
	l.hosts = map[string]*testutil.FakeHost{}
	rep, err := l.run(l.data(false), "")
	if err == nil {
		t.Fatal("up succeeded with every host unreachable")
	}
	if len(rep.Hosts) != 4 {
		t.Fatalf("report has %d hosts, want 4: %+v", len(rep.Hosts), rep.Hosts)
	}
	for _, h := range rep.Hosts {
		if h.Result != fleet.ResultFailed || !strings.Contains(h.Error, "unreachable") || !strings.Contains(h.Error, ":22: connection refused") {
			t.Errorf("%s: %+v, want failed as unreachable with its own reason", h.Host, h)
		}
	}
	if f := rep.Failed(); f == nil || strings.Count(f.Error(), "unreachable") != 4 {
		t.Errorf("Failed() = %v, want all four hosts", f)
	}
}

// TestUpInitFailureSkipsTheRest: nothing joins a cluster whose init failed.
func TestUpInitFailureSkipsTheRest(t *testing.T) {
	l := newUpLab(t, false)
	l.hosts["cp1"].Rules = append([]testutil.Rule{testutil.Fail(`^kforge init `, "etcd did not start")}, l.hosts["cp1"].Rules...)
	rep, err := l.run(l.data(false), "")
	if err == nil || !strings.Contains(err.Error(), `phase "init"`) {
		t.Fatalf("up error = %v, want the init phase's", err)
	}
	for _, h := range rep.Hosts {
		want := fleet.ResultSkipped
		if h.Host == "cp1" {
			want = fleet.ResultFailed
		}
		if h.Result != want {
			t.Errorf("%s: %+v, want %s", h.Host, h, want)
		}
	}
	if runs := l.kforgeRuns(); slices.ContainsFunc(runs, func(r string) bool { return strings.HasSuffix(r, ": join") }) {
		t.Errorf("kforge runs %v: a host joined although init failed", runs)
	}
}

// TestUpGrowthAndStaleNode: a new worker joins, a reset worker's stale Node is replaced,
// and the hosts in the cluster are left alone.
func TestUpGrowthAndStaleNode(t *testing.T) {
	l := newUpLab(t, true, cpNode("cp1"), cpNode("cp2"), workerNode("w1"))
	l.hosts["w1"].Rules = append([]testutil.Rule{testutil.On(`^check kubelet\.conf$`, "reset\n")}, l.hosts["w1"].Rules...)
	rep, err := l.run(l.data(false), "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := l.kforgeRuns(), []string{"w1: preflight", "w2: preflight"}; !slices.Equal(got[:2], want) && !slices.Equal(got[:2], []string{want[1], want[0]}) {
		t.Errorf("kforge runs %v, want the two workers' preflights first", got)
	}
	for _, name := range []string{"w1", "w2"} {
		if h := hostReport(rep, name); h.Action != fleet.ActionJoinWorker || h.Result != fleet.ResultOK {
			t.Errorf("%s: %+v, want a worker join", name, h)
		}
	}
	if _, err := l.cs.CoreV1().Nodes().Get(t.Context(), "w1", metav1.GetOptions{}); err == nil {
		t.Error("w1's stale Node is still there")
	}
}

// TestUpSkipAndSinglePhase: --skip-phases join-workers leaves the workers out, and
// `up phase prepare-hosts` prepares the hosts and does nothing else.
func TestUpSkipAndSinglePhase(t *testing.T) {
	t.Run("skip join-workers", func(t *testing.T) {
		l := newUpLab(t, false)
		rep, err := l.run(l.data(false), "", "join-workers")
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"w1", "w2"} {
			if h := hostReport(rep, name); h.Result != fleet.ResultSkipped {
				t.Errorf("%s: %+v, want skipped", name, h)
			}
			if slices.Contains(l.kforgeRuns(), name+": join") {
				t.Errorf("%s joined although join-workers was skipped", name)
			}
		}
		if h := hostReport(rep, "cp2"); h.Result != fleet.ResultOK {
			t.Errorf("cp2: %+v, want joined", h)
		}
	})
	t.Run("phase prepare-hosts", func(t *testing.T) {
		l := newUpLab(t, false)
		if _, err := l.run(l.data(false), "prepare-hosts"); err != nil {
			t.Fatal(err)
		}
		runs := l.kforgeRuns()
		if len(runs) != 4 || slices.ContainsFunc(runs, func(r string) bool { return !strings.HasSuffix(r, ": preflight") }) {
			t.Errorf("kforge runs %v, want a preflight on each of the 4 hosts and nothing else", runs)
		}
		if _, ok := l.hosts["w1"].File(fleet.RemoteConfig); !ok {
			t.Errorf("w1 has no %s", fleet.RemoteConfig)
		}
	})
}

// TestUpDryRun: the plan of a run that adds a worker to a cluster, and no change.
func TestUpDryRun(t *testing.T) {
	l := newUpLab(t, true, cpNode("cp1"), cpNode("cp2"), workerNode("w1"), workerNode("gone"))
	rep, err := l.run(l.data(true), "")
	if err != nil {
		t.Fatal(err)
	}
	if runs := l.kforgeRuns(); len(runs) != 0 {
		t.Errorf("a dry run ran kforge: %v", runs)
	}
	if h := hostReport(rep, "w2"); h.Result != fleet.ResultPlanned || h.Action != fleet.ActionJoinWorker {
		t.Errorf("w2: %+v, want a planned worker join", h)
	}
	out := regexp.MustCompile(`[0-9.]+(µs|ms|s)\b`).ReplaceAllString(l.out.String(), "<duration>")
	testutil.Golden(t, "up-dry-run.golden", []byte(out))
}

func hostReport(r *fleet.Report, name string) fleet.HostReport {
	for _, h := range r.Hosts {
		if h.Host == name {
			return h
		}
	}
	return fleet.HostReport{}
}

// noSudo makes every command on a fake host fail as a host without passwordless sudo does.
func noSudo(name string) testutil.Rule {
	return testutil.Rule{Match: regexp.MustCompile(`.`), Err: fmt.Errorf("%w: user kforge on %s cannot run sudo without a password", host.ErrNoSudo, name)}
}

// TestUpRefusesInitWhenAControlPlaneIsUnreachable: with no cluster found but cp2 out of
// reach, up cannot tell that there is no cluster, so it inits nothing; it names cp2, and
// --init-new-cluster is the way to init anyway.
func TestUpRefusesInitWhenAControlPlaneIsUnreachable(t *testing.T) {
	l := newUpLab(t, false)
	delete(l.hosts, "cp2")
	rep, err := l.run(l.data(false), "")
	if !errors.Is(err, fleet.ErrControlPlaneUnreachable) || !strings.Contains(err.Error(), "cp2") {
		t.Fatalf("up error = %v, want ErrControlPlaneUnreachable naming cp2", err)
	}
	if runs := l.kforgeRuns(); len(runs) != 0 {
		t.Errorf("kforge ran %v although up could not tell whether a cluster exists", runs)
	}
	for _, h := range rep.Hosts {
		want := fleet.ResultSkipped
		if h.Host == "cp2" {
			want = fleet.ResultFailed
		}
		if h.Result != want {
			t.Errorf("%s: %+v, want %s", h.Host, h, want)
		}
	}

	t.Run("--init-new-cluster", func(t *testing.T) {
		l := newUpLab(t, false)
		delete(l.hosts, "cp2")
		d := l.data(false)
		d.Up.Plan.InitNewCluster = true
		rep, err := l.run(d, "")
		if err != nil {
			t.Fatalf("up --init-new-cluster: %v\n%s", err, l.out.String())
		}
		if !slices.Contains(l.kforgeRuns(), "cp1: init") {
			t.Errorf("kforge runs %v, want init on cp1", l.kforgeRuns())
		}
		if h := hostReport(rep, "cp2"); h.Result != fleet.ResultFailed {
			t.Errorf("cp2: %+v, want failed as unreachable", h)
		}
	})
}

// TestUpRefusesInitOnAnAuthError: cp1 holds a cluster whose API answers its admin.conf
// with 401. That is fatal at once: no init, no join, no wait.
func TestUpRefusesInitOnAnAuthError(t *testing.T) {
	l := newUpLab(t, true, cpNode("cp1"))
	l.cs.PrependReactor("list", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewUnauthorized("Unauthorized")
	})
	d := l.data(false)
	d.Up.Plan.InitNewCluster = true // not even the operator's word overrides an auth error
	start := time.Now()
	rep, err := l.run(d, "")
	if !errors.Is(err, fleet.ErrAPIRejected) || !strings.Contains(err.Error(), "cp1") {
		t.Fatalf("up error = %v, want ErrAPIRejected naming cp1", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("up took %s to give up on a 401, want no wait", took)
	}
	if runs := l.kforgeRuns(); len(runs) != 0 {
		t.Errorf("kforge ran %v after the API refused admin.conf", runs)
	}
	if len(rep.AdminKubeconfig) != 0 {
		t.Error("the report carries an admin kubeconfig the API refused")
	}
	for _, h := range rep.Hosts {
		if h.Result != fleet.ResultSkipped {
			t.Errorf("%s: %+v, want skipped", h.Host, h)
		}
	}
}

// TestUpControlPlaneFailureDoesNotStopTheOthers: cp1 cannot use sudo. The cluster still
// answers through cp2, so the new worker joins; cp1 is reported failed and the run fails.
func TestUpControlPlaneFailureDoesNotStopTheOthers(t *testing.T) {
	l := newUpLab(t, true, cpNode("cp1"), cpNode("cp2"), workerNode("w1"))
	l.hosts["cp1"].Rules = []testutil.Rule{noSudo("cp1")}
	l.hosts["cp2"].Rules = append([]testutil.Rule{
		testutil.On(`^check cluster state$`, "/etc/kubernetes/pki/ca.crt\n/etc/kubernetes/admin.conf\n"),
		{Match: regexp.MustCompile(`^read admin\.conf$`), Reply: func(string) (string, error) { return string(l.admin), nil }},
	}, l.hosts["cp2"].Rules...)
	rep, err := l.run(l.data(false), "")
	if err != nil {
		t.Fatalf("up: %v\n%s", err, l.out.String())
	}
	if h := hostReport(rep, "w2"); h.Action != fleet.ActionJoinWorker || h.Result != fleet.ResultOK {
		t.Errorf("w2: %+v, want joined", h)
	}
	for _, name := range []string{"cp2", "w1"} {
		if h := hostReport(rep, name); h.Action != fleet.ActionUnchanged || h.Result != fleet.ResultOK {
			t.Errorf("%s: %+v, want unchanged", name, h)
		}
	}
	if h := hostReport(rep, "cp1"); h.Result != fleet.ResultFailed || !strings.Contains(h.Error, "sudo") {
		t.Errorf("cp1: %+v, want failed with the sudo error", h)
	}
	if f := rep.Failed(); f == nil || !strings.Contains(f.Error(), "cp1") {
		t.Errorf("Failed() = %v, want cp1 (the exit status is non-zero)", f)
	}
}

// TestUpFirstControlPlaneFailsWithNoCluster: with no cluster and cp1 (the host that would
// init) unable to use sudo, nothing can be built: up says so, names cp1 and inits nothing.
func TestUpFirstControlPlaneFailsWithNoCluster(t *testing.T) {
	l := newUpLab(t, false)
	l.hosts["cp1"].Rules = []testutil.Rule{noSudo("cp1")}
	rep, err := l.run(l.data(false), "")
	if !errors.Is(err, fleet.ErrControlPlaneUnreachable) || !strings.Contains(err.Error(), "cp1") {
		t.Fatalf("up error = %v, want ErrControlPlaneUnreachable naming cp1", err)
	}
	if runs := l.kforgeRuns(); len(runs) != 0 {
		t.Errorf("kforge ran %v with no host able to init", runs)
	}
	if h := hostReport(rep, "cp1"); h.Result != fleet.ResultFailed || !strings.Contains(h.Error, "sudo") {
		t.Errorf("cp1: %+v, want failed with the sudo error", h)
	}
	for _, name := range []string{"cp2", "w1", "w2"} {
		if h := hostReport(rep, name); h.Result != fleet.ResultSkipped {
			t.Errorf("%s: %+v, want skipped", name, h)
		}
	}
}

// TestUpBrokenControlPlaneDoesNotStopAControlPlaneJoin: cp1 cannot use sudo, so the
// certificates for cp3's join are uploaded from cp2, the other control plane in the
// cluster.
func TestUpBrokenControlPlaneDoesNotStopAControlPlaneJoin(t *testing.T) {
	cp := []string{config.RoleControlPlane}
	c := testutil.Cluster(t,
		config.Host{Name: "cp1", Address: "192.0.2.10", Roles: cp},
		config.Host{Name: "cp2", Address: "192.0.2.11", Roles: cp},
		config.Host{Name: "cp3", Address: "192.0.2.12", Roles: cp},
		config.Host{Name: "w1", Address: "192.0.2.20", Roles: []string{config.RoleWorker}},
	)
	l := newUpLabOf(t, c, true, cpNode("cp1"), cpNode("cp2"), workerNode("w1"))
	l.hosts["cp1"].Rules = []testutil.Rule{noSudo("cp1")}
	l.hosts["cp2"].Rules = append([]testutil.Rule{
		testutil.On(`^check cluster state$`, "/etc/kubernetes/pki/ca.crt\n/etc/kubernetes/admin.conf\n"),
		{Match: regexp.MustCompile(`^read admin\.conf$`), Reply: func(string) (string, error) { return string(l.admin), nil }},
	}, l.hosts["cp2"].Rules...)
	rep, err := l.run(l.data(false), "")
	if err != nil {
		t.Fatalf("up: %v\n%s", err, l.out.String())
	}
	if h := hostReport(rep, "cp3"); h.Action != fleet.ActionJoinControlPlane || h.Result != fleet.ResultOK {
		t.Errorf("cp3: %+v, want joined as a control plane", h)
	}
	if runs := l.kforgeRuns(); !slices.Contains(runs, "cp2: init") || slices.Contains(runs, "cp1: init") {
		t.Errorf("kforge runs %v, want the certificates uploaded (init phase upload-certs) on cp2 only", runs)
	}
	if h := hostReport(rep, "cp1"); h.Result != fleet.ResultFailed {
		t.Errorf("cp1: %+v, want failed", h)
	}
}

// TestUpResumesAKilledInit: kforge init on cp1 was killed half-way (its certificates are
// written, its marker is still there, no apiserver answers). A plain re-run of up runs init
// on cp1 again, says why, and joins the rest. The same state on cp1 with cluster state on
// cp2 too is not an unfinished init: up refuses and runs nothing.
func TestUpResumesAKilledInit(t *testing.T) {
	killedInit := func(l *upLab) testutil.Rule {
		return testutil.Rule{Match: regexp.MustCompile(`^check cluster state$`), Reply: func(string) (string, error) {
			if l.initialised {
				return "/etc/kubernetes/pki/ca.crt\n/etc/kubernetes/pki/ca.key\n/etc/kubernetes/admin.conf\n", nil
			}
			return "/etc/kubernetes/pki/ca.crt\n/etc/kubernetes/pki/ca.key\n" + fleet.InitMarker + "\n", nil
		}}
	}
	l := newUpLab(t, false)
	l.hosts["cp1"].Rules = append([]testutil.Rule{killedInit(l)}, l.hosts["cp1"].Rules...)
	rep, err := l.run(l.data(false), "")
	if err != nil {
		t.Fatalf("up after a killed init: %v\n%s", err, l.out.String())
	}
	runs := l.kforgeRuns()
	if !slices.Contains(runs, "cp1: init") || !slices.Contains(runs, "cp2: join") {
		t.Errorf("kforge runs %v, want init on cp1 again and cp2 joined", runs)
	}
	if want := "resuming kforge's unfinished init on cp1"; !strings.Contains(l.out.String(), want) {
		t.Errorf("the plan does not say %q:\n%s", want, l.out.String())
	}
	for _, h := range rep.Hosts {
		if h.Result != fleet.ResultOK {
			t.Errorf("%s: %+v, want ok", h.Host, h)
		}
	}

	t.Run("another control plane holds state", func(t *testing.T) {
		l := newUpLab(t, false)
		l.hosts["cp1"].Rules = append([]testutil.Rule{killedInit(l)}, l.hosts["cp1"].Rules...)
		l.hosts["cp2"].Rules = append([]testutil.Rule{testutil.On(`^check cluster state$`, "/etc/kubernetes/pki/ca.crt\n")}, l.hosts["cp2"].Rules...)
		_, err := l.run(l.data(false), "")
		if !errors.Is(err, fleet.ErrClusterNotAnswering) || !strings.Contains(err.Error(), "cp2 holds") {
			t.Fatalf("up error = %v, want ErrClusterNotAnswering naming cp2", err)
		}
		if runs := l.kforgeRuns(); len(runs) != 0 {
			t.Errorf("kforge ran %v although cp2 holds cluster state", runs)
		}
	})
}
