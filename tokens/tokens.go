// Package tokens holds bootstrap tokens, "abcdef.0123456789abcdef": a public ID and a
// secret. The secret never reaches a log, an error message or output by mistake: String,
// every fmt verb, encoders and slog show "id.<redacted>", Reveal is the one way to the
// whole token, and Parse never echoes its input.
package tokens

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"

	"github.com/kforge/kforge/internal/redact"
)

// Token is a bootstrap token.
type Token struct {
	// ID is public: it names the Secret kube-system/bootstrap-token-<ID> and the user
	// system:bootstrap:<ID>.
	ID string
	// Secret authenticates the token. Never log it. fmt cannot redact it inside a struct
	// that holds a Token in an unexported field, so format such structs with care.
	Secret string
}

// format is the shape of a token, for error messages.
const format = `token must look like "abcdef.0123456789abcdef" ([a-z0-9]{6}.[a-z0-9]{16})`

// ErrInvalid is wrapped by every Parse error.
var ErrInvalid = errors.New("invalid bootstrap token")

// Parse reads "id.secret". Errors say what is wrong without repeating any of the input,
// since the input may hold a secret (or an ID and secret swapped).
func Parse(s string) (Token, error) {
	id, secret, ok := strings.Cut(s, ".")
	switch {
	case !ok:
		return Token{}, invalid(`it has no "." between the ID and the secret`)
	case !bootstraputil.IsValidBootstrapTokenID(id):
		return Token{}, invalid(fmt.Sprintf("the ID before the \".\" %s", describe(id, bootstrapapi.BootstrapTokenIDBytes)))
	case !bootstraputil.IsValidBootstrapToken(s):
		return Token{}, invalid(fmt.Sprintf("the secret after the \".\" %s", describe(secret, bootstrapapi.BootstrapTokenSecretBytes)))
	}
	return Token{ID: id, Secret: secret}, nil
}

func invalid(why string) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, format, why)
}

// describe says why part is not n characters of [a-z0-9], without showing it.
func describe(part string, n int) string {
	if len(part) != n {
		return fmt.Sprintf("has %d characters, want %d", len(part), n)
	}
	for i := 0; i < len(part); i++ {
		c := part[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			what := "a character that is not a lowercase letter or digit"
			if c >= 'A' && c <= 'Z' {
				what = "an uppercase letter"
			}
			return fmt.Sprintf("has %s at position %d", what, i+1)
		}
	}
	return "is not valid"
}

// Generate returns a new random token (crypto/rand).
func Generate() (Token, error) {
	s, err := bootstraputil.GenerateBootstrapToken()
	if err != nil {
		return Token{}, fmt.Errorf("generating bootstrap token: %w", err)
	}
	t, err := Parse(s)
	if err != nil {
		return Token{}, fmt.Errorf("generating bootstrap token: %w", err)
	}
	return t, nil
}

// Reveal returns the whole token, "id.secret". Call it only where the secret must really
// be written: the token's Secret, a bootstrap kubeconfig, stdin to kforge on a host, and a
// join command the user asked to see. Everything else sees the redacted form.
func (t Token) Reveal() string {
	return bootstraputil.TokenFromIDAndSecret(t.ID, t.Secret)
}

// Redacted returns "id.<redacted>".
func (t Token) Redacted() string {
	return t.ID + ".<redacted>"
}

// String returns the redacted form, so that a token printed by mistake shows only its ID.
func (t Token) String() string { return t.Redacted() }

// GoString keeps the secret out of %#v.
func (t Token) GoString() string {
	return fmt.Sprintf("tokens.Token{ID:%q, Secret:\"<redacted>\"}", t.ID)
}

// Format prints the redacted form for every verb (%x and %d included), and GoString for %#v.
func (t Token) Format(f fmt.State, verb rune) { redact.Format(f, verb, t.Redacted(), t.GoString()) }

// MarshalText makes encoders (encoding/json among them) write the redacted form.
func (t Token) MarshalText() ([]byte, error) { return []byte(t.Redacted()), nil }

// LogValue makes slog log the token as "id.<redacted>".
func (t Token) LogValue() slog.Value {
	return slog.StringValue(t.Redacted())
}
