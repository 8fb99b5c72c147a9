package config

import (
	"path"
	"slices"
	"strings"
)

// KubeadmSecurity is the posture of a cluster made by stock kubeadm init: none of the
// [security] switches. A host joining such a cluster follows it, so that its apiserver
// reads Secrets as the others do and needs no files kubeadm never shares.
func KubeadmSecurity() Security {
	off := func() *bool { b := false; return &b }
	return Security{
		EncryptSecrets:          off(),
		PodSecurity:             PodSecurityPrivileged,
		Profiling:               true,
		RestrictAnonymous:       off(),
		KubeProxyLocalEndpoints: off(),
		Audit:                   Audit{Enabled: off()},
	}
}

// validateSecurity checks the [security] table, and the apiserver flags that would
// contradict it.
func (c *Cluster) validateSecurity(l *problemList) {
	s := c.Security
	if !slices.Contains(PodSecurityLevels, s.PodSecurity) {
		l.add("security.pod_security", "%q is not a Pod Security Standard level; want %s (\"privileged\" enforces nothing)", s.PodSecurity, orList(quoteAll(PodSecurityLevels)))
	}
	if p := s.Audit.Path; !path.IsAbs(p) || strings.HasSuffix(p, "/") || path.Clean(p) != p {
		l.add("security.audit.path", "%q is not an absolute, clean file path; want e.g. %q", p, DefaultAuditLogPath)
	}
	for _, n := range []struct {
		key, unit string
		v         int
	}{{"max_age", "days", s.Audit.MaxAge}, {"max_backups", "files", s.Audit.MaxBackups}, {"max_size", "megabytes", s.Audit.MaxSize}} {
		if n.v < 0 {
			l.add("security.audit."+n.key, "%d is negative; want a positive number of %s, or leave the key out for the default", n.v, n.unit)
		}
	}
	if s.RestrictsAnonymous() {
		for _, k := range sortedKeys(c.APIServer.ExtraArgs) {
			if strings.TrimLeft(k, "-") == "anonymous-auth" {
				l.add(joinKey("apiserver.extra_args", k), "cannot be set while security.restrict_anonymous is true: the apiserver refuses --anonymous-auth next to an authentication configuration that sets anonymous access; remove it, or set security.restrict_anonymous = false")
			}
		}
	}
}
