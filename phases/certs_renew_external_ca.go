package phases

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// certsRenewExternalCAPhase fails the run when some certificate could not be renewed
// because its CA key is not on this host: the operator must renew it, and a script must
// not take the run for a full renewal. It runs last, after what could be renewed has
// restarted.
//
// Reads Data.Renew.
func certsRenewExternalCAPhase() Phase {
	return Phase{
		Name:  "external-ca",
		Short: "Fail if a certificate signed by an external CA is left for the operator to renew",
		Run: func(_ context.Context, d *Data) error {
			if len(d.Renew.External) == 0 {
				return nil
			}
			return &ExternalRenewalError{Files: d.Renew.External}
		},
	}
}

// ExternalRenewalError lists the certificates kforge could not renew because their CA key
// is absent (external CA mode).
type ExternalRenewalError struct {
	Files []RenewedFile
}

func (e *ExternalRenewalError) Error() string {
	var b strings.Builder
	b.WriteString("the CA key of these certificates is not on this host (external CA mode), so kforge did not renew them; " +
		"renew each with its CA, then run again to restart what reads them:")
	for _, f := range e.Files {
		fmt.Fprintf(&b, "\n  %s (%s), expires %s", f.Name, f.Path, f.NotAfter.Format(time.RFC3339))
	}
	return b.String()
}
