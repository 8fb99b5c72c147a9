package phases

import (
	"context"
	"fmt"
	"time"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/service"
)

// CertsStatus is what `kforge certs status` reports about the automatic renewal of one
// control plane.
type CertsStatus struct {
	// Node is this host's name.
	Node string `json:"node"`
	// RenewBefore is certificates.renew_before ("30d"; "0s": automatic renewal is off).
	RenewBefore        string `json:"renew_before"`
	RenewBeforeSeconds int64  `json:"renew_before_seconds"`
	// Check is what runs the check: "systemd timer kforge-certs-renew.timer" or
	// "supervisor loop kforge-certs-renew".
	Check string `json:"check"`
	// Installed and Active say whether the check is installed and running (timer active,
	// loop running).
	Installed bool `json:"installed"`
	Active    bool `json:"active"`
	// LastRun is the record of the last check; absent before the first.
	LastRun *certs.RenewalState `json:"last_run,omitempty"`
	// NextRun is when the next check is due (plus its random delay); absent when unknown.
	NextRun time.Time `json:"next_run,omitzero"`
	// Earliest is the leaf or kubeconfig client certificate that expires first, and how
	// long it has left now.
	Earliest                string    `json:"earliest,omitempty"`
	EarliestNotAfter        time.Time `json:"earliest_not_after,omitzero"`
	EarliestResidualSeconds int64     `json:"earliest_residual_seconds"`
}

// CertsRenewalStatus gathers CertsStatus on this host: the schedule from the service
// manager, the last run from CertsRenewalState, the earliest expiry from the files.
//
// Reads Data.Cluster, Data.Node, Data.Services, Data.Now and the directories of Data.
func CertsRenewalStatus(ctx context.Context, d *Data) (CertsStatus, error) {
	now := d.Now()
	rb := d.Cluster.Certificates.AutoRenewBefore()
	s := CertsStatus{Node: d.Node.Name, RenewBefore: certs.RoundDuration(rb), RenewBeforeSeconds: int64(rb / time.Second)}
	if rb == 0 {
		s.RenewBefore = "0s (automatic renewal is off)"
	}
	s.Check = d.Services.Kind() + " loop " + CertsRenewalName
	if d.Services.Kind() == "systemd" {
		s.Check = "systemd timer " + CertsRenewalName + ".timer"
	}
	if sched, ok := d.Services.(service.Scheduler); ok {
		var err error
		if s.Installed, s.Active, err = sched.Scheduled(ctx, CertsRenewalName); err != nil {
			return s, fmt.Errorf("asking the %s about %s: %w", d.Services.Kind(), CertsRenewalName, err)
		}
	}
	last, ok, err := certs.ReadRenewalState(d.Path(CertsRenewalState))
	if err != nil {
		return s, err
	}
	if ok {
		s.LastRun = &last
		if s.Active {
			s.NextRun = last.NextCheck
		}
	}
	rows, err := Expiration(d.Path(d.CertDir), d.Path(d.KubeconfigDir), d.Cluster, now)
	if err != nil {
		return s, err
	}
	// The decision's earliest, whatever a CA says: status reports, it does not refuse.
	check, _ := certs.CheckDue(rows, 0, now)
	if check.Found {
		s.Earliest, s.EarliestNotAfter = check.Earliest.Name, check.Earliest.NotAfter
		s.EarliestResidualSeconds = int64(check.Left() / time.Second)
	}
	return s, nil
}
