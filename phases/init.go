package phases

// InitWorkflow is `kforge init`: the phases that turn one host into the first control-plane
// member of a cluster.
func InitWorkflow() *Workflow {
	return &Workflow{
		Name: "init",
		Phases: []Phase{
			preflightPhase(initChecks),
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
			ShowJoinCommandPhase(),
		},
	}
}
