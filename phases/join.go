package phases

import (
	"context"
	"fmt"
	"os"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/kubeconfig"
	"github.com/kforge/kforge/preflight"
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
			joinPreflightPhase(),
			bundlePhase(),
			{
				Name:  "control-plane-prepare",
				Short: "Prepare this host to serve a control plane: shared certificates, its own certificates, kubeconfigs, manifests",
				Skip:  notControlPlane,
				Phases: []Phase{
					downloadCertsPhase(),
					{
						Name:  "certs",
						Short: "Generate this host's certificates, signed by the downloaded CAs",
						Run:   runJoinCerts,
					},
					{
						Name:  "kubeconfig",
						Short: "Generate the admin, controller-manager and scheduler kubeconfig files",
						Run:   runJoinKubeconfigs,
					},
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
		},
	}
}

func joinPreflightPhase() Phase {
	return Phase{
		Name:  "preflight",
		Short: "Run the pre-flight checks",
		Run: func(ctx context.Context, d *Data) error {
			d.Out.Phase("preflight", "running pre-flight checks")
			p := preflight.InitParams{
				Cluster:           d.Cluster,
				NodeName:          d.Node.Name,
				AdvertiseAddress:  d.AdvertiseAddress.String(),
				ManifestsDir:      d.ManifestsDir,
				KubeconfigDir:     d.KubeconfigDir,
				KubeletConfigPath: d.KubeletConfigPath,
				System:            d.PreflightSystem,
				BundleBinaries:    bundleBinaries(d),
			}
			return preflight.Run(ctx, preflight.JoinChecks(p, d.Join.ControlPlane), d.IgnorePreflight, d.Out.Writer())
		},
	}
}

// bundleBinaries names the binaries the bundle installs, when there is a bundle that loads.
func bundleBinaries(d *Data) []string {
	if d.Cluster.Bundle == "" {
		return nil
	}
	b, err := loadBundle(d)
	if err != nil {
		return nil // the bundle phase reports it
	}
	return b.BinaryNames()
}

// runJoinCerts ensures every certificate of the table and the service-account keys. The CAs
// and sa keys are the downloaded ones; every leaf is this host's own.
func runJoinCerts(_ context.Context, d *Data) error {
	for _, spec := range certs.Table(d.Cluster) {
		if err := ensureCert(d, spec); err != nil {
			return err
		}
	}
	out, err := certs.EnsureServiceAccountKeys(d.Path(d.CertDir), d.Cluster.Certificates.KeyAlgorithm)
	if err != nil {
		return err
	}
	d.Out.Phase("certs", "%s: service account key pair (sa.key, sa.pub)", describeOutcome(out))
	return nil
}

// joinKubeconfigs are the kubeconfig files a joining control-plane host writes: not
// super-admin.conf (init host only) and not kubelet.conf (the TLS bootstrap makes it).
var joinKubeconfigs = []string{"admin", "controller-manager", "scheduler"}

func runJoinKubeconfigs(_ context.Context, d *Data) error {
	for _, s := range kubeconfig.Specs(d.Node.Name) {
		for _, name := range joinKubeconfigs {
			if s.Name == name {
				if err := ensureKubeconfig(d, s); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// readFileIfExists returns a file's content, or nil when it does not exist.
func readFileIfExists(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return b, nil
}
