package phases

import "github.com/kforge/kforge/preflight"

// reconfigureChecks are the checks of a reconfigure: the host is a member of the cluster
// as the file says (a control-plane member when Data.Join.ControlPlane is set), and its
// static pods are kforge's.
func reconfigureChecks(d *Data, p preflight.InitParams) []preflight.Checker {
	return preflight.ReconfigureChecks(p, d.Join.ControlPlane)
}
