package phases

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kforge/kforge/etcd"
	"github.com/kforge/kforge/internal/apiclient"
	"github.com/kforge/kforge/internal/fileutil"
	"github.com/kforge/kforge/manifests"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// etcdJoinPhase adds this host's etcd to the cluster's: as a learner first, which does not
// count for quorum, so that a member that never starts cannot stall the cluster; then,
// once it has caught up with the leader, as a voting member. etcd admits one learner at a
// time, which also serialises control-plane joins that race each other.
//
// Reads Data.Join.ControlPlane, Data.Cluster, Data.Node, Data.AdvertiseAddress, Data.Etcd,
// Data.Client and Data.Waiter.
func etcdJoinPhase() Phase {
	return Phase{
		Name:  "etcd-join",
		Short: "Add this host's etcd member to the cluster (learner, then voting member) and start it",
		Skip: func(d *Data) (string, bool) {
			if !d.Join.ControlPlane {
				return "not a control-plane join", true
			}
			return "etcd is external", d.Cluster.Etcd.Local == nil
		},
		Run: runEtcdJoin,
	}
}

// RealEtcd connects to the members at endpoints with apiserver-etcd-client's credentials.
func RealEtcd(d *Data, endpoints []string) (etcd.Cluster, error) {
	dir := d.Path(d.CertDir)
	tlsConfig, err := etcd.TLSConfig(filepath.Join(dir, "etcd", "ca.crt"),
		filepath.Join(dir, "apiserver-etcd-client.crt"), filepath.Join(dir, "apiserver-etcd-client.key"))
	if err != nil {
		return nil, err
	}
	return etcd.New(endpoints, tlsConfig)
}

// etcdEndpoints lists the client URLs of the cluster's other etcd members, from the etcd
// mirror pods' annotation; the control-plane hosts of cluster.toml are the fallback.
func etcdEndpoints(ctx context.Context, d *Data) ([]string, error) {
	self := etcd.ClientURL(d.AdvertiseAddress.String())
	var urls []string
	cs, err := clusterClient(ctx, d)
	if err != nil {
		return nil, err
	}
	err = apiclient.Retry(ctx, func(ctx context.Context) error {
		pods, err := cs.CoreV1().Pods(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{LabelSelector: "component=etcd,tier=control-plane"})
		if err != nil {
			return fmt.Errorf("listing the etcd pods: %w", err)
		}
		for _, p := range pods.Items {
			for _, u := range strings.Split(p.Annotations[manifests.EtcdClientURLsAnnotation], ",") {
				if u = strings.TrimSpace(u); u != "" && u != self && !slices.Contains(urls, u) {
					urls = append(urls, u)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(urls) == 0 {
		for _, h := range d.Cluster.ControlPlaneHosts() {
			if u := etcd.ClientURL(h.NodeIP()); h.Name != d.Node.Name && u != self {
				urls = append(urls, u)
			}
		}
	}
	if len(urls) == 0 {
		return nil, errors.New("found no etcd member to join: no etcd pod in kube-system publishes its client URLs, and cluster.toml names no other control-plane host")
	}
	return urls, nil
}

func runEtcdJoin(ctx context.Context, d *Data) error {
	endpoints, err := etcdEndpoints(ctx, d)
	if err != nil {
		return err
	}
	cli, err := d.Etcd(d, endpoints)
	if err != nil {
		return err
	}
	defer cli.Close()
	members, err := listEtcdMembers(ctx, cli)
	if err != nil {
		return err
	}
	name := d.Node.Name
	report := func(format string, args ...any) { d.Out.Say(format, args...) }
	return etcd.Join(ctx, cli, members, etcd.JoinParams{Name: name, PeerURL: etcd.PeerURL(d.AdvertiseAddress.String())}, etcd.JoinHooks{
		Report: report,
		Wait: func(ctx context.Context, what string, check func(context.Context) error) error {
			return d.Waiter.WaitFor(ctx, d, what, check)
		},
		Configure: func(initialCluster string, voter bool) error {
			if voter && manifestExists(d, manifests.NameEtcd) {
				report("using existing %s: this host is a voting member", filepath.Join(d.ManifestsDir, manifests.FileName(manifests.NameEtcd)))
				return nil
			}
			return writeEtcdJoinManifest(d, initialCluster)
		},
		Started: func(ctx context.Context) error {
			report("waiting up to %s for the local etcd member to start and catch up", d.Wait)
			selfURL := etcd.ClientURL(d.AdvertiseAddress.String())
			err := d.Waiter.WaitFor(ctx, d, "etcd member "+name+" to answer", func(ctx context.Context) error {
				return cli.Healthy(ctx, selfURL)
			})
			if err != nil {
				return fmt.Errorf("the local etcd member did not start: %w%s", err, logTail(d, manifests.NameEtcd))
			}
			return nil
		},
	})
}

// listEtcdMembers lists the members, riding out a brief failure.
func listEtcdMembers(ctx context.Context, cli etcd.Cluster) ([]etcd.Member, error) {
	var members []etcd.Member
	err := apiclient.Retry(ctx, func(ctx context.Context) error {
		var err error
		members, err = cli.Members(ctx)
		return err
	})
	return members, err
}

func writeEtcdJoinManifest(d *Data, initialCluster string) error {
	if err := fileutil.EnsureDir(d.Path(d.Cluster.Etcd.Local.DataDir), 0o700); err != nil {
		return err
	}
	params, err := manifestParams(d)
	if err != nil {
		return err
	}
	params.EtcdInitialCluster = initialCluster
	params.EtcdInitialClusterState = manifests.EtcdStateExisting
	_, err = writeManifestWith(d, manifests.EtcdComponent(), params)
	return err
}

func manifestExists(d *Data, component string) bool {
	b, err := readFileIfExists(d.Path(filepath.Join(d.ManifestsDir, manifests.FileName(component))))
	return err == nil && b != nil
}
