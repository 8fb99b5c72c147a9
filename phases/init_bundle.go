package phases

import (
	"context"
	"fmt"
	"time"

	"github.com/kforge/kforge/bundle"
)

// bundlePhase installs an air-gap bundle: binaries onto the host, images into containerd.
// Shared by init and join.
//
// Reads Data.Cluster.Bundle and Data.Ctr.
func bundlePhase() Phase {
	noBundle := func(d *Data) (string, bool) {
		return "no bundle (set bundle in cluster.toml or pass --bundle)", d.Cluster.Bundle == ""
	}
	return Phase{
		Name:  "bundle",
		Short: "Install the air-gap bundle: binaries onto this host, images into containerd",
		Skip:  noBundle,
		Phases: []Phase{
			{
				Name:  "binaries",
				Short: "Verify every file of the bundle and install its binaries",
				Run: func(_ context.Context, d *Data) error {
					b, err := loadBundle(d)
					if err != nil {
						return err
					}
					start := time.Now()
					if err := b.Verify(); err != nil {
						return err
					}
					d.Out.Say("verified %d files of %s in %s", len(b.Manifest.Files), b.Dir, time.Since(start).Round(time.Millisecond))
					res, err := b.InstallBinaries(d.Root)
					if err != nil {
						return err
					}
					n := 0
					for _, r := range res {
						if r.Installed {
							n++
							d.Out.Say("installed %s", r.File.Install)
						}
					}
					d.Out.Say("%d binaries installed, %d already up to date", n, len(res)-n)
					return nil
				},
			},
			{
				Name:  "images",
				Short: "Import the bundle's images into containerd's k8s.io namespace",
				Run: func(ctx context.Context, d *Data) error {
					b, err := loadBundle(d)
					if err != nil {
						return err
					}
					res, err := b.ImportImages(ctx, d.Ctr)
					if err != nil {
						return fmt.Errorf("%w (is containerd running on %s?)", err, criSocket(d))
					}
					n := 0
					for _, r := range res {
						if r.Imported {
							n++
							d.Out.Say("imported %s", r.File.Images[0])
						}
					}
					d.Out.Say("%d image archives imported, %d already present", n, len(res)-n)
					return nil
				},
			},
		},
	}
}

func loadBundle(d *Data) (*bundle.Bundle, error) {
	b, err := bundle.Load(d.Cluster.Bundle)
	if err != nil {
		return nil, err
	}
	return b, nil
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
