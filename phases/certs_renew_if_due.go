package phases

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kforge/kforge/certs"
)

// RenewIfDue is `kforge certs renew all --if-due`, what the automatic check runs: it
// renews every certificate and kubeconfig of this control plane (CertsRenewWorkflow) only
// when one of them has less than certificates.renew_before left, or has expired. A CA
// that has expired or expires within renew_before refuses the run (certs.CAExpiringError):
// kforge never mints a CA. Before the renewal restarts static pods it takes the renewal
// Lease, so that one control plane restarts at a time, and it releases it once the
// components are healthy again; a failed renewal keeps it until it expires, so that no
// other control plane restarts in the meantime. Without the API (offline renewal) there
// is no lease.
//
// Every run is recorded in CertsRenewalState (certs.RenewalState), with the next check
// interval from now (none when interval is zero), and logged. It returns the record.
//
// Reads Data.Cluster, Data.Now and the directories of Data; sets Data.Renew.
func RenewIfDue(ctx context.Context, d *Data, interval time.Duration) (certs.RenewalState, error) {
	now := d.Now()
	st := certs.RenewalState{LastRun: now, Renewed: []string{}}
	if interval > 0 {
		st.NextCheck = now.Add(interval)
	}
	rb := d.Cluster.Certificates.AutoRenewBefore()
	runErr := renewIfDue(ctx, d, rb, &st)
	if runErr != nil && st.Outcome == "" {
		st.Outcome, st.Message = certs.OutcomeFailed, runErr.Error()
	}
	if d.Log != nil {
		d.Log.Info("certificate renewal check", "node", d.Node.Name, "outcome", st.Outcome, "message", st.Message, "renewed", st.Renewed)
	}
	if err := certs.WriteRenewalState(d.Path(CertsRenewalState), st); err != nil {
		return st, errors.Join(runErr, err)
	}
	return st, runErr
}

func renewIfDue(ctx context.Context, d *Data, rb time.Duration, st *certs.RenewalState) error {
	rows, err := Expiration(d.Path(d.CertDir), d.Path(d.KubeconfigDir), d.Cluster, st.LastRun)
	if err != nil {
		return err
	}
	check, err := certs.CheckDue(rows, rb, st.LastRun)
	st.Earliest, st.EarliestNotAfter = check.Earliest.Name, check.Earliest.NotAfter
	var ca *certs.CAExpiringError
	switch {
	case errors.As(err, &ca):
		st.Outcome, st.Message = certs.OutcomeRefused, err.Error()
		return err
	case err != nil:
		return err
	case rb == 0:
		st.Outcome, st.Message = certs.OutcomeDisabled, "certificates.renew_before is 0s: automatic renewal is off"
		d.Out.Say("%s", st.Message)
		return nil
	case !check.Due:
		st.Outcome, st.Message = certs.OutcomeNotDue, check.String()
		d.Out.Say("%s", st.Message)
		return nil
	}
	d.Out.Say("%s: renewing every certificate and kubeconfig of this host", check)
	release, err := takeRenewLease(ctx, d)
	if err != nil {
		return err
	}
	d.Renew.Only = []string{"all"}
	if err := CertsRenewWorkflow().Run(ctx, d, "", nil); err != nil {
		for _, f := range d.Renew.Renewed {
			st.Renewed = append(st.Renewed, f.Name)
		}
		return fmt.Errorf("renewing the certificates of %s (the renewal lease stays held until it expires, so that no other control plane restarts meanwhile): %w", d.Node.Name, err)
	}
	release(ctx)
	for _, f := range d.Renew.Renewed {
		st.Renewed = append(st.Renewed, f.Name)
	}
	after, err := Expiration(d.Path(d.CertDir), d.Path(d.KubeconfigDir), d.Cluster, st.LastRun)
	if err == nil {
		if c, err := certs.CheckDue(after, rb, st.LastRun); err == nil {
			st.Earliest, st.EarliestNotAfter = c.Earliest.Name, c.Earliest.NotAfter
		}
	}
	st.Outcome = certs.OutcomeRenewed
	st.Message = fmt.Sprintf("renewed %d certificates and kubeconfigs (%s)", len(st.Renewed), check)
	return nil
}
