package etcd

import (
	"context"
	"slices"
	"strconv"
	"strings"
)

// DryRun is a Cluster for the plan of a dry run: one healthy started member per endpoint.
// It reports membership changes through say instead of making them, and remembers them,
// so that later reads of the same run see them.
type DryRun struct {
	say     func(format string, args ...any)
	members []Member
}

var _ Cluster = (*DryRun)(nil)

// NewDryRun returns a DryRun with a member for each client URL in endpoints.
func NewDryRun(say func(format string, args ...any), endpoints []string) *DryRun {
	f := &DryRun{say: say}
	for i, u := range endpoints {
		host := strings.TrimSuffix(strings.TrimPrefix(u, "https://"), ":2379")
		f.members = append(f.members, Member{ID: uint64(i + 1), Name: "member-" + strconv.Itoa(i+1),
			PeerURLs: []string{PeerURL(strings.Trim(host, "[]"))}, ClientURLs: []string{u}})
	}
	return f
}

// Members implements Cluster.
func (f *DryRun) Members(context.Context) ([]Member, error) {
	return slices.Clone(f.members), nil
}

// AddLearner implements Cluster: it reports the learner and remembers it.
func (f *DryRun) AddLearner(_ context.Context, peerURL string) (Member, []Member, error) {
	f.say("would add etcd learner %s", peerURL)
	m := Member{ID: uint64(len(f.members) + 1), PeerURLs: []string{peerURL}, Learner: true}
	f.members = append(f.members, m)
	return m, slices.Clone(f.members), nil
}

// Promote implements Cluster: it reports the promotion and remembers it.
func (f *DryRun) Promote(_ context.Context, id uint64) error {
	f.say("would promote etcd member %x", id)
	for i := range f.members {
		if f.members[i].ID == id {
			f.members[i].Learner = false
		}
	}
	return nil
}

// Remove implements Cluster: it reports the removal.
func (f *DryRun) Remove(_ context.Context, id uint64) error {
	f.say("would remove etcd member %x", id)
	return nil
}

// Healthy implements Cluster: every member is.
func (f *DryRun) Healthy(context.Context, string) error { return nil }

// HealthyMembers implements Cluster: every started voting member is.
func (f *DryRun) HealthyMembers(_ context.Context, ms []Member) ([]Member, []error) {
	var out []Member
	for _, m := range ms {
		if m.Started() && !m.Learner {
			out = append(out, m)
		}
	}
	return out, nil
}

// Close implements Cluster.
func (f *DryRun) Close() error { return nil }
