package manifests

import (
	"bytes"
	"path"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/kforge/kforge/config"
)

func TestSecurityFilesGolden(t *testing.T) {
	files, err := APIServerFiles(defaultParams())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Path)
		if f.Mode != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f.Path, f.Mode)
		}
		checkGolden(t, filepath.Join("security", path.Base(f.Path)), f.Data)
	}
	want := []string{"/etc/kubernetes/apiserver/audit-policy.yaml", "/etc/kubernetes/apiserver/admission-config.yaml", "/etc/kubernetes/apiserver/authentication-config.yaml"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("files %q, want %q", names, want)
	}

	key := make([]byte, EncryptionKeySize)
	for i := range key {
		key[i] = byte(i)
	}
	enc, err := EncryptionConfig(key)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, filepath.Join("security", EncryptionConfigFile), enc)
	if _, err := EncryptionConfig(key[:16]); err == nil {
		t.Error("EncryptionConfig accepted a 16-byte key")
	}
}

// securityFlagNames are the apiserver flags the [security] switches add.
var securityFlagNames = []string{
	"encryption-provider-config", "audit-policy-file", "audit-log-path", "audit-log-maxage",
	"audit-log-maxbackup", "audit-log-maxsize", "admission-control-config-file", "authentication-config",
}

func TestSecurityFlagsFollowSwitches(t *testing.T) {
	p := defaultParams()
	api := flags(t, mustBuild(t, APIServer, p))
	for _, n := range securityFlagNames {
		if api[n] == "" {
			t.Errorf("default apiserver has no --%s", n)
		}
	}
	for _, b := range []func(Params) (*corev1.Pod, error){APIServer, ControllerManager, Scheduler} {
		if got := flags(t, mustBuild(t, b, p))["profiling"]; got != "false" {
			t.Errorf("--profiling=%q by default, want false", got)
		}
	}

	off := false
	c := config.Default()
	c.Security = config.Security{EncryptSecrets: &off, RestrictAnonymous: &off, Profiling: true, Audit: config.Audit{Enabled: &off}}
	p.Cluster = c
	pod := mustBuild(t, APIServer, p)
	api = flags(t, pod)
	for _, n := range append(securityFlagNames, "profiling") {
		if v, ok := api[n]; ok {
			t.Errorf("with every switch off the apiserver still has --%s=%s", n, v)
		}
	}
	for _, v := range pod.Spec.Volumes {
		if v.Name == "apiserver-config" || v.Name == "audit-log" {
			t.Errorf("with every switch off the apiserver still mounts %s", v.Name)
		}
	}
	for _, b := range []func(Params) (*corev1.Pod, error){ControllerManager, Scheduler} {
		if v, ok := flags(t, mustBuild(t, b, p))["profiling"]; ok {
			t.Errorf("profiling on, yet --profiling=%s", v)
		}
	}
	if files, err := APIServerFiles(p); err != nil || len(files) != 0 {
		t.Errorf("APIServerFiles with every switch off = %d files, %v; want none", len(files), err)
	}
}

// Every file a security flag names is inside a volume the apiserver mounts, at the same
// path, and the files APIServerFiles writes are the ones the flags name.
func TestSecurityFilesMounted(t *testing.T) {
	for _, p := range []Params{defaultParams(), joinParams()} {
		pod := mustBuild(t, APIServer, p)
		api := flags(t, pod)
		files, err := APIServerFiles(p)
		if err != nil {
			t.Fatal(err)
		}
		written := map[string]bool{EncryptionConfigPath(p.CertDir): true}
		for _, f := range files {
			written[f.Path] = true
		}
		for _, n := range []string{"encryption-provider-config", "audit-policy-file", "admission-control-config-file", "authentication-config", "audit-log-path"} {
			file := api[n]
			if n != "audit-log-path" && !written[file] {
				t.Errorf("--%s=%s: no such file is written", n, file)
			}
			mounted := false
			for _, m := range pod.Spec.Containers[0].VolumeMounts {
				if within(path.Dir(file), m.MountPath) {
					mounted = true
					if n == "audit-log-path" && m.ReadOnly {
						t.Errorf("--%s=%s is on a read-only mount", n, file)
					}
				}
			}
			if !mounted {
				t.Errorf("--%s=%s is on no volume the apiserver mounts", n, file)
			}
		}
	}
}

func TestAdmissionConfigLevel(t *testing.T) {
	for _, level := range config.PodSecurityLevels {
		p := defaultParams()
		p.Cluster.Security.PodSecurity = level
		files, err := APIServerFiles(p)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Plugins []struct {
				Name          string
				Configuration struct {
					Defaults   map[string]string
					Exemptions struct{ Namespaces []string }
				}
			}
		}
		for _, f := range files {
			if path.Base(f.Path) != AdmissionConfigFile {
				continue
			}
			if err := yaml.Unmarshal(f.Data, &doc); err != nil {
				t.Fatal(err)
			}
		}
		if len(doc.Plugins) != 1 || doc.Plugins[0].Name != "PodSecurity" {
			t.Fatalf("level %s: plugins %+v, want PodSecurity alone", level, doc.Plugins)
		}
		d := doc.Plugins[0].Configuration.Defaults
		if d["enforce"] != level || d["warn"] != "restricted" || d["audit"] != "restricted" {
			t.Errorf("level %s: defaults %v", level, d)
		}
		if ns := doc.Plugins[0].Configuration.Exemptions.Namespaces; len(ns) != 1 || ns[0] != "kube-system" {
			t.Errorf("level %s: exempt namespaces %v, want kube-system", level, ns)
		}
	}
}

func TestAnonymousPathsHoldClusterInfo(t *testing.T) {
	files, err := APIServerFiles(defaultParams())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if path.Base(f.Path) == AuthenticationConfigFile {
			for _, want := range []string{"path: /readyz", "path: /api/v1/namespaces/kube-public/configmaps/cluster-info", "enabled: true"} {
				if !bytes.Contains(f.Data, []byte(want)) {
					t.Errorf("authentication configuration lacks %q:\n%s", want, f.Data)
				}
			}
			return
		}
	}
	t.Fatal("no authentication configuration")
}

// A change to a file the apiserver reads, with the same flags, must change its manifest:
// the kubelet restarts a static pod only then.
func TestAPIServerManifestFollowsItsFiles(t *testing.T) {
	render := func(level string) string {
		p := defaultParams()
		p.Cluster.Security.PodSecurity = level
		pod, err := APIServer(p)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Render(pod)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	base, restricted := render(config.PodSecurityBaseline), render(config.PodSecurityRestricted)
	if base == restricted {
		t.Fatal("the apiserver manifest is the same for pod_security baseline and restricted: a changed admission configuration would never restart it")
	}
	if base != render(config.PodSecurityBaseline) {
		t.Fatal("the apiserver manifest is not stable across renders")
	}
}
