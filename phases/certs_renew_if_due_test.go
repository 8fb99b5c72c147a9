package phases

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/service"
)

// checkOnceWaiter is noWait, except that WaitFor runs its check once and returns what it
// says: the lease is really taken, and a held lease is an error at once.
type checkOnceWaiter struct{ noWait }

func (checkOnceWaiter) WaitFor(ctx context.Context, _ *Data, _ string, check func(context.Context) error) error {
	return check(ctx)
}

func lease(holder string, renewed time.Time) *coordinationv1.Lease {
	secs := int32(CertsRenewLeaseDuration / time.Second)
	at := metav1.NewMicroTime(renewed)
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: CertsRenewLeaseName, Namespace: CertsRenewLeaseNamespace},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, RenewTime: &at},
	}
}

// TestRenewIfDue runs the --if-due check on an init host with fixed clocks: it renews only
// inside renew_before, refuses when the CA is inside it, takes and releases the lease, and
// records every run.
func TestRenewIfDue(t *testing.T) {
	minted := time.Now()
	day := 24 * time.Hour
	tests := []struct {
		name        string
		at          time.Duration // after the certificates were minted
		renewBefore time.Duration
		lease       *coordinationv1.Lease
		offline     bool
		wantOutcome string
		wantRenewed bool
		wantErr     error
		wantMessage string
	}{
		{name: "fresh", at: time.Hour, renewBefore: 30 * day, wantOutcome: certs.OutcomeNotDue, wantMessage: "not due: earliest "},
		{name: "inside renew_before", at: 340 * day, renewBefore: 30 * day, wantOutcome: certs.OutcomeRenewed, wantRenewed: true, wantMessage: "renewed 11 certificates and kubeconfigs (due: earliest "},
		{name: "expired", at: 400 * day, renewBefore: 30 * day, wantOutcome: certs.OutcomeRenewed, wantRenewed: true},
		{name: "expired lease of another host is taken", at: 340 * day, renewBefore: 30 * day, lease: lease("cp2", minted.Add(339*day)), wantOutcome: certs.OutcomeRenewed, wantRenewed: true},
		{name: "lease held by another host", at: 340 * day, renewBefore: 30 * day, lease: lease("cp2", minted.Add(340*day-time.Minute)), wantOutcome: certs.OutcomeFailed, wantErr: errLeaseHeld},
		{name: "offline renews without the lease", at: 400 * day, renewBefore: 30 * day, lease: lease("cp2", minted.Add(400*day-time.Minute)), offline: true, wantOutcome: certs.OutcomeRenewed, wantRenewed: true},
		{name: "CA inside renew_before", at: 9*365*day + 200*day, renewBefore: 300 * day, wantOutcome: certs.OutcomeRefused, wantErr: certs.ErrCAExpiring},
		{name: "off", at: 400 * day, renewBefore: 0, wantOutcome: certs.OutcomeDisabled, wantMessage: "certificates.renew_before is 0s: automatic renewal is off"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := initHost(t)
			c := *d.Cluster
			c.Certificates.RenewBefore = &config.Duration{Duration: tc.renewBefore}
			d.Cluster = &c
			now := minted.Add(tc.at)
			d.Now = func() time.Time { return now }
			d.Waiter = checkOnceWaiter{}
			cs := fake.NewClientset()
			if tc.lease != nil {
				cs = fake.NewClientset(tc.lease)
			}
			d.Client = func() (kubernetes.Interface, error) { return cs, nil }
			if tc.offline {
				d.Client = func() (kubernetes.Interface, error) { return nil, errors.New("connection refused") }
			}
			st, err := RenewIfDue(t.Context(), d, day)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("RenewIfDue error = %v, want %v", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if st.Outcome != tc.wantOutcome || (len(st.Renewed) > 0) != tc.wantRenewed || !strings.HasPrefix(st.Message, tc.wantMessage) {
				t.Errorf("RenewIfDue = %s, renewed %v, %q; want %s, renewed %t, message starting %q", st.Outcome, st.Renewed, st.Message, tc.wantOutcome, tc.wantRenewed, tc.wantMessage)
			}
			if !st.LastRun.Equal(now) || !st.NextCheck.Equal(now.Add(day)) {
				t.Errorf("last run %s, next check %s; want %s and a day later", st.LastRun, st.NextCheck, now)
			}
			rec, ok, err := certs.ReadRenewalState(d.Path(CertsRenewalState))
			if err != nil || !ok {
				t.Fatalf("record: %t, %v", ok, err)
			}
			if diff := cmp.Diff(st, rec, cmpTimes); diff != "" {
				t.Errorf("recorded state (-returned +recorded):\n%s", diff)
			}
			if tc.wantRenewed {
				if !st.EarliestNotAfter.After(now.Add(tc.renewBefore)) {
					t.Errorf("after the renewal the earliest certificate, %s, expires %s: still inside renew_before", st.Earliest, st.EarliestNotAfter)
				}
				if !tc.offline {
					l, err := cs.CoordinationV1().Leases(CertsRenewLeaseNamespace).Get(t.Context(), CertsRenewLeaseName, metav1.GetOptions{})
					if err != nil {
						t.Fatal(err)
					}
					if h := l.Spec.HolderIdentity; h == nil || *h != "" {
						t.Errorf("lease holder after the renewal = %v, want released", h)
					}
				}
			}
			if tc.wantErr == errLeaseHeld {
				if len(d.Renew.Renewed) != 0 {
					t.Errorf("renewed %v while another control plane held the lease", d.Renew.Renewed)
				}
			}
		})
	}
}

var cmpTimes = cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })

// fakeScheduler records what installCertsRenewal asks of the service manager.
type fakeScheduler struct {
	service.DryRun
	installed map[string]service.Timer
	calls     []string
}

func (f *fakeScheduler) Kind() string { return "systemd" }
func (f *fakeScheduler) Schedule(_ context.Context, t service.Timer) (bool, error) {
	f.calls = append(f.calls, "schedule")
	if old, ok := f.installed[t.Name]; ok && cmp.Equal(old, t) {
		return false, nil
	}
	f.installed[t.Name] = t
	return true, nil
}
func (f *fakeScheduler) Unschedule(_ context.Context, name string) (bool, error) {
	f.calls = append(f.calls, "unschedule")
	_, ok := f.installed[name]
	delete(f.installed, name)
	return ok, nil
}
func (f *fakeScheduler) Scheduled(_ context.Context, name string) (bool, bool, error) {
	_, ok := f.installed[name]
	return ok, ok, nil
}

// TestInstallCertsRenewal: the check is installed on the schedule renew_before gives, a
// second run says "using existing", a changed renew_before updates it, and "0s" removes it
// and its configuration.
func TestInstallCertsRenewal(t *testing.T) {
	var out strings.Builder
	d := newTestData(t, testCluster(t, nil), "cp1", &out, nil)
	sched := &fakeScheduler{installed: map[string]service.Timer{}}
	d.Services, d.Kforge = sched, "/usr/local/bin/kforge"
	run := func(renewBefore *config.Duration) string {
		t.Helper()
		c := *d.Cluster
		c.Certificates.RenewBefore = renewBefore
		d.Cluster = &c
		out.Reset()
		if err := installCertsRenewal(t.Context(), d); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	first := run(nil)
	want := service.Timer{
		Name:        CertsRenewalName,
		Description: "kforge: renew this control plane's certificates when less than certificates.renew_before is left",
		Command:     []string{"/usr/local/bin/kforge", "certs", "renew", "all", "--if-due", "-f", CertsRenewalConfig, "--node", "cp1"},
		Loop:        []string{"/usr/local/bin/kforge", "certs", "renew-loop", "--every", "24h0m0s", "--random-delay", "3h0m0s", "-f", CertsRenewalConfig, "--node", "cp1"},
		Every:       24 * time.Hour,
		RandomDelay: 3 * time.Hour,
	}
	if diff := cmp.Diff(want, sched.installed[CertsRenewalName]); diff != "" {
		t.Errorf("installed timer (-want +got):\n%s", diff)
	}
	if !strings.Contains(first, "created "+CertsRenewalConfig) || !strings.Contains(first, "installed the systemd timer kforge-certs-renew.timer") {
		t.Errorf("first run said:\n%s", first)
	}
	cfg, err := config.Load(d.Path(CertsRenewalConfig))
	if err != nil {
		t.Fatalf("the check's configuration does not load: %v", err)
	}
	if _, ok := cfg.HostByName("cp1"); !ok {
		t.Error("the check's configuration does not list this host")
	}
	if st, _ := os.Stat(d.Path(CertsRenewalConfig)); st == nil || st.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v, want mode 0600", CertsRenewalConfig, st)
	}
	if second := run(nil); !strings.Contains(second, "using existing "+CertsRenewalConfig) || !strings.Contains(second, "using existing systemd timer") {
		t.Errorf("second run said:\n%s", second)
	}
	if third := run(&config.Duration{Duration: 2 * 24 * time.Hour}); !strings.Contains(third, "updated "+CertsRenewalConfig) || !strings.Contains(third, "installed the systemd timer") {
		t.Errorf("run with a new renew_before said:\n%s", third)
	}
	if got := sched.installed[CertsRenewalName].Every; got != 12*time.Hour {
		t.Errorf("with renew_before 2d the check runs every %s, want 12h", got)
	}
	off := run(&config.Duration{})
	if !strings.Contains(off, "automatic renewal is off; removed kforge-certs-renew") || len(sched.installed) != 0 {
		t.Errorf("renew_before 0s said:\n%s\ninstalled: %v", off, sched.installed)
	}
	if _, err := os.Stat(d.Path(CertsRenewalConfig)); !os.IsNotExist(err) {
		t.Errorf("%s after renew_before 0s: %v, want it removed", CertsRenewalConfig, err)
	}
	if again := run(&config.Duration{}); !strings.Contains(again, "nothing to remove") {
		t.Errorf("renew_before 0s again said:\n%s", again)
	}

}

// TestCertsRenewalStatus: status shows renew_before, the installed and active check, the
// last run's record and the next run, and the earliest expiry.
func TestCertsRenewalStatus(t *testing.T) {
	d := initHost(t)
	now := time.Now().Add(time.Hour)
	d.Now = func() time.Time { return now }
	sched := &fakeScheduler{installed: map[string]service.Timer{}}
	d.Services, d.Kforge = sched, "/usr/local/bin/kforge"

	s, err := CertsRenewalStatus(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	if s.Installed || s.Active || s.LastRun != nil || !s.NextRun.IsZero() || s.RenewBefore != "30d 0h" || s.Earliest == "" || s.EarliestResidualSeconds < 364*24*3600 {
		t.Errorf("before install: %+v", s)
	}
	if err := installCertsRenewal(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	if _, err := RenewIfDue(t.Context(), d, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	s, err = CertsRenewalStatus(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Installed || !s.Active || s.Check != "systemd timer kforge-certs-renew.timer" || s.LastRun == nil ||
		s.LastRun.Outcome != certs.OutcomeNotDue || !s.NextRun.Equal(now.Add(24*time.Hour)) {
		t.Errorf("after install and a check: %+v, last run %+v", s, s.LastRun)
	}
}
