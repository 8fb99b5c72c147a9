// Package phases holds the phase runner and kforge's workflows. Phases are thin: they read
// *Data, call the domain packages (certs, kubeconfig, manifests, preflight) and write results.
package phases

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Phase is one step of a workflow. A phase either runs itself (Run) or groups sub-phases
// (Phases), never both.
type Phase struct {
	// Name is a kebab-case noun: "certs", "control-plane", "apiserver".
	Name string
	// Short is a one-line imperative description: "Generate the certificates".
	Short string
	// Run does the work. Nil for a phase that only groups sub-phases.
	Run func(ctx context.Context, d *Data) error
	// Phases are the sub-phases, run in order.
	Phases []Phase
	// Skip, if set, reports a reason to skip the phase for this run (for example
	// "--upload-certs not set"). A skipped phase and its sub-phases do not run.
	Skip func(d *Data) (reason string, skip bool)
}

// FlatPhase is a phase with its full slash-separated name, as --skip-phases and
// `init phase` see it.
type FlatPhase struct {
	Path  string // "certs/apiserver"
	Depth int    // 0 for top-level phases
	Phase *Phase
}

// Workflow is an ordered tree of phases: init, join, reset.
type Workflow struct {
	Name   string
	Phases []Phase
}

// Flatten lists every phase of the tree, parents before their children.
func (w *Workflow) Flatten() []FlatPhase {
	var out []FlatPhase
	var walk func(prefix string, depth int, ps []Phase)
	walk = func(prefix string, depth int, ps []Phase) {
		for i := range ps {
			p := &ps[i]
			path := p.Name
			if prefix != "" {
				path = prefix + "/" + p.Name
			}
			out = append(out, FlatPhase{Path: path, Depth: depth, Phase: p})
			walk(path, depth+1, p.Phases)
		}
	}
	walk("", 0, w.Phases)
	return out
}

// Lookup finds a phase by its slash path.
func (w *Workflow) Lookup(path string) (FlatPhase, bool) {
	for _, f := range w.Flatten() {
		if f.Path == path {
			return f, true
		}
	}
	return FlatPhase{}, false
}

// Paths lists every phase path, for errors and shell completion.
func (w *Workflow) Paths() []string {
	var out []string
	for _, f := range w.Flatten() {
		out = append(out, f.Path)
	}
	return out
}

// Describe renders the phase tree as the `--help` text shows it.
func (w *Workflow) Describe() string {
	var b strings.Builder
	width := 0
	flat := w.Flatten()
	for _, f := range flat {
		width = max(width, 2*f.Depth+len(f.Phase.Name))
	}
	for _, f := range flat {
		name := strings.Repeat("  ", f.Depth) + f.Phase.Name
		fmt.Fprintf(&b, "  %-*s  %s\n", width, name, f.Phase.Short)
	}
	return b.String()
}

// ErrUnknownPhase is returned for a --skip-phases or `init phase` name that is not in the
// workflow.
var ErrUnknownPhase = errors.New("unknown phase")

// ValidateSkip checks --skip-phases values against the workflow.
func (w *Workflow) ValidateSkip(skip []string) error {
	var bad []string
	for _, s := range skip {
		if _, ok := w.Lookup(s); !ok {
			bad = append(bad, s)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w %s in --skip-phases; valid phases: %s", ErrUnknownPhase,
			strings.Join(bad, ", "), strings.Join(w.Paths(), ", "))
	}
	return nil
}

// Run runs the workflow, or only the subtree at `only` when it is not empty, skipping the
// phases named in skip (and their children). Each failure is wrapped once with the phase
// path. The context is checked between phases, so Ctrl-C stops cleanly at a step boundary.
func (w *Workflow) Run(ctx context.Context, d *Data, only string, skip []string) error {
	if err := w.ValidateSkip(skip); err != nil {
		return err
	}
	phases := w.Phases
	prefix := ""
	if only != "" {
		f, ok := w.Lookup(only)
		if !ok {
			return fmt.Errorf("%w %q; valid phases: %s", ErrUnknownPhase, only, strings.Join(w.Paths(), ", "))
		}
		phases = []Phase{*f.Phase}
		if i := strings.LastIndex(only, "/"); i >= 0 {
			prefix = only[:i]
		}
	}
	return w.runList(ctx, d, prefix, phases, skip)
}

func (w *Workflow) runList(ctx context.Context, d *Data, prefix string, ps []Phase, skip []string) error {
	for i := range ps {
		p := &ps[i]
		path := p.Name
		if prefix != "" {
			path = prefix + "/" + p.Name
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("stopped before phase %q: %w", path, err)
		}
		if slices.Contains(skip, path) {
			d.Out.Phase(path, "skipped (--skip-phases)")
			continue
		}
		if p.Skip != nil {
			if reason, ok := p.Skip(d); ok {
				d.Out.Phase(path, "skipped: %s", reason)
				continue
			}
		}
		start := time.Now()
		if p.Run != nil {
			d.Log.Debug("running phase", "phase", path)
			if err := runNamed(ctx, d, p, path); err != nil {
				var pe *phaseError
				if errors.As(err, &pe) {
					return err
				}
				return &phaseError{path: path, err: err}
			}
		}
		if err := w.runList(ctx, d, path, p.Phases, skip); err != nil {
			return err
		}
		if !strings.Contains(path, "/") {
			d.Out.Done(path, time.Since(start))
		}
	}
	return nil
}

// runNamed runs one phase with Data.Out named after its top-level phase, so that its
// lines read "[certs] ..." for every sub-phase of certs.
func runNamed(ctx context.Context, d *Data, p *Phase, path string) error {
	out := d.Out
	top, _, _ := strings.Cut(path, "/")
	d.Out = out.Named(top)
	defer func() { d.Out = out }()
	return p.Run(ctx, d)
}

// phaseError wraps a failure once, with the path of the phase that failed.
type phaseError struct {
	path string
	err  error
}

func (e *phaseError) Error() string { return fmt.Sprintf("phase %q: %v", e.path, e.err) }
func (e *phaseError) Unwrap() error { return e.err }
