package phases

// InitWorkflow is `kforge init`: the phases that turn one host into the first control-plane
// member of a cluster. From in-progress to finish, the host records that an init is under
// way (fleet.InitMarker), so that kforge up resumes a killed one.
func InitWorkflow() *Workflow {
	return &Workflow{
		Name: "init",
		Phases: []Phase{
			preflightPhase(initChecks),
			inProgressPhase(),
			bundlePhase(),
			certsPhase(),
			kubeconfigPhase(),
			etcdPhase(),
			controlPlanePhase(),
			containerRuntimePhase(),
			kubeletStartPhase(),
			waitControlPlanePhase(),
			UploadConfigPhase(),
			UploadCertsPhase(),
			MarkControlPlanePhase(),
			BootstrapTokenPhase(),
			kubeletFinalizePhase(),
			AddonPhase(),
			initCertsRenewalPhase(),
			ShowJoinCommandPhase(),
			finishPhase(),
		},
	}
}
