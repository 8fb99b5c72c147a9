package host

import "strings"

// ShellQuote quotes each argument for a POSIX shell and joins them with
// spaces, so that sh parses the result back into exactly args. Words made only
// of characters that are never special are left bare; everything else is put
// in single quotes; an embedded single quote closes the quoting, is escaped
// with a backslash, and the quoting reopens.
func ShellQuote(args ...string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = quoteWord(a)
	}
	return strings.Join(quoted, " ")
}

func quoteWord(s string) string {
	if s == "" {
		return "''"
	}
	if strings.IndexFunc(s, needsQuoting) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// needsQuoting reports whether r may be special to sh. '=' counts: a bare
// first word like A=b would be an assignment, not a command.
func needsQuoting(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return false
	}
	return !strings.ContainsRune("_-./:,+@%", r)
}
