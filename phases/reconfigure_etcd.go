package phases

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/kforge/kforge/manifests"
)

// reconfigureEtcdPhase writes the local etcd member's manifest again from the file. The
// member's --initial-cluster and --initial-cluster-state stay as its manifest has them:
// etcd reads them only on its first start, and changing them would restart it for
// nothing.
//
// Reads Data.Cluster, Data.Node, Data.AdvertiseAddress, Data.Join.ControlPlane and the
// directories of Data; sets Data.Rewritten.
func reconfigureEtcdPhase() Phase {
	c := manifests.EtcdComponent()
	return Phase{
		Name:  "etcd",
		Short: "Write the local etcd member's static pod manifest from the file",
		Skip: func(d *Data) (string, bool) {
			if !d.Join.ControlPlane {
				return "not a control-plane host", true
			}
			return "etcd is external", d.Cluster.Etcd.Local == nil
		},
		Run: func(_ context.Context, d *Data) error {
			shown := filepath.Join(d.ManifestsDir, manifests.FileName(c.Name))
			old, err := readFileIfExists(d.Path(shown))
			if err != nil {
				return err
			}
			if old == nil {
				return fmt.Errorf("%s is missing: this host runs no local etcd member; kforge up joins it as a control-plane host", shown)
			}
			member, err := manifests.ParseEtcdMember(old)
			if err != nil {
				return fmt.Errorf("reading %s: %w", shown, err)
			}
			params, err := manifestParams(d)
			if err != nil {
				return err
			}
			params.EtcdInitialCluster = member.InitialCluster
			params.EtcdInitialClusterState = member.InitialClusterState
			_, err = writeManifestWith(d, c, params)
			return err
		},
	}
}
