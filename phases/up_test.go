package phases

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
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
	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/fleet"
	"github.com/kforge/kforge/host"
	"github.com/kforge/kforge/internal/apiclient"
	"github.com/kforge/kforge/internal/overlay"
	"github.com/kforge/kforge/internal/testutil"
	"github.com/kforge/kforge/kubeconfig"
	"github.com/kforge/kforge/tokens"
)

// upLab is a fleet of fake hosts and a fake cluster: cp1 serves admin.conf once it has
// run init (or from the start, when the cluster exists, which then stores the file's
// configuration as init would).
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
	// plans are what `kforge reconfigure --dry-run -o json` prints on each host already
	// in the cluster; a host without one matches the file.
	plans map[string]fleet.HostPlan
	// expiry is the certificates each control plane holds, as readCerts reads them (at
	// clock, the hosts' time); a host without one has certificates a year from expiry.
	// `certs renew all --if-due` renews them for a year. certs, where set, wins.
	expiry map[string][]certs.ExpiryRow
	clock  time.Time
	// certs are what each host prints for readCerts' "check certificate expiry"; a host
	// without an entry prints only its clock (no certificate found).
	certs map[string]string
}

func newUpLab(t *testing.T, initialised bool, nodes ...*corev1.Node) *upLab {
	t.Helper()
	return newUpLabOf(t, testutil.Cluster(t), initialised, nodes...)
}

// newUpLabOf is newUpLab over the hosts of c.
func newUpLabOf(t *testing.T, c *config.Cluster, initialised bool, nodes ...*corev1.Node) *upLab {
	t.Helper()
	l := &upLab{t: t, c: c, hosts: map[string]*testutil.FakeHost{}, journal: &testutil.Journal{}, initialised: initialised, plans: map[string]fleet.HostPlan{},
		expiry: map[string][]certs.ExpiryRow{}, certs: map[string]string{}, clock: time.Now().Truncate(time.Second)}
	var objs []runtime.Object
	for _, n := range nodes {
		objs = append(objs, n)
	}
	l.cs = fake.NewClientset(objs...)
	if initialised {
		storeClusterConfig(t, l.cs, c)
	}
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
			{Match: regexp.MustCompile(`^check certificate expiry$`), Reply: func(string) (string, error) {
				if out, ok := l.certs[h.Name]; ok {
					return out, nil
				}
				if !h.IsControlPlane() {
					return fmt.Sprintf("now %d\n", l.clock.Unix()), nil
				}
				rows, ok := l.expiry[h.Name]
				if !ok {
					rows = expiryRows(l.clock.Add(365 * 24 * time.Hour))
				}
				return expiryOutput(t, l.clock, rows), nil
			}},
			{Match: regexp.MustCompile(`^kforge reconfigure .*--dry-run -o json`), Reply: func(string) (string, error) {
				p, ok := l.plans[h.Name]
				if !ok {
					p = fleet.HostPlan{Node: h.Name, Role: roleName(&h), Changes: []overlay.FileChange{}, Restarts: []string{}}
				}
				b, err := json.Marshal(p)
				return string(b), err
			}},
			{Match: regexp.MustCompile(`^kforge reconfigure `), Reply: func(string) (string, error) {
				delete(l.plans, h.Name)
				return "[reconfigure] done\n", nil
			}},
			{Match: regexp.MustCompile(`^kforge certs renew all --if-due -f \S+ --node ` + h.Name + `( |$)`), Reply: func(string) (string, error) {
				delete(l.expiry, h.Name)
				b, err := json.Marshal(certs.RenewalState{Outcome: certs.OutcomeRenewed, Renewed: []string{"apiserver", "admin.conf"}})
				return string(b), err
			}},
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
			Readyz:       func(context.Context, []byte) error { return nil },
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

// kforgeRuns lists the kforge commands the hosts ran that change them: not the
// reconfigure plans (--dry-run); as "<host>: <verb>", in order.
func (l *upLab) kforgeRuns() []string {
	var out []string
	for _, e := range l.journal.Events() {
		host, cmd, _ := strings.Cut(e, ": ")
		if strings.HasPrefix(cmd, "kforge ") && !strings.Contains(cmd, " --dry-run") && !strings.Contains(cmd, " check-expiration ") {
			out = append(out, host+": "+strings.Fields(cmd)[1])
		}
	}
	return out
}

// expiryOutput is what readCerts' script prints on a control plane holding rows, at now:
// each row's certificate, and the CAs' keys present.
func expiryOutput(t *testing.T, now time.Time, rows []certs.ExpiryRow) string {
	t.Helper()
	ca := testutil.NewCA(t, "kubernetes", 24*time.Hour)
	var b strings.Builder
	fmt.Fprintf(&b, "now %d\n", now.Unix())
	for _, r := range rows {
		if r.Signer == "" && !r.External {
			fmt.Fprintf(&b, "haskey %s\n", r.Path)
		}
		cert, _ := ca.Sign(&x509.Certificate{Subject: pkix.Name{CommonName: r.Name}, NotBefore: r.NotAfter.Add(-time.Hour), NotAfter: r.NotAfter})
		fmt.Fprintf(&b, "file %s\n%s", r.Path, cert)
	}
	return b.String()
}

// expiryRows is what check-expiration prints for a control plane whose leaves expire at
// leaf, admin.conf a minute later, and whose CA has years left.
func expiryRows(leaf time.Time) []certs.ExpiryRow {
	return []certs.ExpiryRow{
		{Name: "apiserver", Path: "/etc/kubernetes/pki/apiserver.crt", Signer: certs.NameCA, NotAfter: leaf},
		{Name: "admin.conf", Path: "/etc/kubernetes/admin.conf", Signer: certs.NameCA, NotAfter: leaf.Add(time.Minute)},
		{Name: certs.NameCA, Path: "/etc/kubernetes/pki/ca.crt", NotAfter: leaf.Add(9 * 365 * 24 * time.Hour)},
	}
}

func roleName(h *config.Host) string {
	if h.IsControlPlane() {
		return config.RoleControlPlane
	}
	return config.RoleWorker
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

// answerDryRuns makes cs answer server-side dry-run applies as the apiserver does, without
// storing anything: each is applied to a scratch clientset that holds only the object as
// cs has it (the fake clientset itself ignores DryRun and would store the result). Any
// other write fails the test. It returns the count of dry runs.
func answerDryRuns(t *testing.T, cs *fake.Clientset) *int {
	t.Helper()
	var dryRuns int
	cs.PrependReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		switch a.GetVerb() {
		case "get", "list", "watch":
			return false, nil, nil
		}
		p, ok := a.(k8stesting.PatchActionImpl)
		if !ok || !slices.Equal(p.PatchOptions.DryRun, []string{metav1.DryRunAll}) {
			t.Errorf("a dry run wrote: %s %s %T", a.GetVerb(), a.GetResource().Resource, a)
			return true, nil, errors.New("write in a dry run")
		}
		dryRuns++
		var seed []runtime.Object
		if cur, err := cs.Tracker().Get(p.GetResource(), p.GetNamespace(), p.Name); err == nil {
			seed = append(seed, cur)
		}
		obj, err := fake.NewClientset(seed...).Invokes(p, nil)
		return true, obj, err
	})
	return &dryRuns
}

// TestUpDryRun: the plan of a run that adds a worker to a cluster, and no change.
func TestUpDryRun(t *testing.T) {
	l := newUpLab(t, true, cpNode("cp1"), cpNode("cp2"), workerNode("w1"), workerNode("gone"))
	answerDryRuns(t, l.cs)
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

// storeClusterConfig puts c in the fake cluster's kube-system/kubeadm-config, as init's
// upload-config leaves it.
func storeClusterConfig(t *testing.T, cs kubernetes.Interface, c *config.Cluster) {
	t.Helper()
	cm, err := bootstrap.KubeadmConfig(c, DefaultCertDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps(cm.Namespace).Create(t.Context(), cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestUpAppliesAddonsOnARunningCluster: on a cluster that is already up, an add-on setting
// edited in the file reaches the cluster through the admin client, with no kforge run on
// any host; the second run changes nothing; the file is stored for the next plan.
func TestUpAppliesAddonsOnARunningCluster(t *testing.T) {
	l := newUpLab(t, true, cpNode("cp1"), cpNode("cp2"), workerNode("w1"), workerNode("w2"))
	l.c.Addons.DNS.Replicas = 3
	if _, err := l.run(l.data(false), ""); err != nil {
		t.Fatalf("up: %v\n%s", err, l.out.String())
	}
	if runs := l.kforgeRuns(); len(runs) != 0 {
		t.Errorf("kforge ran %v on a cluster whose hosts are all in it", runs)
	}
	dep, err := l.cs.AppsV1().Deployments("kube-system").Get(t.Context(), "coredns", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("CoreDNS was not applied: %v\n%s", err, l.out.String())
	}
	if got := *dep.Spec.Replicas; got != 3 {
		t.Errorf("CoreDNS replicas = %d, want 3", got)
	}
	cm, err := l.cs.CoreV1().ConfigMaps("kube-system").Get(t.Context(), bootstrap.KubeadmConfigName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := config.EncodeShared(l.c)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), cm.Data[bootstrap.KforgeConfigKey]); diff != "" {
		t.Errorf("stored configuration after up (-want +got):\n%s", diff)
	}

	l.out.Reset()
	rep, err := l.run(l.data(false), "")
	if err != nil {
		t.Fatalf("second up: %v", err)
	}
	if !strings.Contains(l.out.String(), "[addons] using existing CoreDNS (6 objects unchanged)") {
		t.Errorf("second run does not say CoreDNS is unchanged:\n%s", l.out.String())
	}
	// Empty lists, not null, in -o json.
	if c := rep.Changes; c.Objects == nil || len(c.Objects) != 0 || c.Nodes == nil || len(c.Nodes) != 0 {
		t.Errorf("second run's cluster changes %+v, want none", c)
	}
}

// TestUpDryRunPlansClusterChanges: on a dry run, the add-on objects and the Node marks
// are planned against the live cluster, shown field by field, and nothing is written.
func TestUpDryRunPlansClusterChanges(t *testing.T) {
	w1 := workerNode("w1")
	w1.Labels = map[string]string{"old": "x", "team": "db"}
	w1.Annotations = map[string]string{bootstrap.ManagedLabelsAnnotation: "old"}
	l := newUpLab(t, true, cpNode("cp1"), cpNode("cp2"), w1, workerNode("w2"))
	h, _ := l.c.HostByName("w1")
	h.Labels = map[string]string{"zone": "a"}
	h.Taints = []string{"dedicated=gpu:NoSchedule"}
	dryRuns := answerDryRuns(t, l.cs)
	rep, err := l.run(l.data(true), "")
	if err != nil {
		t.Fatalf("up --dry-run: %v\n%s", err, l.out.String())
	}
	out := l.out.String()
	for _, want := range []string{
		"[w1] would add label zone=a",
		"[w1] would add taint dedicated=gpu:NoSchedule",
		"[w1] would remove label old=x",
		"[addons] CoreDNS: would create Deployment kube-system/coredns",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the plan does not say %q:\n%s", want, out)
		}
	}
	if *dryRuns == 0 {
		t.Errorf("no server-side dry-run apply was sent")
	}
	i := slices.IndexFunc(rep.Changes.Nodes, func(n fleet.NodeMarksChange) bool { return n.Node == "w1" })
	if i < 0 {
		t.Fatalf("report node changes %+v: none for w1", rep.Changes.Nodes)
	}
	wantW1 := fleet.NodeMarksChange{Node: "w1", Added: []string{"label zone=a", "taint dedicated=gpu:NoSchedule"}, Removed: []string{"label old=x"}}
	if diff := cmp.Diff(wantW1, rep.Changes.Nodes[i]); diff != "" {
		t.Errorf("w1's change in the report (-want +got):\n%s", diff)
	}
	if !rep.DryRun || !slices.ContainsFunc(rep.Changes.Objects, func(o fleet.ObjectChange) bool {
		return o.Object == "Deployment kube-system/coredns" && o.Change == fleet.ChangeCreate
	}) {
		t.Errorf("report: dry run %v, object changes %+v; want a dry run that would create CoreDNS's Deployment", rep.DryRun, rep.Changes.Objects)
	}
	n, err := l.cs.CoreV1().Nodes().Get(t.Context(), "w1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := n.Labels["zone"]; ok || len(n.Spec.Taints) > 0 {
		t.Errorf("a dry run changed w1: labels %v, taints %v", n.Labels, n.Spec.Taints)
	}
}

// TestUpRefusesAnUnsafeChange: a pod CIDR that differs from the cluster's is refused in the
// plan, before any host or object is touched.
func TestUpRefusesAnUnsafeChange(t *testing.T) {
	l := newUpLab(t, true, cpNode("cp1"), cpNode("cp2"), workerNode("w1"))
	l.c.Networking.PodCIDR = "10.99.0.0/16"
	l.cs.ClearActions()
	_, err := l.run(l.data(false), "")
	if !errors.Is(err, fleet.ErrUnsafeChange) || !strings.Contains(err.Error(), "networking.pod_cidr") {
		t.Fatalf("up: %v, want fleet.ErrUnsafeChange naming networking.pod_cidr", err)
	}
	if runs := l.kforgeRuns(); len(runs) != 0 {
		t.Errorf("kforge ran %v after a refusal", runs)
	}
	for _, a := range l.cs.Actions() {
		switch a.GetVerb() {
		case "get", "list", "watch":
		default:
			t.Errorf("up wrote after a refusal: %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
}

// TestUpStoresConfigOnlyWhenNoHostFailed: a run in which a host failed leaves the stored
// configuration as it was, since the cluster does not match the file yet.
func TestUpStoresConfigOnlyWhenNoHostFailed(t *testing.T) {
	l := newUpLab(t, true, cpNode("cp1"), cpNode("cp2"), workerNode("w1"))
	before, err := l.cs.CoreV1().ConfigMaps("kube-system").Get(t.Context(), bootstrap.KubeadmConfigName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l.hosts["w2"].Rules = append([]testutil.Rule{testutil.Fail(`^kforge join `, "kubelet did not start")}, l.hosts["w2"].Rules...)
	l.c.Addons.DNS.Replicas = 4
	rep, err := l.run(l.data(false), "")
	if err == nil && rep.Failed() == nil {
		t.Fatalf("up succeeded although w2's join failed")
	}
	after, err := l.cs.CoreV1().ConfigMaps("kube-system").Get(t.Context(), bootstrap.KubeadmConfigName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before.Data, after.Data); diff != "" {
		t.Errorf("a run with a failed host stored the file (-before +after):\n%s", diff)
	}
	if !strings.Contains(l.out.String(), "[upload-config] not storing the file's configuration") {
		t.Errorf("the run does not say why it stored nothing:\n%s", l.out.String())
	}
}

// TestUpDryRunShowsFieldChanges: on a cluster whose add-ons are applied, a dry run with a
// DNS setting edited says which object would change and each field's old and new value,
// for people and in the report, and the cluster keeps the old values.
func TestUpDryRunShowsFieldChanges(t *testing.T) {
	l := newUpLab(t, true, cpNode("cp1"), cpNode("cp2"), workerNode("w1"), workerNode("w2"))
	if _, err := l.run(l.data(false), ""); err != nil {
		t.Fatalf("up: %v", err)
	}
	l.c.Addons.DNS.Replicas = 3
	l.c.Addons.DNS.Upstreams = []string{"192.0.2.53"}
	l.out.Reset()
	answerDryRuns(t, l.cs)
	rep, err := l.run(l.data(true), "")
	if err != nil {
		t.Fatalf("up --dry-run: %v\n%s", err, l.out.String())
	}
	out := l.out.String()
	for _, want := range []string{
		"[addons] CoreDNS: would change ConfigMap kube-system/coredns",
		`[addons]   data.Corefile (line 13): "    forward . /etc/resolv.conf {" → "    forward . 192.0.2.53 {"`,
		"[addons] CoreDNS: would change Deployment kube-system/coredns",
		"[addons]   spec.replicas: 2 → 3",
		`[addons]   spec.template.metadata.annotations["kforge.io/config-hash"]: `,
		"[addons] kube-proxy: no change (6 objects)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the plan does not say %q:\n%s", want, out)
		}
	}
	i := slices.IndexFunc(rep.Changes.Objects, func(o fleet.ObjectChange) bool { return o.Object == "Deployment kube-system/coredns" })
	if i < 0 || rep.Changes.Objects[i].Change != fleet.ChangeUpdate ||
		!slices.ContainsFunc(rep.Changes.Objects[i].Fields, func(f apiclient.FieldChange) bool {
			return f.Path == "spec.replicas" && f.Old == int64(2) && f.New == int64(3)
		}) {
		t.Errorf("report object changes %+v: want CoreDNS's Deployment updated, spec.replicas 2 → 3", rep.Changes.Objects)
	}
	dep, err := l.cs.AppsV1().Deployments("kube-system").Get(t.Context(), "coredns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *dep.Spec.Replicas != 2 {
		t.Errorf("a dry run scaled CoreDNS to %d", *dep.Spec.Replicas)
	}
}

// TestUpReconfiguresHostsInTheCluster: hosts already in the cluster whose files differ
// are planned (with the diff), and changed one at a time, control planes first, then the
// workers; a dry run changes none; a host that fails stops the rollout.
func TestUpReconfiguresHostsInTheCluster(t *testing.T) {
	newLab := func() *upLab {
		l := newUpLab(t, true, cpNode("cp1"), cpNode("cp2"), workerNode("w1"), workerNode("w2"))
		manifest := overlay.FileChange{Path: "/etc/kubernetes/manifests/kube-apiserver.yaml", Action: overlay.Update,
			Diff: "--- host\n+++ planned\n@@ -1 +1 @@\n-    - --a=1\n+    - --a=2\n"}
		kubeletCfg := overlay.FileChange{Path: "/var/lib/kubelet/config.yaml", Action: overlay.Update, Diff: "-maxPods: 110\n+maxPods: 60\n"}
		l.plans["cp1"] = fleet.HostPlan{Node: "cp1", Role: "control-plane", Changes: []overlay.FileChange{manifest}, Restarts: []string{"kube-apiserver"}}
		l.plans["w2"] = fleet.HostPlan{Node: "w2", Role: "worker", Changes: []overlay.FileChange{kubeletCfg}, Restarts: []string{"kubelet"}}
		l.plans["w1"] = fleet.HostPlan{Node: "w1", Role: "worker", Changes: []overlay.FileChange{kubeletCfg}, Restarts: []string{"kubelet"}}
		return l
	}

	l := newLab()
	rep, err := l.run(l.data(true), "")
	if err != nil {
		t.Fatal(err)
	}
	if runs := l.kforgeRuns(); len(runs) != 0 {
		t.Errorf("a dry run ran %v", runs)
	}
	for _, want := range []string{"[cp1] will reconfigure: 1 files differ from the file; restarts kube-apiserver", "[cp1]       +    - --a=2", "[cp2] matches the file"} {
		if !strings.Contains(l.out.String(), want) {
			t.Errorf("the dry run's output lacks %q:\n%s", want, l.out.String())
		}
	}
	for _, h := range rep.Hosts {
		if want := h.Host != "cp2"; (h.Action == fleet.ActionReconfigure) != want || h.Plan == nil {
			t.Errorf("dry run: %s: %+v", h.Host, h)
		}
	}

	l = newLab()
	if _, err := l.run(l.data(false), ""); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"cp1: reconfigure", "w1: reconfigure", "w2: reconfigure"}, l.kforgeRuns()); diff != "" {
		t.Errorf("rollout order (-want +got):\n%s", diff)
	}

	l = newLab()
	l.hosts["cp1"].Rules = append([]testutil.Rule{{Match: regexp.MustCompile(`^kforge reconfigure -f \S+ --node cp1$`),
		Err: errors.New("the kubelet did not restart kube-apiserver")}}, l.hosts["cp1"].Rules...)
	rep, err = l.run(l.data(false), "")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"cp1: reconfigure"}, l.kforgeRuns()); diff != "" {
		t.Errorf("after cp1 failed (-want +got):\n%s", diff)
	}
	for _, h := range rep.Hosts {
		switch h.Host {
		case "cp1":
			if h.Result != fleet.ResultFailed {
				t.Errorf("cp1: %+v, want failed", h)
			}
		case "w1", "w2":
			if h.Result != fleet.ResultSkipped || !strings.Contains(h.Error, "the rollout stopped at cp1") {
				t.Errorf("%s: %+v, want skipped by the stopped rollout", h.Host, h)
			}
		}
	}
}

// TestUpPlansWithTheInstalledKforgeWhenItIsThisBuild: a host whose kforge is this run's
// build plans in one command (--expect-sha256) and gets no kforge upload; a host whose
// kforge is another build gets this one (installed on a real run, under /tmp on a dry
// run) and plans with it.
func TestUpPlansWithTheInstalledKforgeWhenItIsThisBuild(t *testing.T) {
	for _, dryRun := range []bool{false, true} {
		l := newUpLab(t, true, cpNode("cp1"), cpNode("cp2"), workerNode("w1"), workerNode("w2"))
		l.hosts["w1"].Rules = append([]testutil.Rule{{Match: regexp.MustCompile(`--expect-sha256 `),
			Err: errors.New("--expect-sha256: /usr/local/bin/kforge is another build")}}, l.hosts["w1"].Rules...)
		if _, err := l.run(l.data(dryRun), ""); err != nil {
			t.Fatalf("dry run %v: %v\n%s", dryRun, err, l.out.String())
		}
		var kforgeUploads []string
		plans := map[string][]string{}
		for _, e := range l.journal.Events() {
			host, cmd, _ := strings.Cut(e, ": ")
			switch {
			case strings.HasPrefix(cmd, "upload ") && strings.Contains(cmd, "kforge") && !strings.HasSuffix(cmd, ".toml"):
				kforgeUploads = append(kforgeUploads, host+": "+cmd)
			case strings.HasPrefix(cmd, "kforge reconfigure ") && strings.Contains(cmd, "--dry-run"):
				plans[host] = append(plans[host], cmd)
			}
		}
		wantUpload := "w1: upload /usr/local/bin/kforge"
		if dryRun {
			wantUpload = "w1: upload /tmp/kforge-plan-"
		}
		if len(kforgeUploads) != 1 || !strings.HasPrefix(kforgeUploads[0], wantUpload) {
			t.Errorf("dry run %v: kforge uploads %q, want only %q", dryRun, kforgeUploads, wantUpload)
		}
		for _, h := range []string{"cp1", "cp2", "w2"} {
			if len(plans[h]) != 1 || !strings.Contains(plans[h][0], "--expect-sha256 ") {
				t.Errorf("dry run %v: %s planned with %q, want one command that checks the build", dryRun, h, plans[h])
			}
		}
		if len(plans["w1"]) != 2 || strings.Contains(plans["w1"][1], "--expect-sha256") {
			t.Errorf("dry run %v: w1 planned with %q, want the check, then a plan with this build", dryRun, plans["w1"])
		}
	}
}

// TestUpRenewsCertificates: up reads every control plane's expiry; the plan names each one
// whose earliest certificate has less than renew_before left; a real run renews them one
// at a time, in file order, and its report names them; a failed renewal stops the ones
// after it; renew_before "0s" turns it off.
func TestUpRenewsCertificates(t *testing.T) {
	day := 24 * time.Hour
	newLab := func(renewBefore *config.Duration) *upLab {
		c := testutil.Cluster(t)
		c.Certificates.RenewBefore = renewBefore
		l := newUpLabOf(t, c, true, cpNode("cp1"), cpNode("cp2"), workerNode("w1"), workerNode("w2"))
		l.expiry["cp1"] = expiryRows(l.clock.Add(10 * day))
		l.expiry["cp2"] = expiryRows(l.clock.Add(time.Hour))
		return l
	}
	renewed := func(rep *fleet.Report) []string {
		var out []string
		for _, h := range rep.Hosts {
			if h.CertsRenewal != nil && h.CertsRenewal.Due {
				out = append(out, fmt.Sprintf("%s due renewed=%t", h.Host, h.CertsRenewal.Renewed))
			}
		}
		return out
	}

	l := newLab(nil)
	rep, err := l.run(l.data(true), "")
	if err != nil {
		t.Fatal(err)
	}
	if runs := l.kforgeRuns(); len(runs) != 0 {
		t.Errorf("a dry run ran %v", runs)
	}
	for _, want := range []string{"renews certificates on cp1 (earliest apiserver expires in 10d 0h)", "renews certificates on cp2 (earliest apiserver expires in 1h 0m)"} {
		if !strings.Contains(l.out.String(), want) {
			t.Errorf("the plan lacks %q:\n%s", want, l.out.String())
		}
	}
	if diff := cmp.Diff([]string{"cp1 due renewed=false", "cp2 due renewed=false"}, renewed(rep)); diff != "" {
		t.Errorf("dry run report (-want +got):\n%s", diff)
	}

	l = newLab(nil)
	l.expiry["cp1"] = expiryRows(l.clock.Add(100 * day))
	rep, err = l.run(l.data(false), "")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"cp2: certs"}, l.kforgeRuns()); diff != "" {
		t.Errorf("renewals (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"cp2 due renewed=true"}, renewed(rep)); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if got := rep.RenewedNames(); got != "cp2" {
		t.Errorf("summary names %q, want cp2", got)
	}

	l = newLab(nil)
	l.hosts["cp1"].Rules = append([]testutil.Rule{{Match: regexp.MustCompile(`^kforge certs renew all --if-due`),
		Err: errors.New("kube-apiserver did not become healthy")}}, l.hosts["cp1"].Rules...)
	rep, err = l.run(l.data(false), "")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"cp1: certs"}, l.kforgeRuns()); diff != "" {
		t.Errorf("after cp1's renewal failed (-want +got):\n%s", diff)
	}
	if rep.Hosts[0].Result != fleet.ResultFailed || rep.RenewedNames() != "" {
		t.Errorf("cp1 %s, renewed %q; want cp1 failed and nothing renewed", rep.Hosts[0].Result, rep.RenewedNames())
	}

	l = newLab(&config.Duration{})
	if _, err := l.run(l.data(false), ""); err != nil {
		t.Fatal(err)
	}
	if runs := l.kforgeRuns(); len(runs) != 0 {
		t.Errorf("with renew_before 0s up ran %v", runs)
	}
}
