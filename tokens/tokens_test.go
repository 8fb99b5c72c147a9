package tokens

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	const prefix = `invalid bootstrap token: token must look like "abcdef.0123456789abcdef" ([a-z0-9]{6}.[a-z0-9]{16}): `
	tests := []struct {
		name    string
		in      string
		want    Token
		wantErr string // after prefix
	}{
		{name: "valid", in: "k3x9p2.q8w7e6r5t4y3u2i1", want: Token{ID: "k3x9p2", Secret: "q8w7e6r5t4y3u2i1"}},
		{name: "digits only", in: "012345.0123456789012345", want: Token{ID: "012345", Secret: "0123456789012345"}},
		{name: "empty", in: "", wantErr: `it has no "." between the ID and the secret`},
		{name: "no dot", in: "k3x9p2q8w7e6r5t4y3u2i1", wantErr: `it has no "." between the ID and the secret`},
		{name: "short ID", in: "k3x9p.q8w7e6r5t4y3u2i1", wantErr: `the ID before the "." has 5 characters, want 6`},
		{name: "swapped", in: "q8w7e6r5t4y3u2i1.k3x9p2", wantErr: `the ID before the "." has 16 characters, want 6`},
		{name: "uppercase ID", in: "k3X9p2.q8w7e6r5t4y3u2i1", wantErr: `the ID before the "." has an uppercase letter at position 3`},
		{name: "short secret", in: "k3x9p2.q8w7e6r5t4y3u2i", wantErr: `the secret after the "." has 15 characters, want 16`},
		{name: "long secret", in: "k3x9p2.q8w7e6r5t4y3u2i1o", wantErr: `the secret after the "." has 17 characters, want 16`},
		{name: "uppercase secret", in: "k3x9p2.q8w7e6r5t4Y3U2I1", wantErr: `the secret after the "." has an uppercase letter at position 11`},
		{name: "second dot", in: "k3x9p2.q8w7e6r5.4y3u2i1", wantErr: `the secret after the "." has a character that is not a lowercase letter or digit at position 9`},
		{name: "space", in: "k3x9p2.q8w7e6r5t4y3u2i ", wantErr: `the secret after the "." has a character that is not a lowercase letter or digit at position 16`},
		// Lengths and positions count bytes: "é" is two.
		{name: "non-ASCII", in: "k3x9p2.q8w7e6r5t4y3u2é", wantErr: `the secret after the "." has a character that is not a lowercase letter or digit at position 15`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("Parse(%q) = %v, want an error", tc.in, got.Redacted())
				}
				if d := cmp.Diff(prefix+tc.wantErr, err.Error()); d != "" {
					t.Errorf("error (-want +got):\n%s", d)
				}
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("error %v does not wrap ErrInvalid", err)
				}
				if _, secret, ok := strings.Cut(tc.in, "."); ok && len(secret) > 3 && strings.Contains(err.Error(), secret) {
					t.Errorf("error %q repeats the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("Parse (-want +got):\n%s", d)
			}
			if got.Reveal() != tc.in {
				t.Errorf("String() = %q, want %q", got.String(), tc.in)
			}
		})
	}
}

func TestGenerate(t *testing.T) {
	format := regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`)
	seen := map[string]bool{}
	for range 100 {
		tok, err := Generate()
		if err != nil {
			t.Fatal(err)
		}
		s := tok.Reveal()
		if !format.MatchString(s) {
			t.Fatalf("Generate() = %q, not a bootstrap token", s)
		}
		if seen[s] {
			t.Fatalf("Generate() repeated %q", s)
		}
		seen[s] = true
		back, err := Parse(s)
		if err != nil || back != tok {
			t.Fatalf("Parse(Generate().String()) = %v, %v", back.Redacted(), err)
		}
	}
}

func TestRedacted(t *testing.T) {
	tok := Token{ID: "abcdef", Secret: "0123456789abcdef"}
	if got, want := tok.Redacted(), "abcdef.<redacted>"; got != want {
		t.Errorf("Redacted() = %q, want %q", got, want)
	}
	if got := fmt.Sprintf("%#v", tok); strings.Contains(got, tok.Secret) {
		t.Errorf("%%#v = %q shows the secret", got)
	}
	if got, want := tok.Reveal(), "abcdef.0123456789abcdef"; got != want {
		t.Errorf("Reveal() = %q, want %q", got, want)
	}
}

// TestSlogNeverLogsSecret logs a token every way a caller might, through both standard
// handlers, and checks the secret never shows while the ID does.
func TestSlogNeverLogsSecret(t *testing.T) {
	tok := Token{ID: "abcdef", Secret: "0123456789abcdef"}
	handlers := map[string]func(*bytes.Buffer) slog.Handler{
		"text": func(b *bytes.Buffer) slog.Handler {
			return slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})
		},
		"json": func(b *bytes.Buffer) slog.Handler {
			return slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})
		},
	}
	calls := map[string]func(l *slog.Logger){
		"key-value": func(l *slog.Logger) { l.Info("created token", "token", tok) },
		"pointer":   func(l *slog.Logger) { l.Info("created token", "token", &tok) },
		"slog.Any":  func(l *slog.Logger) { l.Debug("created token", slog.Any("token", tok)) },
		"group":     func(l *slog.Logger) { l.Info("join", slog.Group("bootstrap", "token", tok)) },
		"With":      func(l *slog.Logger) { l.With("token", tok).Warn("expiring") },
		"LogAttrs":  func(l *slog.Logger) { l.LogAttrs(context.Background(), slog.LevelError, "x", slog.Any("t", tok)) },
	}
	for hname, newHandler := range handlers {
		for cname, call := range calls {
			t.Run(hname+"/"+cname, func(t *testing.T) {
				var buf bytes.Buffer
				call(slog.New(newHandler(&buf)))
				out := buf.String()
				if strings.Contains(out, tok.Secret) {
					t.Errorf("log shows the secret: %s", out)
				}
				if !strings.Contains(out, "abcdef.<redacted>") {
					t.Errorf("log lacks the redacted token: %s", out)
				}
			})
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"abcdef.0123456789abcdef", "", ".", "abcdef.", ".0123456789abcdef", "ABCDEF.0123456789ABCDEF",
		"abcdef.0123456789abcdef.", "abcdef..123456789abcdef", "abcdef.0123456789abcdé", "0123456789abcdef.abcdef",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q): error %v does not wrap ErrInvalid", s, err)
			}
			// The message depends on the input's shape only, never its content: the same
			// input with every character swapped for another of its class gives the same
			// message, so no part of the input can be in it.
			if other, err2 := Parse(swapClasses(s)); err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("Parse(%q) = %q but Parse(%q) = %v, %v: the message depends on the content",
					s, err, swapClasses(s), other.Redacted(), err2)
			}
			return
		}
		if tok.Reveal() != s {
			t.Fatalf("Parse(%q).Reveal() = %q", s, tok.Reveal())
		}
		back, err := Parse(tok.Reveal())
		if err != nil || back != tok {
			t.Fatalf("round trip of %q: %v, %v", s, back.Redacted(), err)
		}
		if strings.Contains(tok.Redacted(), tok.Secret) {
			t.Fatalf("Redacted() = %q shows the secret", tok.Redacted())
		}
	})
}

// swapClasses replaces every byte by a different one of the same class: a lowercase letter
// by another, a digit by another, an uppercase letter by another; any other byte but "." by
// a different byte that is neither a letter, a digit nor ".".
func swapClasses(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			b[i] = 'a' + (c-'a'+1)%26
		case c >= 'A' && c <= 'Z':
			b[i] = 'A' + (c-'A'+1)%26
		case c >= '0' && c <= '9':
			b[i] = '0' + (c-'0'+1)%10
		case c == '.':
		case c == '#':
			b[i] = '%'
		default:
			b[i] = '#'
		}
	}
	return string(b)
}

// TestFormattingNeverShowsSecret formats a token every way fmt and encoding/json can, on
// its own, through a pointer and inside a struct, and checks only the ID shows.
func TestFormattingNeverShowsSecret(t *testing.T) {
	tok := Token{ID: "abcdef", Secret: "0123456789abcdef"}
	holder := struct{ Tok Token }{tok}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
		for _, arg := range []any{tok, &tok, holder, &holder, []Token{tok}} {
			outs = append(outs, fmt.Sprintf(verb, arg))
		}
	}
	outs = append(outs, fmt.Sprint(tok), fmt.Sprintln(tok), tok.String(), fmt.Sprintf("%v", error(fmt.Errorf("token %v", tok))))
	for _, v := range []any{tok, &tok, holder} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, string(b))
	}
	for _, out := range outs {
		if strings.Contains(out, tok.Secret) || strings.Contains(out, fmt.Sprintf("%x", tok.Secret)) {
			t.Errorf("formatted token shows the secret: %s", out)
		}
	}
	if got, want := tok.String(), "abcdef.<redacted>"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
