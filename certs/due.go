package certs

import (
	"errors"
	"fmt"
	"time"
)

// DueCheck is the decision of `kforge certs renew all --if-due` on one host, as of Now.
type DueCheck struct {
	// Now is when the check was made; RenewBefore the window it used.
	Now         time.Time
	RenewBefore time.Duration
	// Earliest is the leaf or kubeconfig client certificate that expires first (ok false
	// when the host has none that kforge can renew).
	Earliest ExpiryRow
	Found    bool
	// Due says Earliest has less than RenewBefore left, or has expired.
	Due bool
}

// Left is how long Earliest has left (negative once expired).
func (c DueCheck) Left() time.Duration { return c.Earliest.NotAfter.Sub(c.Now) }

// String says what was decided: "not due: earliest apiserver expires in 364d 23h
// (renew_before 30d 0h)", or "due: ...".
func (c DueCheck) String() string {
	if !c.Found {
		return "not due: no certificate on this host that kforge renews"
	}
	verdict := "not due"
	if c.Due {
		verdict = "due"
	}
	return fmt.Sprintf("%s: earliest %s %s (renew_before %s)", verdict, c.Earliest.Name, ExpiresIn(c.Left()), RoundDuration(c.RenewBefore))
}

// ExpiresIn says "expires in 3d 4h", or "expired 2h 5m ago".
func ExpiresIn(left time.Duration) string {
	if left <= 0 {
		return "expired " + RoundDuration(-left) + " ago"
	}
	return "expires in " + RoundDuration(left)
}

// ErrCAExpiring is the sentinel of a CAExpiringError.
var ErrCAExpiring = errors.New("a CA has expired or expires within certificates.renew_before")

// CAExpiringError says a CA that signs this host's certificates has expired, or expires
// within renew_before: renewing its leaves cannot help, and kforge never mints a new CA.
type CAExpiringError struct {
	Name, Path  string
	Left        time.Duration
	RenewBefore time.Duration
}

func (e *CAExpiringError) Error() string {
	return fmt.Sprintf("CA %s (%s) %s, within certificates.renew_before %s: certificates it signs cannot outlive it, "+
		"and kforge never makes a new CA (nothing that trusts the old one would trust it). Rotate the CA by hand "+
		"(https://kubernetes.io/docs/tasks/tls/manual-rotation-of-ca-certificates/) before it expires; "+
		"until then, `kforge certs renew all` still renews its leaves up to the CA's own expiry",
		e.Name, e.Path, ExpiresIn(e.Left), RoundDuration(e.RenewBefore))
}

// Is makes errors.Is(err, ErrCAExpiring) hold.
func (e *CAExpiringError) Is(target error) bool { return target == ErrCAExpiring }

// CheckDue decides whether the host whose certificates are rows (phases.Expiration's rows:
// the table, CAs included, then the kubeconfigs) must renew as of now: when some leaf or
// kubeconfig client certificate kforge can renew (its CA key is here) has less than
// renewBefore left, or has expired. A renewBefore of zero never renews. A CA that signs
// some such certificate and has expired, or expires within renewBefore, is a
// *CAExpiringError, whatever the leaves say.
func CheckDue(rows []ExpiryRow, renewBefore time.Duration, now time.Time) (DueCheck, error) {
	c := DueCheck{Now: now, RenewBefore: renewBefore}
	var leaves []ExpiryRow
	signers := map[string]bool{}
	for _, r := range rows {
		if r.Signer == "" || r.Missing || r.External {
			continue
		}
		leaves = append(leaves, r)
		signers[r.Signer] = true
	}
	if renewBefore > 0 {
		for _, r := range rows {
			if r.Signer != "" || r.Missing || !signers[r.Name] {
				continue
			}
			if left := r.NotAfter.Sub(now); left < renewBefore {
				return c, &CAExpiringError{Name: r.Name, Path: r.Path, Left: left, RenewBefore: renewBefore}
			}
		}
	}
	c.Earliest, c.Found = Earliest(leaves)
	c.Due = c.Found && renewBefore > 0 && c.Left() < renewBefore
	return c, nil
}
