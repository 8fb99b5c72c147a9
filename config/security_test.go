package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSecurityDefaultsOn(t *testing.T) {
	s := Default().Security
	if !s.EncryptsSecrets() || !s.RestrictsAnonymous() || !s.KubeProxyBindsLoopback() || !s.Audits() || s.Profiling {
		t.Errorf("defaults: encrypt %v, restrict anonymous %v, kube-proxy loopback %v, audit %v, profiling %v; want every switch on and profiling off",
			s.EncryptsSecrets(), s.RestrictsAnonymous(), s.KubeProxyBindsLoopback(), s.Audits(), s.Profiling)
	}
	want := Audit{Enabled: s.Audit.Enabled, Path: DefaultAuditLogPath, MaxAge: 30, MaxBackups: 10, MaxSize: 100}
	if diff := cmp.Diff(want, s.Audit); diff != "" {
		t.Errorf("audit defaults (-want +got):\n%s", diff)
	}
	if s.PodSecurity != PodSecurityBaseline {
		t.Errorf("pod_security = %q, want %q", s.PodSecurity, PodSecurityBaseline)
	}
}

func TestSecuritySwitchesOffRoundTrip(t *testing.T) {
	doc := `[security]
encrypt_secrets = false
pod_security = "privileged"
profiling = true
restrict_anonymous = false
kube_proxy_local_endpoints = false

[security.audit]
enabled = false
`
	c, err := Decode([]byte(doc), "cluster.toml")
	if err != nil {
		t.Fatal(err)
	}
	s := c.Security
	if s.EncryptsSecrets() || s.RestrictsAnonymous() || s.KubeProxyBindsLoopback() || s.Audits() || !s.Profiling || s.PodSecurity != PodSecurityPrivileged {
		t.Fatalf("switches not honoured: %+v", s)
	}
	enc, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(enc, "stored")
	if err != nil {
		t.Fatalf("decoding the encoded cluster: %v\n%s", err, enc)
	}
	if diff := cmp.Diff(c.Security, back.Security); diff != "" {
		t.Errorf("security after Encode and Decode (-want +got):\n%s", diff)
	}
}

func TestSecurityValidationLines(t *testing.T) {
	doc := `[apiserver]
extra_args = { anonymous-auth = "false" }

[security]
pod_security = "strict"
encrypt_secrets = "yes"

[security.audit]
path = "var/log/audit.log"
max_age = -1
max_backups = 0
color = "red"
`
	_, err := Decode([]byte(doc), "cluster.toml")
	if err == nil {
		t.Fatal("Decode accepted a bad [security] table")
	}
	// Shape errors (a string for a bool, an unknown key) come first and alone.
	shape := err.Error()
	for _, want := range []string{"cluster.toml:6", "security.encrypt_secrets", "cluster.toml:12", "security.audit.color"} {
		if !strings.Contains(shape, want) {
			t.Errorf("error does not mention %q:\n%s", want, shape)
		}
	}

	doc = `[apiserver]
extra_args = { anonymous-auth = "false" }

[security]
pod_security = "strict"

[security.audit]
path = "var/log/audit.log"
max_age = -1
max_backups = 0
`
	want := []FieldError{
		{Path: "security.audit.max_backups", Line: 10, Message: "0 is not positive; want a positive number, or leave the key out for the default"},
		{Path: "security.pod_security", Line: 5, Message: `"strict" is not a Pod Security Standard level; want "privileged", "baseline" or "restricted" ("privileged" enforces nothing)`},
		{Path: "security.audit.path", Line: 8, Message: `"var/log/audit.log" is not an absolute, clean file path; want e.g. "/var/log/kubernetes/audit/audit.log"`},
		{Path: "security.audit.max_age", Line: 9, Message: "-1 is negative; want a positive number of days, or leave the key out for the default"},
		{Path: "apiserver.extra_args.anonymous-auth", Line: 2, Message: "cannot be set while security.restrict_anonymous is true: the apiserver refuses --anonymous-auth next to an authentication configuration that sets anonymous access; remove it, or set security.restrict_anonymous = false"},
	}
	if diff := cmp.Diff(want, validationErrors(t, doc)); diff != "" {
		t.Errorf("validation errors mismatch (-want +got):\n%s", diff)
	}
}
