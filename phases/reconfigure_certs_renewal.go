package phases

// reconfigureCertsRenewalPhase installs, updates or (renew_before = 0s) removes the
// automatic certificate renewal check on a control plane already in the cluster, as
// cluster.toml now says: the step init runs (installCertsRenewal). kforge up runs it
// through reconfigure on every existing control plane.
//
// Reads Data.Cluster, Data.Node, Data.Services and Data.Kforge.
func reconfigureCertsRenewalPhase() Phase {
	return Phase{
		Name:  "certs-renewal",
		Short: "Install or update the check that renews this control plane's certificates before they expire",
		Skip:  func(d *Data) (string, bool) { return "not a control-plane host", !d.Join.ControlPlane },
		Run:   installCertsRenewal,
	}
}
