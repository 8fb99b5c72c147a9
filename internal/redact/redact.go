// Package redact holds the one fmt rule every secret-holding type follows: whatever the
// verb, fmt prints the redacted form, never the secret.
package redact

import (
	"fmt"
	"strconv"
)

// Format writes redacted for every verb of f (%x and %d included, which fmt would otherwise
// apply to the secret's bytes), quoted for %q, and goString for %#v. Types call it from
// their fmt.Formatter method.
func Format(f fmt.State, verb rune, redacted, goString string) {
	switch {
	case verb == 'v' && f.Flag('#'):
		_, _ = fmt.Fprint(f, goString)
	case verb == 'q':
		_, _ = fmt.Fprint(f, strconv.Quote(redacted))
	default:
		_, _ = fmt.Fprint(f, redacted)
	}
}
