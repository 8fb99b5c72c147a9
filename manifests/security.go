package manifests

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"strconv"

	"sigs.k8s.io/yaml"

	"github.com/kforge/kforge/config"
)

// Files of the apiserver's security configuration ([security] in cluster.toml).
const (
	// EncryptionConfigFile holds the key that encrypts Secrets in etcd. It lives in the
	// certificate directory, 0600, and is shared with joining control planes like the CAs.
	EncryptionConfigFile = "encryption-config.yaml"
	// APIServerConfigDir is the directory, under the kubeconfig directory, of the
	// apiserver's audit policy, admission and authentication configurations.
	APIServerConfigDir       = "apiserver"
	AuditPolicyFile          = "audit-policy.yaml"
	AdmissionConfigFile      = "admission-config.yaml"
	AuthenticationConfigFile = "authentication-config.yaml"
	// EncryptionKeySize is the size of a secretbox key.
	EncryptionKeySize = 32
	// encryptionKeyName names the key in the provider's key list.
	encryptionKeyName = "key1"
)

// File is a file a component reads: a path as the host sees it, its content and its mode.
type File struct {
	Path string
	Data []byte
	Mode fs.FileMode
}

// EncryptionConfigPath is where the encryption configuration lives for a certificate
// directory.
func EncryptionConfigPath(certDir string) string {
	if certDir == "" {
		certDir = DefaultCertDir
	}
	return path.Join(certDir, EncryptionConfigFile)
}

// AnonymousPaths are the only paths anonymous requests may reach when
// security.restrict_anonymous is on: the health endpoints, and cluster-info, which token
// discovery (kforge join and a stock kubeadm join) reads before it has any credentials.
var AnonymousPaths = []string{
	"/livez",
	"/readyz",
	"/healthz",
	"/api/v1/namespaces/kube-public/configmaps/cluster-info",
}

// APIServerFiles returns the configuration files the apiserver's manifest refers to, as
// the [security] switches ask: the audit policy, the admission configuration (Pod
// Security) and the authentication configuration (anonymous access). The encryption
// configuration is not among them: it holds a key, made once (EncryptionConfig).
func APIServerFiles(p Params) ([]File, error) {
	p, err := p.normalize()
	if err != nil {
		return nil, fmt.Errorf("building the apiserver's configuration files: %w", err)
	}
	s := p.Cluster.Security
	var docs []struct {
		name string
		obj  any
	}
	add := func(name string, obj any) {
		docs = append(docs, struct {
			name string
			obj  any
		}{name, obj})
	}
	if s.Audits() {
		add(AuditPolicyFile, auditPolicy())
	}
	if s.PodSecurity != "" {
		add(AdmissionConfigFile, admissionConfig(s.PodSecurity))
	}
	if s.RestrictsAnonymous() {
		add(AuthenticationConfigFile, authenticationConfig())
	}
	var files []File
	for _, d := range docs {
		b, err := yaml.Marshal(d.obj)
		if err != nil {
			return nil, fmt.Errorf("encoding %s: %w", d.name, err)
		}
		files = append(files, File{Path: p.configFile(d.name), Data: b, Mode: 0o600})
	}
	return files, nil
}

// ConfigHash is "sha256:" and the hex SHA-256 of files' paths and contents, in order: the
// value of ConfigHashAnnotation. The add-ons hash their ConfigMaps' keys and values with it.
func ConfigHash(files []File) string {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%d\x00", f.Path, len(f.Data))
		h.Write(f.Data)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// EncryptionConfig returns an EncryptionConfiguration that encrypts Secrets with
// secretbox under key (EncryptionKeySize random bytes), and still reads Secrets written
// before encryption was on (identity).
func EncryptionConfig(key []byte) ([]byte, error) {
	if len(key) != EncryptionKeySize {
		return nil, fmt.Errorf("building the encryption configuration: the key has %d bytes, want %d", len(key), EncryptionKeySize)
	}
	type keyEntry struct {
		Name   string `json:"name"`
		Secret string `json:"secret"`
	}
	type provider struct {
		Secretbox *struct {
			Keys []keyEntry `json:"keys"`
		} `json:"secretbox,omitempty"`
		Identity *struct{} `json:"identity,omitempty"`
	}
	sb := &struct {
		Keys []keyEntry `json:"keys"`
	}{Keys: []keyEntry{{Name: encryptionKeyName, Secret: base64.StdEncoding.EncodeToString(key)}}}
	cfg := struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Resources  []struct {
			Resources []string   `json:"resources"`
			Providers []provider `json:"providers"`
		} `json:"resources"`
	}{APIVersion: apiserverConfigV1, Kind: "EncryptionConfiguration"}
	cfg.Resources = append(cfg.Resources, struct {
		Resources []string   `json:"resources"`
		Providers []provider `json:"providers"`
	}{Resources: []string{"secrets"}, Providers: []provider{{Secretbox: sb}, {Identity: &struct{}{}}}})
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encoding the encryption configuration: %w", err)
	}
	return b, nil
}

const apiserverConfigV1 = "apiserver.config.k8s.io/v1"

func (p Params) configFile(name string) string {
	return path.Join(p.KubeconfigDir, APIServerConfigDir, name)
}

// securityFlags adds the apiserver flags and volumes of the [security] switches.
func securityFlags(p Params, flags map[string]string, vols []volume) []volume {
	s := p.Cluster.Security
	used := false
	if s.EncryptsSecrets() {
		// In the certificate directory, which the apiserver mounts already.
		flags["encryption-provider-config"] = EncryptionConfigPath(p.CertDir)
	}
	if s.Audits() {
		used = true
		a := s.Audit
		flags["audit-policy-file"] = p.configFile(AuditPolicyFile)
		flags["audit-log-path"] = a.Path
		flags["audit-log-maxage"] = strconv.Itoa(a.MaxAge)
		flags["audit-log-maxbackup"] = strconv.Itoa(a.MaxBackups)
		flags["audit-log-maxsize"] = strconv.Itoa(a.MaxSize)
		vols = append(vols, volume{name: "audit-log", hostPath: path.Dir(a.Path), pathType: "DirectoryOrCreate"})
	}
	if s.PodSecurity != "" {
		used = true
		flags["admission-control-config-file"] = p.configFile(AdmissionConfigFile)
	}
	if s.RestrictsAnonymous() {
		used = true
		flags["authentication-config"] = p.configFile(AuthenticationConfigFile)
	}
	if !s.Profiling {
		flags["profiling"] = "false"
	}
	if used {
		vols = append(vols, volume{name: "apiserver-config", hostPath: path.Join(p.KubeconfigDir, APIServerConfigDir), readOnly: true, pathType: "DirectoryOrCreate"})
	}
	return vols
}

// profilingFlag turns profiling off on the controller-manager and scheduler unless
// security.profiling is set.
func profilingFlag(c *config.Cluster, flags map[string]string) {
	if !c.Security.Profiling {
		flags["profiling"] = "false"
	}
}

// auditPolicy logs every request at the Metadata level (who did what to which object,
// never a body, so Secret values stay out of the log), leaving out health checks, events
// and lease renewals, which are many and say little.
func auditPolicy() any {
	type groupResources struct {
		Group     string   `json:"group"`
		Resources []string `json:"resources,omitempty"`
	}
	type rule struct {
		Level           string           `json:"level"`
		Resources       []groupResources `json:"resources,omitempty"`
		NonResourceURLs []string         `json:"nonResourceURLs,omitempty"`
	}
	return struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		OmitStages []string `json:"omitStages"`
		Rules      []rule   `json:"rules"`
	}{
		APIVersion: "audit.k8s.io/v1",
		Kind:       "Policy",
		OmitStages: []string{"RequestReceived"},
		Rules: []rule{
			{Level: "None", NonResourceURLs: []string{"/livez*", "/readyz*", "/healthz*", "/version"}},
			{Level: "None", Resources: []groupResources{{Group: "", Resources: []string{"events"}}, {Group: "events.k8s.io", Resources: []string{"events"}}}},
			{Level: "None", Resources: []groupResources{{Group: "coordination.k8s.io", Resources: []string{"leases"}}}},
			// Secrets, ConfigMaps and tokens carry credentials: their metadata only, every verb.
			{Level: "Metadata", Resources: []groupResources{
				{Group: "", Resources: []string{"secrets", "configmaps", "serviceaccounts/token"}},
				{Group: "authentication.k8s.io", Resources: []string{"tokenreviews"}},
			}},
			{Level: "Metadata"},
		},
	}
}

// admissionConfig configures the PodSecurity admission plugin: level enforced, restricted
// warned about and audited, everywhere but kube-system, where the control plane's static
// pods, kube-proxy and CoreDNS run with host access. Flannel's namespace carries its own
// privileged labels.
func admissionConfig(level string) any {
	type podSecurity struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Defaults   map[string]string `json:"defaults"`
		Exemptions struct {
			Usernames      []string `json:"usernames"`
			RuntimeClasses []string `json:"runtimeClasses"`
			Namespaces     []string `json:"namespaces"`
		} `json:"exemptions"`
	}
	ps := podSecurity{
		APIVersion: "pod-security.admission.config.k8s.io/v1",
		Kind:       "PodSecurityConfiguration",
		Defaults: map[string]string{
			"enforce": level, "enforce-version": "latest",
			"audit": config.PodSecurityRestricted, "audit-version": "latest",
			"warn": config.PodSecurityRestricted, "warn-version": "latest",
		},
	}
	ps.Exemptions.Usernames, ps.Exemptions.RuntimeClasses = []string{}, []string{}
	ps.Exemptions.Namespaces = []string{"kube-system"}
	type plugin struct {
		Name          string      `json:"name"`
		Configuration podSecurity `json:"configuration"`
	}
	return struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Plugins    []plugin `json:"plugins"`
	}{APIVersion: apiserverConfigV1, Kind: "AdmissionConfiguration", Plugins: []plugin{{Name: "PodSecurity", Configuration: ps}}}
}

// authenticationConfig enables anonymous authentication for AnonymousPaths only.
func authenticationConfig() any {
	type condition struct {
		Path string `json:"path"`
	}
	conds := make([]condition, 0, len(AnonymousPaths))
	for _, p := range AnonymousPaths {
		conds = append(conds, condition{Path: p})
	}
	return struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Anonymous  struct {
			Enabled    bool        `json:"enabled"`
			Conditions []condition `json:"conditions"`
		} `json:"anonymous"`
	}{APIVersion: apiserverConfigV1, Kind: "AuthenticationConfiguration", Anonymous: struct {
		Enabled    bool        `json:"enabled"`
		Conditions []condition `json:"conditions"`
	}{Enabled: true, Conditions: conds}}
}
