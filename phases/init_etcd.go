package phases

import (
	"context"

	"github.com/kforge/kforge/internal/fileutil"
	"github.com/kforge/kforge/manifests"
)

// etcdPhase writes the static pod manifest of the first, local etcd member.
//
// Reads Data.Cluster, Data.Node, Data.AdvertiseAddress and the directories of Data.
func etcdPhase() Phase {
	c := manifests.EtcdComponent()
	return Phase{
		Name:  "etcd",
		Short: "Generate the static pod manifest for the local etcd member",
		Phases: []Phase{{
			Name:  c.Phase,
			Short: c.Desc,
			Skip: func(d *Data) (string, bool) {
				return "etcd is external", d.Cluster.Etcd.Local == nil
			},
			Run: func(_ context.Context, d *Data) error {
				dataDir := d.Cluster.Etcd.Local.DataDir
				if err := fileutil.EnsureDir(d.Path(dataDir), 0o700); err != nil {
					return err
				}
				return writeManifest(d, c)
			},
		}},
	}
}
