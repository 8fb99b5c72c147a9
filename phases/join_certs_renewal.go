package phases

// joinCertsRenewalPhase installs the automatic certificate renewal check on a host that
// joins as a control plane: the step init runs (installCertsRenewal).
//
// Reads Data.Cluster, Data.Node, Data.Services and Data.Kforge.
func joinCertsRenewalPhase() Phase {
	return Phase{
		Name:  "certs-renewal",
		Short: "Install the check that renews this control plane's certificates before they expire",
		Skip:  func(d *Data) (string, bool) { return "not a control-plane join", !d.Join.ControlPlane },
		Run:   installCertsRenewal,
	}
}
