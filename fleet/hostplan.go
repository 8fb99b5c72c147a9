package fleet

import "github.com/kforge/kforge/internal/overlay"

// HostPlan is what `kforge reconfigure --dry-run -o json` prints on a host of the cluster:
// the files a reconfigure would create or change there, and what it would restart.
type HostPlan struct {
	Node string `json:"node"`
	// Role is "control-plane" or "worker", as the file gives it.
	Role    string               `json:"role"`
	Changes []overlay.FileChange `json:"changes"`
	// Restarts are the static pods and services the changes restart: "kube-apiserver",
	// "etcd", "kubelet", "containerd".
	Restarts []string `json:"restarts"`
}

// Empty reports whether the host already matches the file.
func (p HostPlan) Empty() bool { return len(p.Changes) == 0 }
