package testutil

import (
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"sync"

	"github.com/kforge/kforge/host"
)

// FakeHost is a host.Host that runs nothing: it answers each command with the first rule
// that matches the command's display text (Cmd.Display, else its script or arguments) and
// records every command and upload, so that a test can check what ran, and in which order
// across hosts (through a shared Journal).
type FakeHost struct {
	HostName string
	// Rules answer commands; a command no rule matches succeeds with no output.
	Rules []Rule
	// Journal, if set, records "<host>: <command>" for every command and upload, shared
	// between hosts to check the order across them.
	Journal *Journal

	mu      sync.Mutex
	ran     []string
	stdin   []string
	uploads []host.File
	files   map[string][]byte
}

// Rule answers the commands whose display text matches Match.
type Rule struct {
	Match *regexp.Regexp
	// Stdout is what the command prints.
	Stdout string
	// Err, if set, is returned (wrap a *host.ExitError for a failing command).
	Err error
	// Reply, if set, answers instead of Stdout and Err, from the command's standard
	// input; it may change what later commands see.
	Reply func(stdin string) (stdout string, err error)
}

// On returns a rule for commands matching the regular expression re.
func On(re string, stdout string) Rule {
	return Rule{Match: regexp.MustCompile(re), Stdout: stdout}
}

// Fail returns a rule that makes commands matching re exit with code 1.
func Fail(re, stderr string) Rule {
	return Rule{Match: regexp.MustCompile(re), Err: fmt.Errorf("exit status 1: %s", stderr)}
}

var _ host.Host = (*FakeHost)(nil)

// Name implements host.Host.
func (f *FakeHost) Name() string { return f.HostName }

// String implements host.Host.
func (f *FakeHost) String() string { return f.HostName + " (fake)" }

// Close implements host.Host.
func (f *FakeHost) Close() error { return nil }

// Run implements host.Host: it records the command and answers it from the rules.
func (f *FakeHost) Run(ctx context.Context, c host.Cmd) (host.Result, error) {
	if err := ctx.Err(); err != nil {
		return host.Result{}, err
	}
	text := c.Display
	if text == "" {
		text = c.Script
		if text == "" {
			text = host.ShellQuote(c.Args...)
		}
	}
	in := ""
	if c.Stdin != nil {
		b, err := io.ReadAll(c.Stdin)
		if err != nil {
			return host.Result{}, err
		}
		in = string(b)
	}
	f.mu.Lock()
	f.ran = append(f.ran, text)
	f.stdin = append(f.stdin, in)
	var rule *Rule
	for i := range f.Rules {
		if f.Rules[i].Match.MatchString(text) {
			rule = &f.Rules[i]
			break
		}
	}
	f.mu.Unlock()
	f.Journal.add(f.HostName + ": " + text)
	if rule == nil {
		return host.Result{}, nil
	}
	stdout, err := rule.Stdout, rule.Err
	if rule.Reply != nil {
		stdout, err = rule.Reply(in)
	}
	res := host.Result{}
	if c.Stdout != nil {
		io.WriteString(c.Stdout, stdout)
	} else {
		res.Stdout = []byte(stdout)
	}
	if err != nil {
		res.ExitCode = 1
	}
	return res, err
}

// Upload implements host.Host: it records the file, and skips one whose content it
// already holds.
func (f *FakeHost) Upload(ctx context.Context, file host.File) (host.UploadResult, error) {
	if err := ctx.Err(); err != nil {
		return host.UploadResult{}, err
	}
	var data []byte
	var err error
	if file.LocalPath != "" {
		data, err = os.ReadFile(file.LocalPath)
	} else {
		data = make([]byte, file.Size)
		_, err = file.Src.ReadAt(data, 0)
	}
	if err != nil && err != io.EOF {
		return host.UploadResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.uploads = append(f.uploads, file)
	if f.files == nil {
		f.files = map[string][]byte{}
	}
	if old, ok := f.files[file.Dst]; ok && string(old) == string(data) {
		return host.UploadResult{Skipped: true}, nil
	}
	f.files[file.Dst] = data
	f.Journal.add(f.HostName + ": upload " + file.Dst)
	return host.UploadResult{Bytes: int64(len(data))}, nil
}

// Ran lists the commands run so far, by display text.
func (f *FakeHost) Ran() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ran...)
}

// Stdin lists what each command got on its standard input, in the order of Ran.
func (f *FakeHost) Stdin() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.stdin...)
}

// File returns the content of an uploaded file, and whether there is one.
func (f *FakeHost) File(path string) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.files[path]
	return b, ok
}

// Journal records events from several fake hosts in the order they happened.
type Journal struct {
	mu     sync.Mutex
	events []string
}

func (j *Journal) add(e string) {
	if j == nil {
		return
	}
	j.mu.Lock()
	j.events = append(j.events, e)
	j.mu.Unlock()
}

// Events lists what happened, in order.
func (j *Journal) Events() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.events...)
}
