package certs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/kforge/kforge/internal/fileutil"
)

// Outcomes of a `certs renew all --if-due` run, as RenewalState records them.
const (
	OutcomeNotDue   = "not-due"
	OutcomeRenewed  = "renewed"
	OutcomeRefused  = "refused"
	OutcomeFailed   = "failed"
	OutcomeDisabled = "disabled"
)

// RenewalState is the record of the last automatic renewal check on a host (its
// kforge-certs-renew timer, its renew-loop, or `kforge up`), which `kforge certs status`
// shows.
type RenewalState struct {
	// LastRun is when the check ran.
	LastRun time.Time `json:"last_run"`
	// Outcome is one of the Outcome constants.
	Outcome string `json:"outcome"`
	// Message says what was decided or what went wrong.
	Message string `json:"message"`
	// Renewed names each certificate and kubeconfig renewed.
	Renewed []string `json:"renewed"`
	// Earliest is the certificate that expires first, and when, after the run.
	Earliest         string    `json:"earliest,omitempty"`
	EarliestNotAfter time.Time `json:"earliest_not_after,omitzero"`
	// NextCheck is when the schedule runs the check again (without its random delay);
	// zero when nothing schedules it.
	NextCheck time.Time `json:"next_check,omitzero"`
}

// WriteRenewalState writes s to path as JSON, mode 0600, atomically: a reader sees the old
// record or the new one, never half of one.
func WriteRenewalState(path string, s RenewalState) error {
	if s.Renewed == nil {
		s.Renewed = []string{}
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the renewal record: %w", err)
	}
	if _, err := fileutil.WriteAtomic(path, append(b, '\n'), 0o600, 0o700); err != nil {
		return fmt.Errorf("recording the renewal check in %s: %w", path, err)
	}
	return nil
}

// ReadRenewalState reads the record WriteRenewalState wrote; false when there is none.
func ReadRenewalState(path string) (RenewalState, bool, error) {
	var s RenewalState
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, false, nil
	}
	if err != nil {
		return s, false, fmt.Errorf("reading the renewal record: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, false, fmt.Errorf("reading the renewal record %s: %w; remove it, and the next check writes a new one", path, err)
	}
	return s, true, nil
}

// CheckInterval is how often the automatic check runs for renewBefore: daily, or more often
// when renewBefore is short, so that at least four checks fall inside the window (at most
// every minute).
func CheckInterval(renewBefore time.Duration) time.Duration {
	return min(24*time.Hour, max(time.Minute, renewBefore/4))
}

// CheckRandomDelay is the random delay added to each check, so that the control planes of
// a cluster do not all check (and renew) at once: an eighth of the interval.
func CheckRandomDelay(renewBefore time.Duration) time.Duration {
	return CheckInterval(renewBefore) / 8
}
