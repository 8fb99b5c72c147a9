package phases

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Printer writes user-facing progress lines, "[certs] generating apiserver certificate", to
// one stream (stdout). Diagnostics go through slog instead. The runner hands each phase a
// Printer named after it (Data.Out), so a phase says what it does with Say and never
// spells its own name.
type Printer struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
}

// NewPrinter returns a Printer writing to w.
func NewPrinter(w io.Writer) *Printer { return &Printer{mu: new(sync.Mutex), w: w} }

// Named returns a Printer to the same stream whose Say lines start with "[name]".
func (p *Printer) Named(name string) *Printer {
	return &Printer{mu: p.mu, w: p.w, prefix: name}
}

// Say prints one progress line under the printer's name.
func (p *Printer) Say(format string, args ...any) {
	if p.prefix == "" {
		p.Plain(format, args...)
		return
	}
	p.Phase(p.prefix, format, args...)
}

// Phase prints one progress line for the phase at path; the prefix is its top-level name.
func (p *Printer) Phase(path, format string, args ...any) {
	top, _, _ := strings.Cut(path, "/")
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "[%s] %s\n", top, fmt.Sprintf(format, args...))
}

// Done prints the duration of a finished top-level phase.
func (p *Printer) Done(path string, d time.Duration) {
	p.Phase(path, "done in %s", roundDuration(d))
}

// Plain prints a line with no prefix.
func (p *Printer) Plain(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format+"\n", args...)
}

// Writer is the underlying stream, for tables and blocks of text.
func (p *Printer) Writer() io.Writer { return p.w }

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
