package phases

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/kforge/kforge/internal/fileutil"
	"github.com/kforge/kforge/manifests"
)

// controlPlanePhase writes the static pod manifests of the apiserver, the
// controller-manager and the scheduler. Shared by init and join.
//
// Reads Data.Cluster, Data.Node, Data.AdvertiseAddress and the directories of Data.
func controlPlanePhase() Phase {
	p := Phase{Name: "control-plane", Short: "Generate the static pod manifests for the control plane"}
	for _, c := range manifests.ControlPlaneComponents() {
		p.Phases = append(p.Phases, Phase{
			Name:  c.Phase,
			Short: c.Desc,
			Run:   func(_ context.Context, d *Data) error { return writeManifest(d, c) },
		})
	}
	return p
}

func manifestParams(d *Data) (manifests.Params, error) {
	external, err := externalCA(d)
	if err != nil {
		return manifests.Params{}, err
	}
	return manifests.Params{
		Cluster:          d.Cluster,
		NodeName:         d.Node.Name,
		AdvertiseAddress: d.AdvertiseAddress.String(),
		CertDir:          d.CertDir,
		KubeconfigDir:    d.KubeconfigDir,
		ExternalCA:       external,
	}, nil
}

func writeManifest(d *Data, c manifests.Component) error {
	params, err := manifestParams(d)
	if err != nil {
		return err
	}
	_, err = writeManifestWith(d, c, params)
	return err
}

// writeManifestWith renders c's manifest from params and writes it, reporting whether the
// file changed.
func writeManifestWith(d *Data, c manifests.Component, params manifests.Params) (fileutil.Result, error) {
	pod, err := c.Build(params)
	if err != nil {
		return 0, fmt.Errorf("building the %s manifest: %w", c.Name, err)
	}
	data, err := manifests.Render(pod)
	if err != nil {
		return 0, fmt.Errorf("rendering the %s manifest: %w", c.Name, err)
	}
	shown := filepath.Join(d.ManifestsDir, manifests.FileName(c.Name))
	res, err := fileutil.WriteAtomic(d.Path(shown), data, 0o600, 0o755)
	if err != nil {
		return 0, err
	}
	switch res {
	case fileutil.Unchanged:
		d.Out.Say("using existing %s (unchanged)", shown)
	default:
		d.Out.Say("%s static pod manifest for %s: %s", res, c.Name, shown)
	}
	return res, nil
}
