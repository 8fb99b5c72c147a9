//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/e2e/lab"
	"github.com/kforge/kforge/e2e/testbed"
	"github.com/kforge/kforge/fleet"
	"github.com/kforge/kforge/phases"
)

// Lifetimes of the automatic renewal scenario: certificates live six minutes and are due
// four minutes before they expire, so each becomes due two minutes after it is signed; the
// check then runs every minute (a quarter of renew_before), with up to 7.5 s of random
// delay.
const (
	autoCertValidity = "6m"
	autoRenewBefore  = "4m"
)

// certsAutoRenewal is issue 12's "renewal under load" on a running cluster whose control
// planes are cps, brought up by `kforge up -f cfg` (admin is its admin kubeconfig):
//
//  1. up with the same file plus short lifetimes: reconfigure writes the new
//     /etc/kforge/certs-renew.toml on every control plane and restarts its check (the
//     supervised renew-loop on namespace hosts, the timer on systemd hosts) on the new
//     schedule; nothing is due yet, so up's renew-certs phase renews nothing;
//  2. `kforge certs renew all` on each control plane, one at a time, so that its
//     certificates have the short lifetime;
//  3. no operator action: within a few minutes the automatic check renews every leaf and
//     kubeconfig client certificate on every control plane (each NotAfter moves past the
//     one step 2 left), while an apiWatch samples every apiserver's /readyz and reads
//     through the endpoint; the lease must keep at most one apiserver down at a time;
//  4. `kforge certs status -o json` on each control plane: the check is installed and
//     active, the record is 0600, and the last run renewed or found nothing due;
//  5. the file as it was: up puts the one-year lifetimes back in certs-renew.toml and
//     restarts each check on the daily schedule, and its renew-certs phase finds every
//     control plane due (minutes left, inside the default 30 days) and renews them, one
//     at a time, for a year: issue 12 item 3 on real hosts, and the rest of the test does
//     not race the check.
//
// It returns a line for the test's timings. Expect about 8 to 10 minutes.
func certsAutoRenewal(t *testing.T, ctx context.Context, l *lab.Lab, cfg, knownHosts, admin string, cps []testbed.Host, serviceURL string) string {
	t.Helper()
	base := mustReadFile(t, cfg)
	if strings.Contains(base, "[certificates]") {
		t.Fatalf("%s already has a [certificates] table; the scenario adds its own", cfg)
	}
	short := filepath.Join(filepath.Dir(cfg), "certs-short-"+filepath.Base(cfg))
	if err := os.WriteFile(short, []byte(base+fmt.Sprintf("\n[certificates]\ncert_validity = %q\nrenew_before = %q\n", autoCertValidity, autoRenewBefore)), 0o600); err != nil {
		t.Fatal(err)
	}
	nodes := map[string]*node{}
	for _, h := range cps {
		nodes[h.Name] = &node{t: t, h: h, lab: l}
	}

	// 1. The short lifetimes reach every control plane's check.
	up := kforgeUp(t, ctx, l, short, knownHosts, nil, "--kubeconfig-out", admin)
	if up.err != nil {
		t.Fatalf("up with short certificate lifetimes: %v\n%s", up.err, up.stderr)
	}
	for _, h := range cps {
		if r := up.host(h.Name).CertsRenewal; r == nil || r.Due || r.Renewed {
			t.Errorf("%s: up's renew-certs found %+v; want it looked and found nothing due", h.Name, r)
		}
		cfgOnHost := nodes[h.Name].sh(ctx, "cat "+phases.CertsRenewalConfig)
		if !strings.Contains(cfgOnHost, fmt.Sprintf("renew_before = %q", autoRenewBefore)) {
			t.Fatalf("%s: %s does not carry the new renew_before:\n%s", h.Name, phases.CertsRenewalConfig, cfgOnHost)
		}
	}

	// 2. Short-lived certificates, one control plane at a time.
	for _, h := range cps {
		nodes[h.Name].sh(ctx, fmt.Sprintf("%s certs renew all -f %s --node %s", fleet.RemoteKforge, fleet.RemoteConfig, h.Name))
	}
	before := map[string]map[string]time.Time{}
	for _, h := range cps {
		before[h.Name] = renewable(t, ctx, nodes[h.Name])
		if len(before[h.Name]) < 10 {
			t.Fatalf("%s: only %d certificates and kubeconfigs: %v", h.Name, len(before[h.Name]), before[h.Name])
		}
		for name, na := range before[h.Name] {
			if left := time.Until(na); left > 7*time.Minute {
				t.Fatalf("%s: %s has %s left after a renewal with cert_validity %s", h.Name, name, left.Round(time.Second), autoCertValidity)
			}
		}
	}

	// 3. The automatic path renews everything, everywhere, under watch.
	w := watchAPIServers(t, ctx, admin, cps, serviceURL)
	start := time.Now()
	for _, h := range cps {
		waitFor(t, ctx, h.Name+"'s automatic renewal of every certificate", 8*time.Minute, func() error {
			now := renewable(t, ctx, nodes[h.Name])
			var stale []string
			for name, old := range before[h.Name] {
				if !now[name].After(old) {
					stale = append(stale, name)
				}
			}
			if len(stale) > 0 {
				return fmt.Errorf("not renewed yet: %s", strings.Join(stale, ", "))
			}
			return nil
		})
	}
	took := time.Since(start)
	w.stop()
	t.Log(w)
	if m := w.maxDown(); m > 1 {
		t.Errorf("%d apiservers were down at once during automatic renewal (the lease should allow one): %s", m, w)
	}
	if f := w.failures(); f > 0 {
		t.Errorf("%d reads through any apiserver or requests to the Service failed during automatic renewal: %s", f, w)
	}

	// 4. certs status agrees, and the record is private.
	for _, h := range cps {
		n := nodes[h.Name]
		var st phases.CertsStatus
		out := n.sh(ctx, fleet.RemoteKforge+" certs status -o json --node "+h.Name)
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("%s: certs status -o json: %v\n%s", h.Name, err, out)
		}
		if !st.Installed || !st.Active || st.LastRun == nil || st.NextRun.IsZero() ||
			(st.LastRun.Outcome != certs.OutcomeRenewed && st.LastRun.Outcome != certs.OutcomeNotDue) {
			t.Errorf("%s: certs status %+v, last run %+v", h.Name, st, st.LastRun)
		}
		if mode := strings.TrimSpace(n.sh(ctx, "stat -c %a "+phases.CertsRenewalState)); mode != "600" {
			t.Errorf("%s: %s has mode %s, want 600", h.Name, phases.CertsRenewalState, mode)
		}
		log := n.sh(ctx, "cat /var/log/kforge/"+phases.CertsRenewalName+".log 2>/dev/null || journalctl -u "+phases.CertsRenewalName+".service --no-pager 2>/dev/null || true")
		if !strings.Contains(log, "renewing every certificate and kubeconfig of this host") {
			t.Errorf("%s: the check's log does not show a renewal:\n%s", h.Name, log)
		}
	}

	// 5. Back to the file's lifetimes: the check stops renewing every few minutes.
	back := kforgeUp(t, ctx, l, cfg, knownHosts, nil, "--kubeconfig-out", admin)
	if back.err != nil {
		t.Fatalf("up with the file's lifetimes again: %v\n%s", back.err, back.stderr)
	}
	// Their certificates have minutes left, inside the default 30 days: up's renew-certs
	// renews them, one control plane at a time, for a year (or a check got there first).
	for _, h := range cps {
		// renewed is false only when the host's own check renewed them first.
		if r := back.host(h.Name).CertsRenewal; r == nil || !r.Due {
			t.Errorf("%s: up with the file's lifetimes: certs_renewal %+v; want it due", h.Name, r)
		} else {
			t.Logf("%s: up renewed its certificates: %t", h.Name, r.Renewed)
		}
	}
	if !strings.Contains(back.stderr, "renews certificates on "+cps[0].Name+" (earliest ") {
		t.Errorf("up's plan does not say it renews %s's certificates:\n%s", cps[0].Name, back.stderr)
	}
	for _, h := range cps {
		waitFor(t, ctx, h.Name+"'s automatic renewal back to the file's lifetimes", 5*time.Minute, func() error {
			for name, na := range renewable(t, ctx, nodes[h.Name]) {
				if left := time.Until(na); left < 300*24*time.Hour {
					return fmt.Errorf("%s has %s left", name, left.Round(time.Second))
				}
			}
			return nil
		})
	}
	return fmt.Sprintf("automatic renewal of every certificate on %d control planes (cert_validity %s, renew_before %s): %s after they were minted; %s",
		len(cps), autoCertValidity, autoRenewBefore, took.Round(time.Second), w)
}

// renewable is the NotAfter of each leaf and kubeconfig client certificate on a control
// plane, by name, as `kforge certs check-expiration -o json` prints it there.
func renewable(t *testing.T, ctx context.Context, n *node) map[string]time.Time {
	t.Helper()
	out := n.sh(ctx, fleet.RemoteKforge+" certs check-expiration -o json")
	var rep certs.ExpiryReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%s: certs check-expiration -o json: %v\n%s", n.h.Name, err, out)
	}
	m := map[string]time.Time{}
	for _, r := range rep.Certificates {
		if r.Signer != "" && !r.Missing && !r.External {
			m[r.Name] = r.NotAfter
		}
	}
	return m
}
