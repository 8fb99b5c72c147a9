//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kforge/kforge/e2e/lab"
	"github.com/kforge/kforge/e2e/testbed"
	"github.com/kforge/kforge/fleet"
)

// expiredValidity is the lifetime of every leaf certificate, kubeconfig client certificate
// and (through the controller-manager's --cluster-signing-duration) every certificate the
// kubelets rotate to, in the expired-cluster scenario: short enough for the test to wait
// it out, long enough for up to finish with the certificates still valid.
const expiredValidity = 6 * time.Minute

// testExpiredClusterComesBack is the "Expired" scenario of issue 12: a cluster whose
// certificates expire while it is powered off is brought back by one kforge up.
//
// cp and worker must be clean hosts (never joined, or reset). kforge up makes them a
// cluster of one control plane and one worker with expiredValidity certificates; the
// test powers both off, waits until every certificate has expired (any certificate was
// issued before the power-off, so none outlives power-off + expiredValidity), powers them
// on, checks that the cluster does not let anyone in (the kubelets cannot start with an
// expired client certificate, so there is no apiserver at all, or one that refuses its
// expired certificates) and that kforge status names the expired certificates, then runs
// one kforge up and measures the time from its start to every node Ready. A second up
// finds nothing to recover. It returns the timing lines for TestUp's summary.
func testExpiredClusterComesBack(t *testing.T, ctx context.Context, l *lab.Lab, cp, worker testbed.Host, dir, knownHosts string) []string {
	t.Helper()
	sub := filepath.Join(dir, "expired")
	if err := os.MkdirAll(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(sub, "expired.toml")
	text := l.UpConfig("expired", "", 1, cp, worker) + fmt.Sprintf(
		"[certificates]\ncert_validity = %q\nrenew_before = \"0s\"\n\n[controller_manager.extra_args]\ncluster-signing-duration = %q\n",
		expiredValidity.String(), expiredValidity.String())
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := filepath.Join(sub, "admin.conf") // kforgeUp's --kubeconfig-out, beside the file
	var timings []string

	made := kforgeUp(t, ctx, l, cfg, knownHosts, nil)
	if made.err != nil {
		t.Fatalf("kforge up of the short-lived cluster: %v\n%s", made.err, made.stderr)
	}
	cs := clientFromFile(t, admin)
	for _, n := range []string{cp.Name, worker.Name} {
		waitFor(t, ctx, n+" Ready", 3*time.Minute, func() error { return nodeReady(ctx, cs, n) })
	}
	cpNode := &node{t: t, h: cp, lab: l}
	if got := cpNode.sh(ctx, "grep -o 'cluster-signing-duration=[^\"]*' /etc/kubernetes/manifests/kube-controller-manager.yaml"); !strings.Contains(got, "6m") {
		t.Fatalf("the controller-manager signs without the short duration: %q", got)
	}

	// Power off, and let every certificate expire while the cluster is off.
	for _, h := range []testbed.Host{worker, cp} {
		if err := h.PowerOff(ctx); err != nil {
			t.Fatal(err)
		}
	}
	offAt := time.Now()
	until := offAt.Add(expiredValidity + 30*time.Second)
	t.Logf("hosts off at %s; waiting until %s for every certificate to expire", offAt.Format(time.TimeOnly), until.Format(time.TimeOnly))
	select {
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	case <-time.After(time.Until(until)):
	}
	for _, h := range []testbed.Host{cp, worker} {
		if err := h.PowerOn(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// Nobody gets in: no apiserver (its kubelet does not start), or one that refuses.
	time.Sleep(20 * time.Second) // give a kubelet that could start the time to start the apiserver
	_, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	switch {
	case err == nil:
		t.Fatal("the API let the expired admin kubeconfig in")
	case strings.Contains(err.Error(), "certificate has expired"), strings.Contains(err.Error(), "connection refused"),
		strings.Contains(err.Error(), "Unauthorized"), errors.Is(err, context.DeadlineExceeded):
		t.Logf("the expired cluster refuses: %v", err)
	default:
		t.Fatalf("the expired cluster answers %v; want an expired certificate, a refused connection or a 401", err)
	}
	st, stderr, err := kforgeStatus(t, ctx, l, cfg, knownHosts)
	if err == nil || st.OK {
		t.Errorf("kforge status of the expired cluster: exit %v, OK %v; want problems\n%s", err, st.OK, stderr)
	}
	for _, h := range st.Hosts {
		if len(h.ExpiredCerts) == 0 || h.CertExpiry == nil || !h.CertExpiry.Expired {
			t.Errorf("kforge status shows no expired certificate on %s: %+v", h.Host, h)
		}
	}
	if !strings.Contains(strings.Join(st.Problems, "\n"), "run kforge up") {
		t.Errorf("kforge status does not say to run kforge up:\n%s", strings.Join(st.Problems, "\n"))
	}

	// The plan, then one up.
	plan := kforgeUp(t, ctx, l, cfg, knownHosts, nil, "--dry-run")
	if plan.err != nil {
		t.Fatalf("kforge up --dry-run of the expired cluster: %v\n%s", plan.err, plan.stderr)
	}
	if r := plan.report.Recovery; r == nil || len(r.ControlPlanes) != 1 || r.ControlPlanes[0].Host != cp.Name {
		t.Fatalf("the dry run's plan does not renew %s: %+v\n%s", cp.Name, plan.report.Recovery, plan.stderr)
	}
	if want := "certificates expired on " + cp.Name + " ("; !strings.Contains(plan.stderr, want) {
		t.Errorf("the plan does not say %q:\n%s", want, plan.stderr)
	}
	upStart := time.Now()
	back := kforgeUp(t, ctx, l, cfg, knownHosts, nil)
	if back.err != nil {
		t.Fatalf("kforge up of the expired cluster: %v\n%s", back.err, back.stderr)
	}
	r := back.report.Recovery
	if r == nil || len(r.ControlPlanes) != 1 || len(r.Kubelets) != 1 || r.Kubelets[0].Host != worker.Name {
		t.Errorf("up's recovery %+v, want %s renewed and %s's kubelet re-bootstrapped", r, cp.Name, worker.Name)
	}
	if init := back.host(cp.Name); init.Action == fleet.ActionInit {
		t.Fatalf("up ran init on the expired cluster's control plane: %+v", init)
	}
	cs = clientFromFile(t, admin) // the refreshed admin kubeconfig
	for _, n := range []string{cp.Name, worker.Name} {
		waitFor(t, ctx, n+" Ready after the recovery", 3*time.Minute, func() error { return nodeReady(ctx, cs, n) })
	}
	timings = append(timings,
		fmt.Sprintf("expired cluster: kforge up took %s; all nodes Ready %s after it started",
			back.took.Round(100*time.Millisecond), time.Since(upStart).Round(100*time.Millisecond)))
	if m := secretRE.FindString(back.stdout + back.stderr); m != "" {
		t.Errorf("up's output holds a secret-looking string %q", m)
	}
	secrets, err := cs.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets.Items {
		if strings.HasPrefix(s.Name, "bootstrap-token-") {
			t.Errorf("re-bootstrap token %s outlived the run", s.Name)
		}
	}
	workerNode := &node{t: t, h: worker, lab: l}
	if got := strings.TrimSpace(workerNode.sh(ctx, "ls /etc/kubernetes/bootstrap-kubelet.conf 2>/dev/null || echo gone")); got != "gone" {
		t.Errorf("%s keeps bootstrap-kubelet.conf after its re-bootstrap", worker.Name)
	}

	// Converged: a second up recovers nothing (every certificate has minutes left).
	again := kforgeUp(t, ctx, l, cfg, knownHosts, nil)
	if again.err != nil || again.report.Recovery != nil {
		t.Errorf("second up: %v, recovery %+v; want nothing to recover\n%s", again.err, again.report.Recovery, again.stderr)
	}
	return timings
}
