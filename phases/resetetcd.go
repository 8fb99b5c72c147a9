package phases

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kforge/kforge/etcd"
	"github.com/kforge/kforge/internal/apiclient"
	"github.com/kforge/kforge/internal/wait"
	"github.com/kforge/kforge/manifests"
)

// localEtcdMember is what this host's etcd manifest says about its member.
type localEtcdMember struct {
	name, peerURL, clientURL string
	// peers are the client URLs of the members named in --initial-cluster.
	peers []string
}

// readLocalEtcdMember reads the etcd static pod manifest; nil when there is none.
func readLocalEtcdMember(d *Data) (*localEtcdMember, error) {
	shown := filepath.Join(d.ManifestsDir, manifests.FileName(manifests.NameEtcd))
	b, err := readFileIfExists(d.Path(shown))
	if err != nil || b == nil {
		return nil, err
	}
	var pod corev1.Pod
	if err := yaml.Unmarshal(b, &pod); err != nil {
		return nil, fmt.Errorf("reading %s: %w", shown, err)
	}
	if len(pod.Spec.Containers) == 0 {
		return nil, fmt.Errorf("reading %s: it has no container", shown)
	}
	m := &localEtcdMember{clientURL: strings.Split(pod.Annotations[manifests.EtcdClientURLsAnnotation], ",")[0]}
	for _, arg := range pod.Spec.Containers[0].Command {
		k, v, ok := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
		if !ok {
			continue
		}
		switch k {
		case "name":
			m.name = v
		case "initial-advertise-peer-urls":
			m.peerURL = strings.Split(v, ",")[0]
		case "initial-cluster":
			for _, kv := range strings.Split(v, ",") {
				_, peer, _ := strings.Cut(kv, "=")
				if u, err := url.Parse(peer); err == nil && u.Hostname() != "" {
					c := "https://" + net.JoinHostPort(u.Hostname(), "2379")
					if !slices.Contains(m.peers, c) {
						m.peers = append(m.peers, c)
					}
				}
			}
		}
	}
	if m.peerURL == "" {
		return nil, fmt.Errorf("reading %s: it has no --initial-advertise-peer-urls", shown)
	}
	return m, nil
}

// removeEtcdMemberPhase takes this host's member out of the etcd cluster before reset
// deletes its data, so that the remaining members keep their quorum. It refuses when the
// remaining healthy members would be too few for quorum, unless --force.
func removeEtcdMemberPhase() Phase {
	return Phase{
		Name:  "remove-etcd-member",
		Short: "Remove this host's etcd member from the cluster, refusing if the rest would lose quorum",
		Run:   runRemoveEtcdMember,
	}
}

func runRemoveEtcdMember(ctx context.Context, d *Data) error {
	const phase = "remove-etcd-member"
	local, err := readLocalEtcdMember(d)
	if err != nil {
		return err
	}
	if local == nil {
		d.Out.Phase(phase, "this host runs no etcd member")
		return nil
	}
	endpoints := []string{local.clientURL}
	for _, p := range local.peers {
		if !slices.Contains(endpoints, p) {
			endpoints = append(endpoints, p)
		}
	}
	cli, err := d.Etcd(d, endpoints)
	if err != nil {
		return d.forceOr(phase, fmt.Errorf("connecting to etcd to remove this host's member: %w", err))
	}
	defer cli.Close()
	var members []etcd.Member
	if err := apiclient.Retry(ctx, func(ctx context.Context) error {
		members, err = cli.Members(ctx)
		return err
	}); err != nil {
		return d.forceOr(phase, err)
	}
	var self *etcd.Member
	for i := range members {
		if members[i].HasPeerURL(local.peerURL) {
			self = &members[i]
		}
	}
	if self == nil {
		d.Out.Phase(phase, "etcd has no member with peer URL %s (already removed)", local.peerURL)
		return nil
	}
	if len(members) == 1 {
		d.Out.Phase(phase, "%s is the only etcd member: there is no cluster left to remove it from", self.Name)
		return nil
	}
	if !self.Learner {
		healthy, errs := cli.HealthyMembers(ctx, members)
		if err := etcd.CheckRemoval(members, healthy, self.ID); err != nil {
			return d.forceOr(phase, fmt.Errorf("refusing to remove etcd member %s: %w (%v); bring the other members back first, or pass --force",
				self.Name, err, errors.Join(errs...)))
		}
	}
	if err := cli.Remove(ctx, self.ID); err != nil {
		return d.forceOr(phase, err)
	}
	d.Out.Phase(phase, "removed etcd member %s (%x); %d members remain", self.Name, self.ID, len(members)-1)
	return nil
}

// forceOr returns err, or with Force prints it as a warning and returns nil.
func (d *Data) forceOr(phase string, err error) error {
	if !d.Force {
		return err
	}
	d.Out.Phase(phase, "WARNING (--force): %v", err)
	return nil
}

// removeNodePhase deletes this host's Node object, so that its pods are rescheduled and its
// name is free for the next join.
func removeNodePhase() Phase {
	return Phase{
		Name:  "remove-node",
		Short: "Delete this host's Node object from the cluster",
		Run: func(ctx context.Context, d *Data) error {
			const phase = "remove-node"
			if d.Client == nil {
				d.Out.Phase(phase, "no kubeconfig on this host reaches the cluster; delete the node with: kubectl delete node %s", d.Node.Name)
				return nil
			}
			cs, err := d.Client()
			if err != nil {
				d.Out.Phase(phase, "WARNING: cannot reach the cluster (%v); delete the node with: kubectl delete node %s", err, d.Node.Name)
				return nil
			}
			err = apiclient.Retry(ctx, func(ctx context.Context) error {
				err := cs.CoreV1().Nodes().Delete(ctx, d.Node.Name, metav1.DeleteOptions{})
				if apierrors.IsNotFound(err) {
					return nil
				}
				if err != nil && !apiclient.IsTransient(err) {
					return wait.Permanent(err)
				}
				return err
			})
			if err != nil {
				d.Out.Phase(phase, "WARNING: deleting Node %s: %v; delete it with: kubectl delete node %s", d.Node.Name, err, d.Node.Name)
				return nil
			}
			d.Out.Phase(phase, "deleted Node %s", d.Node.Name)
			return nil
		},
	}
}
