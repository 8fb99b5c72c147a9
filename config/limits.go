package config

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Bounds on what kforge reads and echoes back, so that a wrong file (a device, a log, a
// generated monster) gives a short answer quickly.
const (
	// MaxFileSize is the largest cluster.toml Load reads. A real one is a few KiB.
	MaxFileSize = 1 << 20
	// MaxReported is how many problems an error lists before it says how many more there are.
	MaxReported = 50
	// maxEcho is how many bytes of a value or key an error message quotes.
	maxEcho = 80
)

// clip shortens s to at most maxEcho bytes (on a rune boundary), marking the cut with "...".
func clip(s string) string {
	if len(s) <= maxEcho {
		return s
	}
	cut := maxEcho - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// clipArgs clips the string arguments of format that it quotes with %q: by the house
// convention those are the values and keys the user wrote, while the explanations ("want
// ...") are unquoted %s arguments and stay whole.
func clipArgs(format string, args []any) []any {
	out := append([]any(nil), args...)
	n := 0
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		i++
		for i < len(format) && strings.IndexByte("+-# 0123456789.", format[i]) >= 0 {
			i++
		}
		if i >= len(format) || format[i] == '%' {
			continue
		}
		if n < len(out) && format[i] == 'q' {
			if s, ok := out[n].(string); ok {
				out[n] = clip(s)
			}
		}
		n++
	}
	return out
}

// quoteValue quotes a value for an error message, clipped.
func quoteValue(s string) string { return strconv.Quote(clip(s)) }

// moreLine is the last line of a listing cut at MaxReported.
func moreLine(n int) string {
	if n == 1 {
		return "and 1 more problem"
	}
	return fmt.Sprintf("and %d more problems", n)
}
