package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/kforge/kforge/certs"
)

// CertsRenewal is what up found about one control plane's certificates, and did.
type CertsRenewal struct {
	// Earliest is the leaf or kubeconfig client certificate that expires first, and when.
	Earliest string    `json:"earliest"`
	NotAfter time.Time `json:"not_after"`
	// LeftSeconds is how long it had left when up looked (negative once expired).
	LeftSeconds int64 `json:"left_seconds"`
	// Due says it had less than certificates.renew_before left: up renews this host.
	Due bool `json:"due"`
	// Renewed says up renewed the host's certificates (false on a dry run).
	Renewed bool `json:"renewed"`
}

// RenewPlanLine is the plan's line for a control plane whose certificates up renews.
func RenewPlanLine(name string, c certs.DueCheck) string {
	return fmt.Sprintf("renews certificates on %s (earliest %s %s)", name, c.Earliest.Name, certs.ExpiresIn(c.Left()))
}

// RenewCerts renews the certificates of every control plane already in the cluster whose
// earliest leaf or kubeconfig client certificate has less than certificates.renew_before
// left (or has expired). It takes each one's expiry from what detect read over SSH
// (readCerts, by the host's clock), decides here with certs.CheckDue, prints the plan line, and,
// unless the run is a dry run, runs `kforge certs renew all --if-due` on one control plane
// at a time: each run takes the renewal lease, restarts what it renewed and waits until
// those components are healthy before it returns, so the next starts only then. A host
// that fails stops the renewals after it. renew_before "0s" turns this off.
func (f *Fleet) RenewCerts(ctx context.Context, now time.Time) {
	rb := f.c.Certificates.AutoRenewBefore()
	if rb == 0 || !f.HasCluster() {
		return
	}
	var due []string
	for _, h := range f.c.ControlPlaneHosts() {
		f.mu.Lock()
		r := f.reports[h.Name]
		existing := r != nil && r.Result == ResultOK && (r.Action == ActionUnchanged || r.Action == ActionReconfigure) && f.conns[h.Name] != nil
		f.mu.Unlock()
		if !existing {
			continue
		}
		f.mu.Lock()
		hc, read := f.observed.Certs[h.Name]
		f.mu.Unlock()
		if !read {
			f.out().Phase(h.Name, "WARNING: its certificates' expiry could not be read (see above); not renewing them in this run")
			continue
		}
		at := now
		if !hc.Now.IsZero() {
			at = hc.Now // the host's clock, which its components judge by
		}
		check, err := certs.CheckDue(hc.ExpiryRows(), rb, at)
		if err != nil {
			f.out().Phase(h.Name, "WARNING: %v", err)
			continue
		}
		if !check.Found {
			continue
		}
		c := &CertsRenewal{Earliest: check.Earliest.Name, NotAfter: check.Earliest.NotAfter, LeftSeconds: int64(check.Left() / time.Second), Due: check.Due}
		f.mu.Lock()
		r.CertsRenewal = c
		f.mu.Unlock()
		if check.Due {
			f.out().Plain("%s", RenewPlanLine(h.Name, check))
			due = append(due, h.Name)
		}
	}
	if f.o.DryRun {
		return
	}
	for i, name := range due {
		var st certs.RenewalState
		err := f.timed(name, func() error {
			args := []string{"certs", "renew", "all", "--if-due", "-f", RemoteConfig, "--node", name, "-o", "json"}
			if f.o.Timeout > 0 {
				args = append(args, "--timeout", f.o.Timeout.String())
			}
			var out bytes.Buffer
			if err := f.kforgeAt(ctx, name, RemoteKforge, args, nil, &out); err != nil {
				return err
			}
			if err := json.Unmarshal(out.Bytes(), &st); err != nil {
				return fmt.Errorf("reading what kforge certs renew --if-due printed: %w", err)
			}
			return nil
		})
		if err != nil {
			f.Fail(name, fmt.Errorf("renewing its certificates: %w", err))
			for _, rest := range due[i+1:] {
				f.out().Phase(rest, "not renewing its certificates: the renewals stopped at %s, which failed; fix it and run up again", name)
			}
			return
		}
		if st.Outcome != certs.OutcomeRenewed {
			// Its own check renewed them between up's look and this run.
			f.out().Phase(name, "%s", st.Message)
			continue
		}
		f.mu.Lock()
		f.reports[name].CertsRenewal.Renewed = true
		f.mu.Unlock()
		f.out().Phase(name, "renewed %d certificates and kubeconfigs; its control-plane components are healthy again", len(st.Renewed))
	}
}

// RenewedNames lists the hosts whose certificates r says up renewed, for the summary.
func (r *Report) RenewedNames() string {
	var names []string
	for _, h := range r.Hosts {
		if h.CertsRenewal != nil && h.CertsRenewal.Renewed {
			names = append(names, h.Host)
		}
	}
	return strings.Join(names, ", ")
}
