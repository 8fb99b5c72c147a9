package phases

import (
	"context"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kforge/kforge/etcd"
)

// DryRunClient is a fake clientset that reports every write it receives, for the plan of a
// dry run. Reads see what earlier writes of the same run created.
// The node itself is there, as the kubelet would have registered it.
func DryRunClient(say func(format string, args ...any), nodeName string) kubernetes.Interface {
	c := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}})
	c.PrependReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		switch a.GetVerb() {
		case "create", "update", "patch", "delete":
			ns := a.GetNamespace()
			if ns != "" {
				ns += "/"
			}
			name := ""
			switch act := a.(type) {
			case interface{ GetName() string }:
				name = act.GetName()
			case interface{ GetObject() runtime.Object }:
				if m, err := meta.Accessor(act.GetObject()); err == nil {
					name = m.GetName()
				}
			}
			say("would %s %s %s%s", a.GetVerb(), a.GetResource().Resource, ns, name)
		}
		return false, nil, nil
	})
	return c
}

// DryRunEtcd is an etcd cluster with one healthy started member per endpoint, which reports
// membership changes instead of making them.
func DryRunEtcd(say func(format string, args ...any)) func(d *Data, endpoints []string) (EtcdCluster, error) {
	return func(_ *Data, endpoints []string) (EtcdCluster, error) {
		f := &dryRunEtcd{say: say}
		for i, u := range endpoints {
			host := strings.TrimSuffix(strings.TrimPrefix(u, "https://"), ":2379")
			f.members = append(f.members, etcd.Member{ID: uint64(i + 1), Name: "member-" + strconv.Itoa(i+1),
				PeerURLs: []string{etcd.PeerURL(strings.Trim(host, "[]"))}, ClientURLs: []string{u}})
		}
		return f, nil
	}
}

type dryRunEtcd struct {
	say     func(format string, args ...any)
	members []etcd.Member
}

func (f *dryRunEtcd) Members(context.Context) ([]etcd.Member, error) {
	return slices.Clone(f.members), nil
}

func (f *dryRunEtcd) AddLearner(_ context.Context, peerURL string) (etcd.Member, []etcd.Member, error) {
	f.say("would add etcd learner %s", peerURL)
	m := etcd.Member{ID: uint64(len(f.members) + 1), PeerURLs: []string{peerURL}, Learner: true}
	f.members = append(f.members, m)
	return m, slices.Clone(f.members), nil
}

func (f *dryRunEtcd) Promote(_ context.Context, id uint64) error {
	f.say("would promote etcd member %x", id)
	for i := range f.members {
		if f.members[i].ID == id {
			f.members[i].Learner = false
		}
	}
	return nil
}

func (f *dryRunEtcd) Remove(_ context.Context, id uint64) error {
	f.say("would remove etcd member %x", id)
	return nil
}

func (f *dryRunEtcd) Healthy(context.Context, string) error { return nil }

func (f *dryRunEtcd) HealthyMembers(_ context.Context, ms []etcd.Member) ([]etcd.Member, []error) {
	var out []etcd.Member
	for _, m := range ms {
		if m.Started() && !m.Learner {
			out = append(out, m)
		}
	}
	return out, nil
}

func (f *dryRunEtcd) Close() error { return nil }
