package kubelet

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPlanContainerdConfig(t *testing.T) {
	p := ContainerdParams{SandboxImage: "registry.k8s.io/pause:3.10", CNIBinDir: "/opt/cni/bin", SystemdCgroup: true}
	want := ContainerdConfig(p)
	old := ContainerdConfig(ContainerdParams{SandboxImage: "registry.k8s.io/pause:3.9", CNIBinDir: "/opt/cni/bin", SystemdCgroup: true})
	edited := string(want) + "\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n"
	tests := []struct {
		name    string
		current string
		absent  bool
		record  []byte
		want    ContainerdPlan
	}{
		{name: "no file: write", absent: true, want: ContainerdPlan{Action: ContainerdWrite}},
		{name: "what kforge writes: keep", current: string(want), want: ContainerdPlan{Action: ContainerdKeep}},
		{name: "kforge's older file: write", current: string(old), record: ContainerdRecord(old),
			want: ContainerdPlan{Action: ContainerdWrite}},
		{name: "kforge's older file among several sums: write", current: string(old), record: ContainerdRecord(want, old),
			want: ContainerdPlan{Action: ContainerdWrite}},
		{name: "edited, with every setting: keep", current: edited, record: ContainerdRecord(want),
			want: ContainerdPlan{Action: ContainerdKeep}},
		{name: "kforge's older file without a record: edited, missing the new image: refuse", current: string(old),
			want: ContainerdPlan{Action: ContainerdRefuse, Missing: []string{
				`sandbox_image = "registry.k8s.io/pause:3.10" in [plugins."io.containerd.grpc.v1.cri"]`}}},
		{name: "a distribution's file: replace", current: "disabled_plugins = [\"cri\"]\n",
			want: ContainerdPlan{Action: ContainerdReplace, Missing: []string{
				"version = 2 (at the top; kforge's settings are for config version 2)",
				`disabled_plugins without "cri" (the kubelet talks to containerd through the CRI plugin)`,
				`sandbox_image = "registry.k8s.io/pause:3.10" in [plugins."io.containerd.grpc.v1.cri"]`,
				`SystemdCgroup = true in [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]`}}},
		{name: "not TOML: replace", current: "version = = 2\n",
			want: ContainerdPlan{Action: ContainerdReplace}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cur []byte
			if !tc.absent {
				cur = []byte(tc.current)
			}
			got := PlanContainerdConfig(cur, tc.record, p)
			if strings.HasPrefix(tc.name, "not TOML") {
				if got.Action != tc.want.Action || len(got.Missing) != 1 || !strings.HasPrefix(got.Missing[0], "a valid TOML file") {
					t.Errorf("PlanContainerdConfig = %+v, want a replacement of an invalid file", got)
				}
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("PlanContainerdConfig (-want +got):\n%s", diff)
			}
		})
	}
}

// TestContainerdMissingAcceptsWhatKforgeWrites guards the two against drifting apart: the
// file kforge writes has every setting kforge checks for.
func TestContainerdMissingAcceptsWhatKforgeWrites(t *testing.T) {
	for _, p := range []ContainerdParams{
		{SandboxImage: "a/pause:1", CNIBinDir: "/opt/cni/bin"},
		{SandboxImage: "b/pause:2", CNIBinDir: "/usr/lib/cni", SystemdCgroup: true, RestrictOOMScoreAdj: true},
	} {
		if m := ContainerdMissing(ContainerdConfig(p), p); len(m) != 0 {
			t.Errorf("ContainerdMissing(ContainerdConfig(%+v)) = %q, want nothing", p, m)
		}
	}
}
