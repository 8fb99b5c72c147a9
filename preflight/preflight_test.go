package preflight

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeCheck is a Checker with canned results that counts its runs.
type fakeCheck struct {
	name     string
	warnings []error
	errs     []error
	run      func(ctx context.Context)
	runs     *int
}

func (f fakeCheck) Name() string { return f.name }

func (f fakeCheck) Check(ctx context.Context) (warnings, errs []error) {
	if f.runs != nil {
		*f.runs++
	}
	if f.run != nil {
		f.run(ctx)
	}
	return f.warnings, f.errs
}

func mustIgnore(t *testing.T, values ...string) IgnoreSet {
	t.Helper()
	s, err := ParseIgnore(values)
	if err != nil {
		t.Fatalf("ParseIgnore(%q): %v", values, err)
	}
	return s
}

func TestParseIgnore(t *testing.T) {
	tests := []struct {
		name    string
		values  []string
		all     bool
		names   []string
		has     []string
		hasNot  []string
		wantErr string
	}{
		{name: "nothing", hasNot: []string{"Port-6443"}, names: []string{}},
		{name: "empty value", values: []string{""}, hasNot: []string{"Port-6443"}, names: []string{}},
		{
			name:   "comma list across values",
			values: []string{"Port-6443, Swap", "NumCPU"},
			names:  []string{"NumCPU", "Port-6443", "Swap"},
			has:    []string{"Port-6443", "swap", "NUMCPU"},
			hasNot: []string{"Mem"},
		},
		{
			name:   "case-insensitive",
			values: []string{"port-6443,filecontent--proc-sys-net-ipv4-ip_forward"},
			names:  []string{"filecontent--proc-sys-net-ipv4-ip_forward", "port-6443"},
			has:    []string{"Port-6443", "FileContent--proc-sys-net-ipv4-ip_forward"},
		},
		{name: "all", values: []string{"all"}, all: true, names: []string{}, has: []string{"Anything"}},
		{name: "ALL among names", values: []string{"Swap,ALL"}, all: true, names: []string{"Swap"}, has: []string{"Mem"}},
		{name: "unknown names are kept", values: []string{"NoSuchCheck"}, names: []string{"NoSuchCheck"}, has: []string{"nosuchcheck"}},
		{name: "space inside a name", values: []string{"Port 6443"}, wantErr: `invalid preflight check name "Port 6443"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseIgnore(tc.values)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseIgnore(%q) error = %v, want it to contain %q", tc.values, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseIgnore(%q): %v", tc.values, err)
			}
			if s.All() != tc.all {
				t.Errorf("All() = %v, want %v", s.All(), tc.all)
			}
			if diff := cmp.Diff(tc.names, s.Names()); diff != "" {
				t.Errorf("Names() (-want +got):\n%s", diff)
			}
			for _, n := range tc.has {
				if !s.Has(n) {
					t.Errorf("Has(%q) = false, want true", n)
				}
			}
			for _, n := range tc.hasNot {
				if s.Has(n) {
					t.Errorf("Has(%q) = true, want false", n)
				}
			}
		})
	}
}

func TestIgnoreSetZeroValue(t *testing.T) {
	var s IgnoreSet
	if s.Has("Port-6443") || s.All() || len(s.Names()) != 0 {
		t.Errorf("the zero IgnoreSet ignores something: %+v", s)
	}
}

func TestRun(t *testing.T) {
	portErr := errors.New("port 6443 is in use")
	checks := []Checker{
		fakeCheck{name: "Clean"},
		fakeCheck{name: "Warner", warnings: []error{errors.New("w1"), errors.New("w2")}},
		fakeCheck{name: "Port-6443", errs: []error{portErr}},
		fakeCheck{name: "Swap", warnings: []error{errors.New("swap w")}, errs: []error{errors.New("swap is on")}},
	}
	tests := []struct {
		name    string
		ignore  []string
		wantOut string
		wantErr string
	}{
		{
			name: "nothing ignored",
			wantOut: `[preflight] WARNING Warner: w1
[preflight] WARNING Warner: w2
[preflight] WARNING Swap: swap w
`,
			wantErr: `2 preflight checks failed:
	[ERROR Port-6443]: port 6443 is in use
	[ERROR Swap]: swap is on
to ignore a check, pass --ignore-preflight-errors=Port-6443,Swap (or =all)`,
		},
		{
			name:   "one ignored, other case",
			ignore: []string{"port-6443"},
			wantOut: `[preflight] WARNING Warner: w1
[preflight] WARNING Warner: w2
[preflight] WARNING Port-6443: port 6443 is in use (error ignored)
[preflight] WARNING Swap: swap w
`,
			wantErr: `1 preflight check failed:
	[ERROR Swap]: swap is on
to ignore a check, pass --ignore-preflight-errors=Swap (or =all)`,
		},
		{
			name:   "all",
			ignore: []string{"all"},
			wantOut: `[preflight] WARNING Warner: w1
[preflight] WARNING Warner: w2
[preflight] WARNING Port-6443: port 6443 is in use (error ignored)
[preflight] WARNING Swap: swap w
[preflight] WARNING Swap: swap is on (error ignored)
`,
		},
		{
			name:   "unknown name",
			ignore: []string{"Swap,Port-6443,Bogus"},
			wantOut: `[preflight] WARNING: --ignore-preflight-errors names "Bogus", which is no check here; the checks are Clean, Warner, Port-6443, Swap
[preflight] WARNING Warner: w1
[preflight] WARNING Warner: w2
[preflight] WARNING Port-6443: port 6443 is in use (error ignored)
[preflight] WARNING Swap: swap w
[preflight] WARNING Swap: swap is on (error ignored)
`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := Run(t.Context(), checks, mustIgnore(t, tc.ignore...), &out)
			if diff := cmp.Diff(tc.wantOut, out.String()); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Run returned nil, want %q", tc.wantErr)
			}
			if diff := cmp.Diff(tc.wantErr, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("Run error is %T, want *Error", err)
			}
		})
	}
}

func TestErrorUnwraps(t *testing.T) {
	err := &Error{Failures: []Failure{
		{Check: "Mem", Err: errors.New("low")},
		{Check: "FileAvailable--x", Err: &fs.PathError{Op: "open", Path: "/x", Err: fs.ErrPermission}},
	}}
	if !errors.Is(err, fs.ErrPermission) {
		t.Error("errors.Is does not see through *Error to its failures")
	}
}

func TestErrorNamesEachCheckOnce(t *testing.T) {
	err := &Error{Failures: []Failure{
		{Check: "SystemVerification", Err: errors.New("a")},
		{Check: "SystemVerification", Err: errors.New("b")},
	}}
	want := `2 preflight checks failed:
	[ERROR SystemVerification]: a
	[ERROR SystemVerification]: b
to ignore a check, pass --ignore-preflight-errors=SystemVerification (or =all)`
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("Error() (-want +got):\n%s", diff)
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	t.Run("between checks", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var first, second int
		checks := []Checker{
			fakeCheck{name: "First", runs: &first, run: func(context.Context) { cancel() }},
			fakeCheck{name: "Second", runs: &second},
		}
		err := Run(ctx, checks, IgnoreSet{}, &bytes.Buffer{})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run error = %v, want context.Canceled", err)
		}
		if first != 1 || second != 0 {
			t.Errorf("checks ran %d and %d times, want 1 and 0", first, second)
		}
	})
	t.Run("a failure caused by the cancellation is not reported as a check failure", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		checks := []Checker{
			fakeCheck{name: "Slow", errs: []error{context.Canceled}, run: func(context.Context) { cancel() }},
		}
		err := Run(ctx, checks, IgnoreSet{}, &bytes.Buffer{})
		var pe *Error
		if errors.As(err, &pe) || !errors.Is(err, context.Canceled) {
			t.Fatalf("Run error = %v, want a plain cancellation", err)
		}
	})
	t.Run("already cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		var runs int
		err := Run(ctx, []Checker{fakeCheck{name: "A", runs: &runs}}, IgnoreSet{}, &bytes.Buffer{})
		if !errors.Is(err, context.Canceled) || runs != 0 {
			t.Fatalf("Run = %v after %d runs, want context.Canceled and no run", err, runs)
		}
	})
}

func TestNames(t *testing.T) {
	got := Names([]Checker{fakeCheck{name: "B"}, fakeCheck{name: "A"}})
	if diff := cmp.Diff([]string{"B", "A"}, got); diff != "" {
		t.Errorf("Names (-want +got):\n%s", diff)
	}
}
