package kubelet

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// ContainerdConfigPath is where containerd reads its configuration.
const ContainerdConfigPath = "/etc/containerd/config.toml"

// ContainerdRecordPath holds the sha256 of the config.toml kforge wrote, one per line: a
// file with one of these sums is kforge's to rewrite; any other was written or edited by
// someone else.
const ContainerdRecordPath = ContainerdConfigPath + ".kforge-sha256"

// ContainerdMarker starts every containerd config kforge writes.
const ContainerdMarker = "# Written by kforge (container-runtime)."

// ContainerdParams are what kforge needs from containerd's CRI plugin.
type ContainerdParams struct {
	// SandboxImage is the pause image; it must match the one in the bundle.
	SandboxImage string
	// SystemdCgroup is true when the cgroup driver is systemd.
	SystemdCgroup bool
	// RestrictOOMScoreAdj is true on hosts without CAP_SYS_RESOURCE: containerd then clamps
	// the negative OOM scores the kubelet asks for, which runc could not set.
	RestrictOOMScoreAdj bool
	// CNIBinDir holds the CNI plugins (containerd 1.6 takes one directory).
	CNIBinDir string
}

// ContainerdConfig renders a containerd 1.6/1.7 (config version 2) configuration with the
// CRI plugin set up for the kubelet.
func ContainerdConfig(p ContainerdParams) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `%s
# kforge rewrites this file when the cluster's needs change, as long as it is the file
# kforge wrote (its sha256 is in config.toml.kforge-sha256). Once edited, it is left alone
# if it still has what the cluster needs, and kforge stops with what to add if not. A file
# kforge replaced is kept beside it as config.toml.kforge-backup-<time>.
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = %t

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = %t

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = %q
  conf_dir = "/etc/cni/net.d"
`, ContainerdMarker, p.SandboxImage, p.RestrictOOMScoreAdj, p.SystemdCgroup, p.CNIBinDir)
	return b.Bytes()
}

// ContainerdAction is what to do with an existing containerd config.
type ContainerdAction int

// ContainerdPlan actions.
const (
	// ContainerdKeep leaves the file: it is what kforge would write, or someone else's
	// file that has every setting the cluster needs.
	ContainerdKeep ContainerdAction = iota + 1
	// ContainerdWrite writes kforge's file: there is none, or the one there is kforge's.
	ContainerdWrite
	// ContainerdReplace writes kforge's file over another program's (a distribution's
	// default, which typically disables the CRI plugin) after a backup of it.
	ContainerdReplace
	// ContainerdRefuse stops: the operator edited kforge's file and the edit lacks
	// settings the cluster needs; Missing says which.
	ContainerdRefuse
)

// ContainerdPlan is the decision PlanContainerdConfig makes.
type ContainerdPlan struct {
	Action ContainerdAction
	// Missing lists, for Replace and Refuse, each setting the file lacks, as the TOML to add.
	Missing []string
}

// ContainerdRecord renders the record of the files kforge wrote (ContainerdRecordPath).
func ContainerdRecord(files ...[]byte) []byte {
	var b bytes.Buffer
	for _, f := range files {
		sum := sha256.Sum256(f)
		fmt.Fprintf(&b, "%s\n", hex.EncodeToString(sum[:]))
	}
	return b.Bytes()
}

// PlanContainerdConfig decides what to do with the containerd config current (nil when
// there is none), given record (the content of ContainerdRecordPath, or nil) and what the
// cluster needs (p).
func PlanContainerdConfig(current, record []byte, p ContainerdParams) ContainerdPlan {
	want := ContainerdConfig(p)
	switch {
	case current == nil:
		return ContainerdPlan{Action: ContainerdWrite}
	case bytes.Equal(current, want):
		return ContainerdPlan{Action: ContainerdKeep}
	case slices.Contains(strings.Fields(string(record)), strings.TrimSpace(string(ContainerdRecord(current)))):
		return ContainerdPlan{Action: ContainerdWrite}
	}
	missing := ContainerdMissing(current, p)
	switch {
	case len(missing) == 0:
		return ContainerdPlan{Action: ContainerdKeep}
	case bytes.HasPrefix(current, []byte(ContainerdMarker)):
		return ContainerdPlan{Action: ContainerdRefuse, Missing: missing}
	}
	return ContainerdPlan{Action: ContainerdReplace, Missing: missing}
}

// criPlugin is the CRI plugin's table in a version 2 config.
const criPlugin = `plugins."io.containerd.grpc.v1.cri"`

// ContainerdMissing lists each setting the kubelet needs that config lacks or sets to
// something else, as the TOML line to set and its table.
func ContainerdMissing(config []byte, p ContainerdParams) []string {
	var doc map[string]any
	if err := toml.Unmarshal(config, &doc); err != nil {
		return []string{fmt.Sprintf("a valid TOML file (%v)", err)}
	}
	var missing []string
	if v, _ := doc["version"].(int64); v != 2 {
		missing = append(missing, "version = 2 (at the top; kforge's settings are for config version 2)")
	}
	if d, _ := doc["disabled_plugins"].([]any); slices.Contains(d, any("cri")) || slices.Contains(d, any("io.containerd.grpc.v1.cri")) {
		missing = append(missing, `disabled_plugins without "cri" (the kubelet talks to containerd through the CRI plugin)`)
	}
	cri := table(table(doc, "plugins"), "io.containerd.grpc.v1.cri")
	check := func(tbl map[string]any, path, key string, want, dflt any) {
		got, ok := tbl[key]
		if !ok {
			got = dflt
		}
		if got != want {
			missing = append(missing, fmt.Sprintf("%s = %s in [%s]", key, tomlValue(want), path))
		}
	}
	check(cri, criPlugin, "sandbox_image", p.SandboxImage, nil)
	check(cri, criPlugin, "restrict_oom_score_adj", p.RestrictOOMScoreAdj, false)
	runc := table(table(table(table(cri, "containerd"), "runtimes"), "runc"), "options")
	check(runc, criPlugin+".containerd.runtimes.runc.options", "SystemdCgroup", p.SystemdCgroup, false)
	check(table(cri, "cni"), criPlugin+".cni", "bin_dir", p.CNIBinDir, "/opt/cni/bin")
	return missing
}

// table returns the sub-table key of t, or nil.
func table(t map[string]any, key string) map[string]any {
	sub, _ := t[key].(map[string]any)
	return sub
}

func tomlValue(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprint(v)
}
