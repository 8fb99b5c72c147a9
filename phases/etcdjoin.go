package phases

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kforge/kforge/etcd"
	"github.com/kforge/kforge/internal/apiclient"
	"github.com/kforge/kforge/internal/fileutil"
	"github.com/kforge/kforge/internal/wait"
	"github.com/kforge/kforge/manifests"
)

// etcdJoinPhase adds this host's etcd to the cluster's: as a learner first, which does not
// count for quorum, so that a member that never starts cannot stall the cluster; then,
// once it has caught up with the leader, as a voting member. etcd admits one learner at a
// time, which also serialises control-plane joins that race each other.
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

// EtcdCluster is the membership API of the cluster's etcd, as *etcd.Client implements it.
// A dry run swaps in one that reports changes instead of making them.
type EtcdCluster interface {
	Members(ctx context.Context) ([]etcd.Member, error)
	AddLearner(ctx context.Context, peerURL string) (etcd.Member, []etcd.Member, error)
	Promote(ctx context.Context, id uint64) error
	Remove(ctx context.Context, id uint64) error
	Healthy(ctx context.Context, clientURL string) error
	HealthyMembers(ctx context.Context, members []etcd.Member) ([]etcd.Member, []error)
	Close() error
}

// RealEtcd connects to the members at endpoints with apiserver-etcd-client's credentials.
func RealEtcd(d *Data, endpoints []string) (EtcdCluster, error) {
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
func etcdEndpoints(ctx context.Context, d *Data, phase string) ([]string, error) {
	self := etcd.ClientURL(d.AdvertiseAddress.String())
	var urls []string
	cs, err := clusterClient(ctx, d, phase)
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
	const phase = "etcd-join"
	endpoints, err := etcdEndpoints(ctx, d, phase)
	if err != nil {
		return err
	}
	cli, err := d.Etcd(d, endpoints)
	if err != nil {
		return err
	}
	defer cli.Close()

	name, peerURL := d.Node.Name, etcd.PeerURL(d.AdvertiseAddress.String())
	selfURL := etcd.ClientURL(d.AdvertiseAddress.String())
	var members []etcd.Member
	var self *etcd.Member
	if err := apiclient.Retry(ctx, func(ctx context.Context) error {
		members, err = cli.Members(ctx)
		return err
	}); err != nil {
		return err
	}
	for i := range members {
		if members[i].HasPeerURL(peerURL) {
			self = &members[i]
		}
		if members[i].Name == name && !members[i].HasPeerURL(peerURL) {
			return fmt.Errorf("etcd already has a member named %s with peer URL %s, not %s: remove it first "+
				"(kforge reset on that host, or etcdctl member remove %x)", name, strings.Join(members[i].PeerURLs, ","), peerURL, members[i].ID)
		}
	}

	if self == nil {
		if err := checkEtcdQuorum(ctx, d, phase, cli, members); err != nil {
			return err
		}
		start := time.Now()
		add := func(ctx context.Context) error {
			m, all, err := cli.AddLearner(ctx, peerURL)
			if err != nil {
				if !errors.Is(err, etcd.ErrOtherLearner) {
					err = wait.Permanent(err)
				}
				return err
			}
			self, members = &m, all
			return nil
		}
		err := add(ctx)
		if errors.Is(err, etcd.ErrOtherLearner) {
			d.Out.Phase(phase, "another control-plane host is joining etcd; waiting for it to finish")
			err = waitUntil(ctx, d, "etcd to admit "+name+" as a learner", add)
		}
		if err != nil {
			return err
		}
		if self == nil {
			return errors.New("etcd did not admit this host as a learner")
		}
		d.Out.Phase(phase, "added etcd member %s (%x) as a learner after %s", name, self.ID, time.Since(start).Round(time.Millisecond))
	} else {
		d.Out.Phase(phase, "etcd already has a member for %s (%s)", peerURL, self)
	}

	if self.Started() && !self.Learner && manifestExists(d, manifests.NameEtcd) {
		d.Out.Phase(phase, "using existing %s: this host is a voting member", filepath.Join(d.ManifestsDir, manifests.FileName(manifests.NameEtcd)))
	} else if err := writeEtcdJoinManifest(d, phase, etcd.InitialCluster(members, name, peerURL)); err != nil {
		return err
	}

	start := time.Now()
	d.Out.Phase(phase, "waiting up to %s for the local etcd member to start and catch up", d.Wait)
	err = waitUntil(ctx, d, "etcd member "+name+" to answer", func(ctx context.Context) error {
		return cli.Healthy(ctx, selfURL)
	})
	if err != nil {
		return fmt.Errorf("the local etcd member did not start: %w%s", err, logTail(d, manifests.NameEtcd))
	}
	if self.Learner {
		promote := func(ctx context.Context) error {
			err := cli.Promote(ctx, self.ID)
			if err == nil || errors.Is(err, etcd.ErrNotCaughtUp) {
				return err
			}
			// The member may have been promoted by an earlier run whose answer was lost.
			if ms, lerr := cli.Members(ctx); lerr == nil {
				for _, m := range ms {
					if m.ID == self.ID && !m.Learner {
						return nil
					}
				}
			}
			return wait.Permanent(err)
		}
		err := promote(ctx)
		if errors.Is(err, etcd.ErrNotCaughtUp) {
			err = waitUntil(ctx, d, "etcd member "+name+" to catch up and be promoted", promote)
		}
		if err != nil {
			return err
		}
		d.Out.Phase(phase, "promoted etcd member %s to a voting member after %s", name, time.Since(start).Round(time.Millisecond))
	}
	members, err = cli.Members(ctx)
	if err != nil {
		return err
	}
	healthy, _ := cli.HealthyMembers(ctx, members)
	d.Out.Phase(phase, "etcd has %d members, %d healthy voting members", len(members), len(healthy))
	return nil
}

// checkEtcdQuorum refuses to change membership of a cluster that cannot commit.
func checkEtcdQuorum(ctx context.Context, d *Data, phase string, cli EtcdCluster, members []etcd.Member) error {
	healthy, errs := cli.HealthyMembers(ctx, members)
	voters := 0
	for _, m := range members {
		if !m.Learner {
			voters++
		}
	}
	if len(healthy) < etcd.Quorum(voters) {
		return fmt.Errorf("etcd cannot commit a membership change: %d of %d voting members are healthy, %d needed: %w",
			len(healthy), voters, etcd.Quorum(voters), errors.Join(errs...))
	}
	for _, e := range errs {
		d.Out.Phase(phase, "WARNING: %v", e)
	}
	return nil
}

func writeEtcdJoinManifest(d *Data, phase, initialCluster string) error {
	if err := fileutil.EnsureDir(d.Path(d.Cluster.Etcd.Local.DataDir), 0o700); err != nil {
		return err
	}
	params, err := manifestParams(d)
	if err != nil {
		return err
	}
	params.EtcdInitialCluster = initialCluster
	params.EtcdInitialClusterState = manifests.EtcdStateExisting
	_, err = writeManifestWith(d, phase, manifests.EtcdComponent(), params)
	return err
}

func manifestExists(d *Data, component string) bool {
	b, err := readFileIfExists(d.Path(filepath.Join(d.ManifestsDir, manifests.FileName(component))))
	return err == nil && b != nil
}
