package phases

import (
	"context"
)

// JoinData is the part of Data the join phases read. The join command fills it from
// discovery (PrepareJoin) before the first phase runs, so that a wrong CA pin, a forged
// signature, an unknown token or a wrong certificate key stops the join before anything is
// written on the host.
type JoinData struct {
	// ControlPlane makes this host a control-plane member (--control-plane, or the
	// control-plane role in cluster.toml).
	ControlPlane bool
	// Server is the API server URL discovery authenticated; the kubelet bootstraps against it.
	Server string
	// ClusterCA is the cluster CA bundle discovery authenticated, PEM.
	ClusterCA []byte
	// SharedCerts are the control-plane files of Secret kube-system/kubeadm-certs, opened
	// with the certificate key, by Secret key. Nil when the host already holds them all.
	SharedCerts map[string][]byte
	// AlreadyJoined is set when this host already holds a kubelet.conf for its node, signed
	// by the cluster CA: the kubelet's TLS bootstrap is then not repeated.
	AlreadyJoined bool
}

// JoinWorkflow is `kforge join`: the phases that add this host to a running cluster as a
// worker or, with --control-plane, as another control-plane member.
func JoinWorkflow() *Workflow {
	notControlPlane := func(d *Data) (string, bool) { return "not a control-plane join", !d.Join.ControlPlane }
	return &Workflow{
		Name: "join",
		Phases: []Phase{
			preflightPhase(joinChecks),
			bundlePhase(),
			{
				Name:  "control-plane-prepare",
				Short: "Prepare this host to serve a control plane: shared certificates, its own certificates, kubeconfigs, manifests",
				Skip:  notControlPlane,
				Phases: []Phase{
					downloadCertsPhase(),
					joinCertsPhase(),
					joinKubeconfigPhase(),
					controlPlanePhase(),
				},
			},
			containerRuntimePhase(),
			joinKubeletStartPhase(),
			etcdJoinPhase(),
			kubeletWaitBootstrapPhase(),
			{
				Name:   "control-plane-join",
				Short:  "Make this host's node a control-plane node",
				Skip:   notControlPlane,
				Phases: []Phase{MarkControlPlanePhase()},
			},
			{
				Name:  "wait-control-plane",
				Short: "Wait for this host's control-plane components to report healthy",
				Skip:  notControlPlane,
				Run:   func(ctx context.Context, d *Data) error { return d.Waiter.WaitControlPlane(ctx, d) },
			},
			joinCertsRenewalPhase(),
		},
	}
}
