package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// DecodeError is returned by Decode when the text of a cluster.toml is wrong: a syntax error,
// unknown keys, or values of the wrong type. It lists every problem found, in file order
// (a syntax error stops the search, so it comes alone).
type DecodeError struct {
	// File is the name the problems are reported against, as given to Decode.
	File     string
	Problems []Problem
}

// Problem is one thing wrong with the text of a cluster.toml.
type Problem struct {
	// Line and Column are 1-based (Column counts bytes); 0 when not known.
	Line, Column int
	// Key is the dotted path of the key at fault, such as "hosts[1].ssh.port"; empty for
	// syntax errors.
	Key string
	// Message is the complete description, naming the key: `unknown key "etcd.locall"`.
	Message string
}

// Error lists the problems one per line as FILE:LINE:COL: MESSAGE, at most MaxReported of
// them and then how many more there are.
func (e *DecodeError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		if i == MaxReported {
			b.WriteString(position(e.File, 0, 0))
			b.WriteString(moreLine(len(e.Problems) - i))
			break
		}
		b.WriteString(position(e.File, p.Line, p.Column))
		b.WriteString(p.Message)
	}
	return b.String()
}

// position formats the "file:line:col: " prefix of an error line, leaving out what is unknown.
func position(file string, line, col int) string {
	var parts []string
	if file != "" {
		parts = append(parts, file)
	}
	if line > 0 {
		parts = append(parts, fmt.Sprint(line))
		if col > 0 {
			parts = append(parts, fmt.Sprint(col))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, ":") + ": "
}

// ErrTooLarge is returned by Load for a file over MaxFileSize bytes.
var ErrTooLarge = errors.New("larger than 1 MiB")

// Load reads, decodes, defaults and validates the cluster.toml at path. It reads at most
// MaxFileSize bytes: a larger file, or an endless one such as /dev/zero, is refused with
// ErrTooLarge.
func Load(path string) (*Cluster, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading cluster config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading cluster config: %w", err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("reading cluster config %s: %w; a cluster.toml is a few KiB", path, ErrTooLarge)
	}
	return Decode(data, path)
}

// Decode parses a cluster.toml, fills in defaults and validates the result. filename is
// only used in error messages. Unknown keys are errors. The error is a *DecodeError when the
// text does not fit the schema, or a *ValidationError (with File and Line set) when a value
// is not acceptable; either lists every problem at once. An empty document is valid.
func Decode(data []byte, filename string) (*Cluster, error) {
	// Some editors start UTF-8 files with a byte order mark; TOML has no place for it.
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	idx, syntax := indexDocument(data)
	if syntax != nil {
		return nil, &DecodeError{File: filename, Problems: []Problem{*syntax}}
	}
	if len(idx.problems) > 0 {
		return nil, &DecodeError{File: filename, Problems: idx.problems}
	}

	c := &Cluster{}
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return nil, &DecodeError{File: filename, Problems: idx.fromTOMLError(err)}
	}

	// Zero means "use the default" for these fields, so the problem must be caught before
	// SetDefaults replaces a zero the user wrote on purpose.
	problems := explicitZeros(c, idx)
	SetDefaults(c)
	problems = append(problems, c.validate()...)
	if len(problems) > 0 {
		return nil, problems.toError(filename, idx)
	}
	return c, nil
}

// fromTOMLError converts an error from go-toml's decoder into problems with positions and
// the key paths validation uses.
func (idx *docIndex) fromTOMLError(err error) []Problem {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var out []Problem
		for i := range strict.Errors {
			e := &strict.Errors[i]
			line, col := e.Position()
			key := idx.keyAt(line, col, e.Key())
			out = append(out, Problem{Line: line, Column: col, Key: key, Message: fmt.Sprintf("unknown key %s", quoteValue(key))})
		}
		return out
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, col := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		p := Problem{Line: line, Column: col, Message: msg}
		if len(de.Key()) > 0 {
			p.Key = idx.keyAt(line, col, de.Key())
			p.Message = clip(p.Key) + ": " + msg
		}
		return []Problem{p}
	}
	return []Problem{{Message: fmt.Sprintf("decoding: %v", err)}}
}

// keyAt finds the indexed path go-toml meant by key at line:col. go-toml's keys carry no
// array indexes ("hosts.ssh.port") and are sometimes relative to the current table
// ("name" for "hosts.name"), so the best match is the path of that shape, or ending in it,
// written last at or before the position.
func (idx *docIndex) keyAt(line, col int, key toml.Key) string {
	var want string
	for _, k := range key {
		want = joinKey(want, k)
	}
	before := func(a, b keyPos) bool { return a.line < b.line || a.line == b.line && a.col < b.col }
	at := keyPos{line: line, col: col}
	best, bestPos := "", keyPos{}
	for path, pos := range idx.keys {
		if shape := stripIndexes(path); before(at, pos) || shape != want && !strings.HasSuffix(shape, "."+want) {
			continue
		}
		if best == "" || before(bestPos, pos) || pos == bestPos && path < best {
			best, bestPos = path, pos
		}
	}
	if best == "" {
		return want
	}
	return best
}

// explicitZeros reports zeros written in the file for fields where zero means "unset", and
// which SetDefaults would therefore silently replace.
func explicitZeros(c *Cluster, idx *docIndex) problemList {
	var out problemList
	written := func(path string) bool { _, ok := idx.keys[path]; return ok }
	if c.Certificates.CAValidity.Duration == 0 && written("certificates.ca_validity") {
		out.add("certificates.ca_validity", `%s is not positive; want a lifetime such as "10y"`, fmtDuration(c.Certificates.CAValidity))
	}
	if c.Certificates.CertValidity.Duration == 0 && written("certificates.cert_validity") {
		out.add("certificates.cert_validity", `%s is not positive; want a lifetime such as "365d"`, fmtDuration(c.Certificates.CertValidity))
	}
	if c.Addons.DNS.Replicas == 0 && !c.Addons.DNS.Disabled && written("addons.dns.replicas") {
		out.add("addons.dns.replicas", "0 is less than 1; want at least 1, or set addons.dns.disabled = true")
	}
	for _, n := range []struct {
		key string
		v   int
	}{{"max_age", c.Security.Audit.MaxAge}, {"max_backups", c.Security.Audit.MaxBackups}, {"max_size", c.Security.Audit.MaxSize}} {
		if p := "security.audit." + n.key; n.v == 0 && written(p) {
			out.add(p, "0 is not positive; want a positive number, or leave the key out for the default")
		}
	}
	for i, h := range c.Hosts {
		if p := fmt.Sprintf("hosts[%d].ssh.port", i); h.SSH.Port == 0 && written(p) {
			out.add(p, "0 is not a port; want 1-65535")
		}
	}
	return out
}
