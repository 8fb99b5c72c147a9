package etcd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Cluster is the membership API of an etcd cluster, as *Client implements it. A dry run
// swaps in DryRun, which reports changes instead of making them.
type Cluster interface {
	Members(ctx context.Context) ([]Member, error)
	AddLearner(ctx context.Context, peerURL string) (Member, []Member, error)
	Promote(ctx context.Context, id uint64) error
	Remove(ctx context.Context, id uint64) error
	Healthy(ctx context.Context, clientURL string) error
	HealthyMembers(ctx context.Context, members []Member) ([]Member, []error)
	Close() error
}

var _ Cluster = (*Client)(nil)

// WaitFunc calls check until it returns nil, or gives up (a deadline, ctx) and returns an
// error that says what was last seen. what describes the condition: "etcd member cp2 to
// answer". A dry run's WaitFunc may return nil without calling check.
type WaitFunc func(ctx context.Context, what string, check func(context.Context) error) error

// JoinParams says which member a joining control-plane host adds for itself.
type JoinParams struct {
	// Name is the member's name: the node's name.
	Name string
	// PeerURL is the member's peer URL (PeerURL of the host's address); it identifies the
	// member across runs, since a member that never started has no name.
	PeerURL string
}

// JoinHooks are what Join needs from its caller.
type JoinHooks struct {
	// Report prints one line of progress.
	Report func(format string, args ...any)
	// Wait waits for a condition: for another host's learner to be promoted, for this
	// learner to catch up.
	Wait WaitFunc
	// Configure writes the local member's configuration with initialCluster
	// (InitialCluster). voter says that the cluster already counts the member as a started
	// voting member: an earlier run got that far.
	Configure func(initialCluster string, voter bool) error
	// Started returns once the local member answers.
	Started func(ctx context.Context) error
}

// Join makes the member p a voting member of the cluster whose members are members (as
// listed just before): it refuses a voting member with p's name and another peer URL,
// removes a learner with p's name and another peer URL (this host's, left by an earlier
// join from another address; a learner does not count for quorum), adds p as a learner
// unless a member has p's peer URL already (then it is reused: an earlier run of this join
// added it), refusing when the cluster cannot commit the change and waiting while another
// host's learner is pending, configures it and waits for it to start through h, promotes it
// once it has caught up, and reports the cluster's size. Running it again after any step
// converges.
//
// Another host's learner is never removed: etcd does not say when a learner was added, so
// a learner whose join was killed cannot be told from one that is starting right now. Join
// waits for it through h.Wait, and when the wait ends, the error names the learner and
// what to do (run that host's join again, reset it, or etcdctl member remove).
func Join(ctx context.Context, c Cluster, members []Member, p JoinParams, h JoinHooks) error {
	self, stale, err := findJoining(members, p)
	if err != nil {
		return err
	}
	if stale != nil {
		h.Report("removing etcd learner %s: it has this host's name but another peer URL, left by an earlier join", stale)
		if err := c.Remove(ctx, stale.ID); err != nil {
			return fmt.Errorf("removing etcd learner %x, left by an earlier join of %s: %w", stale.ID, p.Name, err)
		}
		members = slices.DeleteFunc(members, func(m Member) bool { return m.ID == stale.ID })
	}
	if self == nil {
		if self, members, err = addLearner(ctx, c, members, p, h); err != nil {
			return err
		}
	} else {
		h.Report("etcd already has a member for %s (%s)", p.PeerURL, self)
	}

	if err := h.Configure(InitialCluster(members, p.Name, p.PeerURL), self.Started() && !self.Learner); err != nil {
		return err
	}
	start := time.Now()
	if err := h.Started(ctx); err != nil {
		return err
	}
	if self.Learner {
		if err := promote(ctx, c, self.ID, p, h); err != nil {
			return err
		}
		h.Report("promoted etcd member %s to a voting member after %s", p.Name, time.Since(start).Round(time.Millisecond))
	}
	members, err = c.Members(ctx)
	if err != nil {
		return err
	}
	healthy, _ := c.HealthyMembers(ctx, members)
	h.Report("etcd has %d members, %d healthy voting members", len(members), len(healthy))
	return nil
}

// findJoining returns the member with p's peer URL (nil when there is none) and a learner
// with p's name and another peer URL (stale, nil when there is none), or an error when a
// voting member has p's name and another peer URL.
func findJoining(members []Member, p JoinParams) (self, stale *Member, err error) {
	for i := range members {
		m := &members[i]
		switch {
		case m.HasPeerURL(p.PeerURL):
			self = m
		case m.Name == p.Name && m.Learner:
			stale = m
		case m.Name == p.Name:
			return nil, nil, fmt.Errorf("etcd already has a member named %s with peer URL %s, not %s: remove it first "+
				"(kforge reset on that host, or etcdctl member remove %x)", p.Name, strings.Join(m.PeerURLs, ","), p.PeerURL, m.ID)
		}
	}
	return self, stale, nil
}

// otherLearner returns a learner of the cluster that is not p's, or nil; members is the
// fallback when the cluster cannot be listed.
func otherLearner(ctx context.Context, c Cluster, members []Member, p JoinParams) *Member {
	if ms, err := c.Members(ctx); err == nil {
		members = ms
	}
	for _, m := range members {
		if m.Learner && !m.HasPeerURL(p.PeerURL) {
			return &m
		}
	}
	return nil
}

// addLearner adds p as a learner, once the cluster can commit the change and no other
// learner is pending, and returns it and the members after the change.
func addLearner(ctx context.Context, c Cluster, members []Member, p JoinParams, h JoinHooks) (*Member, []Member, error) {
	if err := checkQuorum(ctx, c, members, h.Report); err != nil {
		return nil, nil, err
	}
	start := time.Now()
	var self *Member
	add := func(ctx context.Context) error {
		m, all, err := c.AddLearner(ctx, p.PeerURL)
		if err != nil {
			return err
		}
		self, members = &m, all
		return nil
	}
	err := add(ctx)
	if errors.Is(err, ErrOtherLearner) {
		if other := otherLearner(ctx, c, members, p); other != nil {
			h.Report("another control-plane host is joining etcd: learner %s; waiting for it to be promoted", other)
		} else {
			h.Report("another control-plane host is joining etcd; waiting for its learner to be promoted")
		}
		err = waitFor(ctx, h.Wait, "etcd to admit "+p.Name+" as a learner", add, func(err error) bool {
			return errors.Is(err, ErrOtherLearner)
		})
		if other := otherLearner(ctx, c, members, p); errors.Is(err, ErrOtherLearner) && other != nil {
			err = fmt.Errorf("etcd still has the learner %s of another host, and admits one learner at a time: "+
				"if that host's join was interrupted, run kforge join on it again to finish it, or kforge reset on it, "+
				"or remove the learner with etcdctl member remove %x; then run this join again: %w", other, other.ID, err)
		}
	}
	if err != nil {
		return nil, nil, err
	}
	if self == nil {
		return nil, nil, errors.New("etcd did not admit this host as a learner")
	}
	h.Report("added etcd member %s (%x) as a learner after %s", p.Name, self.ID, time.Since(start).Round(time.Millisecond))
	return self, members, nil
}

// checkQuorum refuses to change the membership of a cluster that cannot commit; members
// that do not answer are reported as warnings.
func checkQuorum(ctx context.Context, c Cluster, members []Member, report func(format string, args ...any)) error {
	healthy, errs := c.HealthyMembers(ctx, members)
	voters := 0
	for _, m := range members {
		if !m.Learner {
			voters++
		}
	}
	if len(healthy) < Quorum(voters) {
		return fmt.Errorf("etcd cannot commit a membership change: %d of %d voting members are healthy, %d needed: %w",
			len(healthy), voters, Quorum(voters), errors.Join(errs...))
	}
	for _, e := range errs {
		report("WARNING: %v", e)
	}
	return nil
}

// promote makes the learner id a voting member, waiting while it has not caught up. A
// member found voting after a failed promotion was promoted by an earlier run whose answer
// was lost.
func promote(ctx context.Context, c Cluster, id uint64, p JoinParams, h JoinHooks) error {
	try := func(ctx context.Context) error {
		err := c.Promote(ctx, id)
		if err == nil || errors.Is(err, ErrNotCaughtUp) {
			return err
		}
		if ms, lerr := c.Members(ctx); lerr == nil {
			for _, m := range ms {
				if m.ID == id && !m.Learner {
					return nil
				}
			}
		}
		return err
	}
	err := try(ctx)
	if errors.Is(err, ErrNotCaughtUp) {
		err = waitFor(ctx, h.Wait, "etcd member "+p.Name+" to catch up and be promoted", try, func(err error) bool {
			return errors.Is(err, ErrNotCaughtUp)
		})
	}
	return err
}

// waitFor waits through wait for try to succeed, as long as it fails in a way that waiting
// fixes (again); any other failure ends the wait and is returned as is.
func waitFor(ctx context.Context, wait WaitFunc, what string, try func(context.Context) error, again func(error) bool) error {
	var stop error
	err := wait(ctx, what, func(ctx context.Context) error {
		err := try(ctx)
		if err != nil && !again(err) {
			stop = err
			return nil
		}
		return err
	})
	if stop != nil {
		return stop
	}
	return err
}

// Outcome is what Leave did.
type Outcome int

const (
	// NotAMember means no member has the peer URL: an earlier run removed it.
	NotAMember Outcome = iota
	// OnlyMember means the member is the cluster's last: there is no cluster left to
	// remove it from.
	OnlyMember
	// Removed means the member was removed.
	Removed
)

// Removal is the result of Leave.
type Removal struct {
	Outcome Outcome
	// Member is the member with the peer URL (unset when NotAMember).
	Member Member
	// Remaining is how many members the cluster has after the removal.
	Remaining int
}

// Leave removes the member with peerURL from the cluster whose members are members (as
// listed just before). It removes nothing and wraps ErrQuorum when the remaining healthy
// voting members would be too few for quorum; a learner, which does not count for quorum,
// is always removed.
func Leave(ctx context.Context, c Cluster, members []Member, peerURL string) (Removal, error) {
	var self *Member
	for i := range members {
		if members[i].HasPeerURL(peerURL) {
			self = &members[i]
		}
	}
	if self == nil {
		return Removal{Outcome: NotAMember, Remaining: len(members)}, nil
	}
	if len(members) == 1 {
		return Removal{Outcome: OnlyMember, Member: *self, Remaining: 1}, nil
	}
	if !self.Learner {
		healthy, errs := c.HealthyMembers(ctx, members)
		if err := CheckRemoval(members, healthy, self.ID); err != nil {
			return Removal{}, fmt.Errorf("refusing to remove etcd member %s: %w (%v); bring the other members back first, or pass --force",
				self.Name, err, errors.Join(errs...))
		}
	}
	if err := c.Remove(ctx, self.ID); err != nil {
		return Removal{}, err
	}
	return Removal{Outcome: Removed, Member: *self, Remaining: len(members) - 1}, nil
}
