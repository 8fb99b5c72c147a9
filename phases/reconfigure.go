package phases

// ReconfigureWorkflow is `kforge reconfigure`: it makes a host that is already in the
// cluster match cluster.toml: containerd's configuration, the kubelet's configuration and
// flags and, on a control-plane host, the certificates' names (a leaf that lacks a name
// the file adds, such as an apiserver.cert_sans entry, is signed again for its own key,
// which changes the config hash of the static pods that read it), the static pods and
// the files they read. A static pod whose manifest changes is waited for until the kubelet has restarted it and it is
// healthy. kforge up runs it on one host at a time; its dry run is the host's plan.
func ReconfigureWorkflow() *Workflow {
	notControlPlane := func(d *Data) (string, bool) { return "not a control-plane host", !d.Join.ControlPlane }
	onControlPlanes := func(p Phase) Phase {
		p.Skip = notControlPlane
		return p
	}
	return &Workflow{
		Name: "reconfigure",
		Phases: []Phase{
			preflightPhase(reconfigureChecks),
			onControlPlanes(reconfigureWaitPeersPhase()),
			containerRuntimePhase(),
			onControlPlanes(certsPhase()),
			reconfigureEtcdPhase(),
			onControlPlanes(controlPlanePhase()),
			onControlPlanes(waitControlPlanePhase()),
			kubeletStartPhase(),
			reconfigureWaitKubeletPhase(),
			reconfigureCertsRenewalPhase(),
		},
	}
}
