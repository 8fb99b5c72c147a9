package certs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCheckDue(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	row := func(name, signer string, left time.Duration) ExpiryRow {
		return ExpiryRow{Name: name, Path: "/pki/" + name, Signer: signer, NotAfter: now.Add(left)}
	}
	cas := []ExpiryRow{row(NameCA, "", 3000*day), row("etcd-ca", "", 3000*day)}
	tests := []struct {
		name        string
		rows        []ExpiryRow
		renewBefore time.Duration
		wantDue     bool
		wantFirst   string
		wantString  string
		wantCA      string
	}{
		{
			name:        "all far",
			rows:        append([]ExpiryRow{row("apiserver", NameCA, 300*day), row("admin.conf", NameCA, 200*day)}, cas...),
			renewBefore: 30 * day,
			wantFirst:   "admin.conf",
			wantString:  "not due: earliest admin.conf expires in 200d 0h (renew_before 30d 0h)",
		},
		{
			name:        "one inside the window",
			rows:        append([]ExpiryRow{row("apiserver", NameCA, 300*day), row("etcd-peer", "etcd-ca", 29*day)}, cas...),
			renewBefore: 30 * day,
			wantDue:     true,
			wantFirst:   "etcd-peer",
			wantString:  "due: earliest etcd-peer expires in 29d 0h (renew_before 30d 0h)",
		},
		{
			name:        "expired",
			rows:        append([]ExpiryRow{row("apiserver", NameCA, -2*time.Hour)}, cas...),
			renewBefore: 30 * day,
			wantDue:     true,
			wantFirst:   "apiserver",
			wantString:  "due: earliest apiserver expired 2h 0m ago (renew_before 30d 0h)",
		},
		{
			name:        "exactly renew_before left is not due",
			rows:        append([]ExpiryRow{row("apiserver", NameCA, 30*day)}, cas...),
			renewBefore: 30 * day,
			wantFirst:   "apiserver",
			wantString:  "not due: earliest apiserver expires in 30d 0h (renew_before 30d 0h)",
		},
		{
			name:        "renew_before zero never renews",
			rows:        append([]ExpiryRow{row("apiserver", NameCA, -time.Hour)}, row(NameCA, "", -time.Hour)),
			renewBefore: 0,
			wantFirst:   "apiserver",
			wantString:  "not due: earliest apiserver expired 1h 0m ago (renew_before 0m)",
		},
		{
			name: "missing and external leaves are left out",
			rows: append([]ExpiryRow{
				{Name: "super-admin.conf", Signer: NameCA, Missing: true},
				{Name: "front-proxy-client", Signer: "front-proxy-ca", External: true, NotAfter: now.Add(day)},
				row("apiserver", NameCA, 100*day),
			}, cas...),
			renewBefore: 30 * day,
			wantFirst:   "apiserver",
			wantString:  "not due: earliest apiserver expires in 100d 0h (renew_before 30d 0h)",
		},
		{
			name:        "CA inside the window",
			rows:        []ExpiryRow{row("apiserver", NameCA, 5*day), row(NameCA, "", 20*day)},
			renewBefore: 30 * day,
			wantCA:      NameCA,
		},
		{
			name:        "CA expired",
			rows:        []ExpiryRow{row("etcd-server", "etcd-ca", -day), row("etcd-ca", "", -day)},
			renewBefore: time.Hour,
			wantCA:      "etcd-ca",
		},
		{
			name:        "a CA that signs nothing here does not matter",
			rows:        append([]ExpiryRow{row("apiserver", NameCA, 100*day)}, row(NameCA, "", 3000*day), row("front-proxy-ca", "", day)),
			renewBefore: 30 * day,
			wantFirst:   "apiserver",
			wantString:  "not due: earliest apiserver expires in 100d 0h (renew_before 30d 0h)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CheckDue(tc.rows, tc.renewBefore, now)
			if tc.wantCA != "" {
				var ce *CAExpiringError
				if !errors.As(err, &ce) || ce.Name != tc.wantCA || !errors.Is(err, ErrCAExpiring) {
					t.Fatalf("CheckDue error = %v, want a CAExpiringError for %s", err, tc.wantCA)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Due != tc.wantDue || got.Earliest.Name != tc.wantFirst || got.String() != tc.wantString {
				t.Errorf("CheckDue = due %t, earliest %q, %q; want due %t, earliest %q, %q", got.Due, got.Earliest.Name, got.String(), tc.wantDue, tc.wantFirst, tc.wantString)
			}
		})
	}
}

func TestCAExpiringErrorSaysWhatToDo(t *testing.T) {
	err := &CAExpiringError{Name: NameCA, Path: "/etc/kubernetes/pki/ca.crt", Left: 10 * 24 * time.Hour, RenewBefore: 30 * 24 * time.Hour}
	want := "CA ca (/etc/kubernetes/pki/ca.crt) expires in 10d 0h, within certificates.renew_before 30d 0h: certificates it signs cannot outlive it, " +
		"and kforge never makes a new CA (nothing that trusts the old one would trust it). Rotate the CA by hand " +
		"(https://kubernetes.io/docs/tasks/tls/manual-rotation-of-ca-certificates/) before it expires; " +
		"until then, `kforge certs renew all` still renews its leaves up to the CA's own expiry"
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("message (-want +got):\n%s", diff)
	}
}

func TestRenewalState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "var", "lib", "kforge", "certs-renew.json")
	if _, ok, err := ReadRenewalState(path); ok || err != nil {
		t.Fatalf("ReadRenewalState of no file = %t, %v; want false, nil", ok, err)
	}
	at := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	want := RenewalState{LastRun: at, Outcome: OutcomeRenewed, Message: "due", Renewed: []string{"apiserver", "admin.conf"},
		Earliest: "apiserver", EarliestNotAfter: at.Add(time.Hour), NextCheck: at.Add(24 * time.Hour)}
	if err := WriteRenewalState(path, want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := ReadRenewalState(path)
	if err != nil || !ok {
		t.Fatalf("ReadRenewalState = %t, %v", ok, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %o, want 0600", st.Mode().Perm())
	}
	if err := os.WriteFile(path, []byte("{half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadRenewalState(path); err == nil {
		t.Error("ReadRenewalState of a damaged file: no error")
	}
}

func TestCheckInterval(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct{ renewBefore, want time.Duration }{
		{30 * day, 24 * time.Hour},
		{4 * day, 24 * time.Hour},
		{2 * day, 12 * time.Hour},
		{4 * time.Minute, time.Minute},
		{time.Minute, time.Minute},
	} {
		if got := CheckInterval(tc.renewBefore); got != tc.want {
			t.Errorf("CheckInterval(%s) = %s, want %s", tc.renewBefore, got, tc.want)
		}
	}
}
