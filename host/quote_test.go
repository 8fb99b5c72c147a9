package host_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kforge/kforge/host"
)

func TestShellQuote(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"nothing", nil, ""},
		{"plain words stay bare", []string{"systemctl", "restart", "kubelet.service"}, "systemctl restart kubelet.service"},
		{"paths and flags", []string{"--config=/etc/kubernetes/kubelet.conf"}, "'--config=/etc/kubernetes/kubelet.conf'"},
		{"empty", []string{""}, "''"},
		{"space", []string{"a b"}, "'a b'"},
		{"single quote", []string{"it's"}, `'it'\''s'`},
		{"only quotes", []string{"''"}, `''\'''\'''`},
		{"dollar", []string{"$HOME"}, "'$HOME'"},
		{"assignment-like first word", []string{"A=b", "c"}, "'A=b' c"},
		{"tilde", []string{"~root"}, "'~root'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := host.ShellQuote(tc.args...); got != tc.want {
				t.Errorf("ShellQuote(%q) = %s, want %s", tc.args, got, tc.want)
			}
		})
	}
}

// TestShellQuoteRoundTrip has sh parse the quoted words back and print each
// one NUL-terminated.
func TestShellQuoteRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"plain", []string{"a", "b", "c"}},
		{"empty words", []string{"", "x", ""}},
		{"quotes", []string{"it's", `"double"`, `'`, `''`, `\'`}},
		{"expansions", []string{"$HOME", "${PATH}", "$(id)", "`id`", "$((1+2))", "~", "~root"}},
		{"globs", []string{"*", "?", "[a-z]", "{a,b}"}},
		{"operators", []string{";", "&&", "||", "|", ">", "<", "&", "(", ")", "#comment", "!"}},
		{"whitespace", []string{" ", "\t", "a\nb", "trailing\n"}},
		{"backslashes", []string{`\`, `\\`, `a\nb`, `\$HOME`}},
		{"assignment", []string{"A=b", "--flag=x y"}},
		{"unicode", []string{"héllo wörld", "日本語", "emoji 🚀"}},
		{"dash words", []string{"-n", "-e", "--", "-"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			script := `printf '%s\0' ` + host.ShellQuote(tc.args...)
			out, err := exec.Command("sh", "-c", script).Output()
			if err != nil {
				t.Fatalf("sh -c %q: %v", script, err)
			}
			got := strings.Split(string(out), "\x00")
			got = got[:len(got)-1] // after the last NUL
			if diff := cmp.Diff(tc.args, got); diff != "" {
				t.Errorf("sh parsed %s differently (-want +got):\n%s", host.ShellQuote(tc.args...), diff)
			}
		})
	}
}
