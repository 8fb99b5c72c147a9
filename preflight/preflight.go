// Package preflight checks that a host can run a Kubernetes node before kforge changes
// anything on it. Each check is a Checker whose Name is what users pass to
// --ignore-preflight-errors. Checks read the host only through System, so tests run them
// against a fake. The package knows nothing of cobra or SSH.
package preflight

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode"
)

// Checker is one preflight check.
type Checker interface {
	// Name is the name users pass to --ignore-preflight-errors, e.g. "Port-6443".
	Name() string
	// Check inspects the host. Warnings are printed and never fail the run; errors fail it
	// unless the check is ignored. Every message says what to do about it.
	Check(ctx context.Context) (warnings, errs []error)
}

// Names returns the names of checks, in order.
func Names(checks []Checker) []string {
	names := make([]string, len(checks))
	for i, c := range checks {
		names[i] = c.Name()
	}
	return names
}

// IgnoreSet is the set of checks whose errors are reported as warnings. The zero value
// ignores nothing.
type IgnoreSet struct {
	all   bool
	names map[string]string // lower-case name to the name as the user wrote it
}

// ParseIgnore reads --ignore-preflight-errors values. Each value may be a comma-separated
// list; names are case-insensitive and "all" ignores every check. Names that match no check
// are accepted here (which checks exist depends on the command and the config); Run warns
// about them.
func ParseIgnore(values []string) (IgnoreSet, error) {
	s := IgnoreSet{names: map[string]string{}}
	for _, v := range values {
		for name := range strings.SplitSeq(v, ",") {
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			if i := strings.IndexFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }); i >= 0 {
				return IgnoreSet{}, fmt.Errorf("invalid preflight check name %q: names contain no spaces; separate several with commas", name)
			}
			if strings.EqualFold(name, "all") {
				s.all = true
				continue
			}
			s.names[strings.ToLower(name)] = name
		}
	}
	return s, nil
}

// All reports whether every check is ignored.
func (s IgnoreSet) All() bool { return s.all }

// Has reports whether errors of the named check are ignored.
func (s IgnoreSet) Has(name string) bool {
	if s.all {
		return true
	}
	_, ok := s.names[strings.ToLower(name)]
	return ok
}

// Names returns the individually ignored names as the user wrote them, sorted; "all" is
// not among them (see All).
func (s IgnoreSet) Names() []string {
	out := make([]string, 0, len(s.names))
	for _, n := range s.names {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Failure is one error of one check.
type Failure struct {
	Check string
	Err   error
}

// Error is returned by Run when checks fail. It lists every failure, then says how to
// ignore them.
type Error struct {
	Failures []Failure
}

func (e *Error) Error() string {
	var b strings.Builder
	if len(e.Failures) == 1 {
		b.WriteString("1 preflight check failed:\n")
	} else {
		fmt.Fprintf(&b, "%d preflight checks failed:\n", len(e.Failures))
	}
	var names []string
	for _, f := range e.Failures {
		fmt.Fprintf(&b, "\t[ERROR %s]: %v\n", f.Check, f.Err)
		if !slices.Contains(names, f.Check) {
			names = append(names, f.Check)
		}
	}
	fmt.Fprintf(&b, "to ignore a check, pass --ignore-preflight-errors=%s (or =all)", strings.Join(names, ","))
	return b.String()
}

// Unwrap returns the failures' errors, so errors.Is and errors.As see through an *Error.
func (e *Error) Unwrap() []error {
	errs := make([]error, len(e.Failures))
	for i, f := range e.Failures {
		errs[i] = f.Err
	}
	return errs
}

// Run runs every check in order and writes one line to out per warning and per ignored
// error. It returns an *Error listing every error that is not ignored, or nil. If ctx is
// cancelled, Run stops before the next check and returns ctx's error.
func Run(ctx context.Context, checks []Checker, ignore IgnoreSet, out io.Writer) error {
	known := map[string]bool{}
	for _, c := range checks {
		known[strings.ToLower(c.Name())] = true
	}
	for _, n := range ignore.Names() {
		if !known[strings.ToLower(n)] {
			fmt.Fprintf(out, "[preflight] WARNING: --ignore-preflight-errors names %q, which is no check here; the checks are %s\n",
				n, strings.Join(Names(checks), ", "))
		}
	}

	var failed []Failure
	for _, c := range checks {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("preflight checks interrupted before %s: %w", c.Name(), err)
		}
		warnings, errs := c.Check(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("preflight checks interrupted during %s: %w", c.Name(), err)
		}
		for _, w := range warnings {
			fmt.Fprintf(out, "[preflight] WARNING %s: %v\n", c.Name(), w)
		}
		for _, err := range errs {
			if ignore.Has(c.Name()) {
				fmt.Fprintf(out, "[preflight] WARNING %s: %v (error ignored)\n", c.Name(), err)
				continue
			}
			failed = append(failed, Failure{Check: c.Name(), Err: err})
		}
	}
	if len(failed) > 0 {
		return &Error{Failures: failed}
	}
	return nil
}

// check is a Checker made of a name and a function.
type check struct {
	name string
	run  func(ctx context.Context) (warnings, errs []error)
}

func (c check) Name() string { return c.name }

func (c check) Check(ctx context.Context) (warnings, errs []error) { return c.run(ctx) }

// warn and fail shorten the returns of check functions.
func warn(err error) (warnings, errs []error) { return []error{err}, nil }

func fail(err error) (warnings, errs []error) { return nil, []error{err} }
