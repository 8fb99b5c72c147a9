package kubelet

import (
	"bytes"
	"fmt"
)

// ContainerdConfigPath is where containerd reads its configuration.
const ContainerdConfigPath = "/etc/containerd/config.toml"

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
# kforge rewrites this file when the cluster's needs change; the file it replaced, if any,
# was kept beside it as config.toml.kforge-backup.
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
