package phases

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kforge/kforge/fleet"
	"github.com/kforge/kforge/internal/testutil"
)

// certsOutput is what a host prints for readCerts' "check certificate expiry": its clock
// and, for each path, a certificate that expires at the given time.
func certsOutput(t *testing.T, ca *testutil.CA, now time.Time, notAfter map[string]time.Time) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "now %d\n", now.Unix())
	for p, na := range notAfter {
		cert, _ := ca.Sign(&x509.Certificate{Subject: pkix.Name{CommonName: p}, NotBefore: na.Add(-time.Hour), NotAfter: na})
		fmt.Fprintf(&b, "file %s\n%s", p, cert)
	}
	return b.String()
}

// expiredLab is a cluster of cp1, cp2, w1, w2 that was off while its certificates
// expired: the apiservers' of both control planes and w1's kubelet client certificate. A
// `kforge certs renew` on a control plane, and a kubelet restart on w1, make them valid.
func expiredLab(t *testing.T) *upLab {
	t.Helper()
	l := newUpLab(t, true, cpNode("cp1"), cpNode("cp2"), workerNode("w1"), workerNode("w2"))
	ca := testutil.NewCA(t, "kubernetes", 24*time.Hour)
	now := time.Now()
	const apiserver, kubeletClient = "/etc/kubernetes/pki/apiserver.crt", "/var/lib/kubelet/pki/kubelet-client-current.pem"
	expired := map[string]time.Time{apiserver: now.Add(-3*time.Hour - time.Minute)}
	valid := map[string]time.Time{apiserver: now.Add(time.Hour)}
	for _, cp := range []string{"cp1", "cp2"} {
		l.certs[cp] = certsOutput(t, ca, now, expired)
		l.hosts[cp].Rules = append([]testutil.Rule{{Match: regexp.MustCompile(`^kforge certs renew all `), Reply: func(string) (string, error) {
			l.certs[cp] = certsOutput(t, ca, now, valid)
			return "[certs-renew] done\n", nil
		}}}, l.hosts[cp].Rules...)
	}
	l.certs["w1"] = certsOutput(t, ca, now, map[string]time.Time{kubeletClient: now.Add(-2*time.Hour - time.Minute)})
	l.hosts["w1"].Rules = append([]testutil.Rule{{Match: regexp.MustCompile(`^restart the kubelet$`), Reply: func(string) (string, error) {
		l.certs["w1"] = certsOutput(t, ca, now, map[string]time.Time{kubeletClient: now.Add(time.Hour)})
		return "", nil
	}}}, l.hosts["w1"].Rules...)
	return l
}

// TestUpRecoversAnExpiredCluster: one up renews the control planes offline, one at a
// time, before it asks the API anything, then re-bootstraps the expired kubelet with a
// bootstrap-kubelet.conf it removes afterwards, and inits nothing; a second run finds
// nothing to recover.
func TestUpRecoversAnExpiredCluster(t *testing.T) {
	l := expiredLab(t)
	rep, err := l.run(l.data(false), "")
	if err != nil {
		t.Fatalf("up: %v\n%s", err, l.out.String())
	}
	events := l.journal.Events()
	at := func(event string) int {
		return slices.IndexFunc(events, func(e string) bool { return strings.HasPrefix(e, event) })
	}
	order := []string{"cp1: kforge certs renew all", "cp2: kforge certs renew all", "w1: restart the kubelet", "w1: remove /etc/kubernetes/bootstrap-kubelet.conf"}
	for i, e := range order {
		if at(e) < 0 {
			t.Fatalf("no %q in the hosts' journal:\n%s", e, strings.Join(events, "\n"))
		}
		if i > 0 && at(e) < at(order[i-1]) {
			t.Errorf("%q before %q", e, order[i-1])
		}
	}
	// Both control planes expired: etcd has no quorum until the second renews, so the first
	// renewal does not wait for its apiserver; the second does.
	if i := at("cp1: kforge certs renew all"); !strings.HasSuffix(events[i], "--skip-phases wait-control-plane") {
		t.Errorf("cp1's renewal waits for its apiserver, which cannot be ready before cp2's etcd is renewed: %s", events[i])
	}
	if i := at("cp2: kforge certs renew all"); strings.Contains(events[i], "--skip-phases") {
		t.Errorf("cp2's renewal does not wait: %s", events[i])
	}
	if first := at("cp1: read admin.conf"); first >= 0 && first < at("cp1: kforge certs renew all") {
		t.Errorf("admin.conf read before the renewal: the API was asked with expired certificates")
	}
	if runs := l.kforgeRuns(); slices.ContainsFunc(runs, func(r string) bool { return strings.HasSuffix(r, ": init") || strings.HasSuffix(r, ": join") }) {
		t.Errorf("kforge runs %v: an expired cluster must be renewed, never re-initialised or joined", runs)
	}
	f, ok := l.hosts["w1"].File("/etc/kubernetes/bootstrap-kubelet.conf")
	if !ok || !strings.Contains(string(f), "token:") {
		t.Errorf("w1 was given no bootstrap-kubelet.conf with a token:\n%s", f)
	}
	token := regexp.MustCompile(`token: ([a-z0-9]{6}\.[a-z0-9]{16})`).FindStringSubmatch(string(f))
	if token == nil {
		t.Fatalf("no bootstrap token in w1's bootstrap-kubelet.conf:\n%s", f)
	}
	if all := strings.Join(events, "\n") + l.out.String(); strings.Contains(all, token[1]) || strings.Contains(all, strings.Split(token[1], ".")[1]) {
		t.Error("the bootstrap token reached a command line or the output")
	}
	if _, err := l.cs.CoreV1().Secrets("kube-system").Get(t.Context(), "bootstrap-token-"+strings.Split(token[1], ".")[0], metav1.GetOptions{}); err == nil {
		t.Error("the re-bootstrap token outlived the run")
	}
	if rep.Recovery == nil || len(rep.Recovery.ControlPlanes) != 2 || len(rep.Recovery.Kubelets) != 1 {
		t.Fatalf("report's recovery %+v, want cp1, cp2 and w1's kubelet", rep.Recovery)
	}
	for _, want := range []string{
		"certificates expired on cp1 (apiserver expired 3h ago): renews offline, restarts static pods",
		"kubelet client certificate of w1 expired 2h ago: re-bootstraps",
		"[cp2] certificates renewed offline, static pods restarted, apiserver ready",
		"[w1] kubelet re-bootstrapped",
	} {
		if !strings.Contains(l.out.String(), want) {
			t.Errorf("output does not say %q:\n%s", want, l.out.String())
		}
	}
	if len(rep.AdminKubeconfig) == 0 {
		t.Error("no admin kubeconfig in the report: the operator's is not refreshed")
	}
	if err := rep.Failed(); err != nil {
		t.Error(err)
	}

	// Run again: every certificate is valid now.
	l.out.Reset()
	before := len(l.journal.Events())
	rep, err = l.run(l.data(false), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range l.journal.Events()[before:] {
		if strings.Contains(e, "certs renew") || strings.Contains(e, "restart the kubelet") {
			t.Errorf("second run recovered again: %s", e)
		}
	}
	if rep.Recovery != nil {
		t.Errorf("second run's recovery %+v, want none", rep.Recovery)
	}
}

// TestUpDryRunPlansTheRecovery: the dry run's plan and its JSON report say what would be
// renewed and re-bootstrapped; nothing runs.
func TestUpDryRunPlansTheRecovery(t *testing.T) {
	l := expiredLab(t)
	rep, err := l.run(l.data(true), "")
	if err != nil {
		t.Fatalf("up --dry-run: %v\n%s", err, l.out.String())
	}
	if runs := l.kforgeRuns(); len(runs) != 0 {
		t.Errorf("a dry run ran kforge: %v", runs)
	}
	if !strings.Contains(l.out.String(), "[cp1] certificates expired on cp1 (apiserver expired 3h ago): renews offline, restarts static pods") {
		t.Errorf("the plan does not name cp1's renewal:\n%s", l.out.String())
	}
	if h := hostReport(rep, "cp1"); h.Action != fleet.ActionRenewCerts || h.Result != fleet.ResultPlanned {
		t.Errorf("cp1: %+v, want a planned renewal", h)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Recovery fleet.Recovery `json:"certificate_recovery"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	var notes []string
	for _, r := range append(got.Recovery.ControlPlanes, got.Recovery.Kubelets...) {
		notes = append(notes, r.Host+": "+r.Note)
	}
	want := []string{
		"cp1: certificates expired on cp1 (apiserver expired 3h ago): renews offline, restarts static pods",
		"cp2: certificates expired on cp2 (apiserver expired 3h ago): renews offline, restarts static pods",
		"w1: kubelet client certificate of w1 expired 2h ago: re-bootstraps",
	}
	if !slices.Equal(want, notes) {
		t.Errorf("-o json certificate_recovery notes:\n%s\nwant:\n%s", strings.Join(notes, "\n"), strings.Join(want, "\n"))
	}
}

// TestUpStopsAtAFailedRenewal: a renewal that fails on cp1 leaves cp2 alone and says to
// run up again.
func TestUpStopsAtAFailedRenewal(t *testing.T) {
	l := expiredLab(t)
	l.hosts["cp1"].Rules = append([]testutil.Rule{{Match: regexp.MustCompile(`^kforge certs renew all `), Err: errors.New("exit status 1")}}, l.hosts["cp1"].Rules...)
	rep, err := l.run(l.data(false), "")
	if err == nil || !strings.Contains(err.Error(), "run kforge up again") {
		t.Fatalf("up: %v, want the renewal's failure, saying to run up again", err)
	}
	if slices.ContainsFunc(l.journal.Events(), func(e string) bool { return strings.HasPrefix(e, "cp2: kforge certs renew") }) {
		t.Error("cp2 renewed after cp1's renewal failed")
	}
	if h := hostReport(rep, "cp1"); h.Result != fleet.ResultFailed {
		t.Errorf("cp1: %+v, want failed", h)
	}
}
