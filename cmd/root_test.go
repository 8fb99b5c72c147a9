package cmd

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

// TestExecuteTakesSecretsOutOfTheEnvironment checks that kforge reads KFORGE_TOKEN and
// KFORGE_CERTIFICATE_KEY at startup and unsets them, so that no process it starts (the
// kubelet and containerd under the supervisor among them) inherits them.
func TestExecuteTakesSecretsOutOfTheEnvironment(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
	}{
		{name: "join reads the token", env: map[string]string{envToken: "not-a-token"},
			args: []string{"join", "127.0.0.1:6443"}, wantErr: "--token: invalid bootstrap token"},
		{name: "join reads the certificate key", env: map[string]string{envToken: "k4fg3x.q7w8e9r0t1y2u3i4", envCertificateKey: "abc"},
			args: []string{"join", "127.0.0.1:6443", "--discovery-token-unsafe-skip-ca-verification"}, wantErr: "--certificate-key: invalid certificate key"},
		{name: "init reads the token", env: map[string]string{envToken: "not-a-token"},
			args: []string{"init", "--dry-run"}, wantErr: "--token: invalid bootstrap token"},
		{name: "a command that needs neither", env: map[string]string{envToken: "k4fg3x.q7w8e9r0t1y2u3i4", envCertificateKey: strings.Repeat("5a", 32)},
			args: []string{"version"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var out bytes.Buffer
			err := Execute(context.Background(), Streams{In: strings.NewReader(""), Out: &out, Err: &out}, tc.args)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("kforge %s: %v", strings.Join(tc.args, " "), err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("kforge %s: err = %v, want one saying %q (the secret was not read)", strings.Join(tc.args, " "), err, tc.wantErr)
			}
			for k := range tc.env {
				if v, ok := os.LookupEnv(k); ok {
					t.Errorf("%s is still in kforge's environment after startup (%d characters)", k, len(v))
				}
			}
		})
	}
}
