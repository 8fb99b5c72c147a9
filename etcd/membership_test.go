package etcd

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeCluster is a Cluster whose answers a test scripts; it logs every change it is asked
// for.
type fakeCluster struct {
	members []Member
	// addErrs and promoteErrs are returned by the next AddLearner and Promote calls, in
	// order; once used up, the calls succeed.
	addErrs, promoteErrs []error
	// promotedAnyway makes a failing Promote promote the member all the same, as when the
	// answer is lost on the way back.
	promotedAnyway bool
	removeErr      error
	down           map[string]bool // names of members that do not answer
	log            *[]string
}

func (f *fakeCluster) Members(context.Context) ([]Member, error) { return slices.Clone(f.members), nil }

func (f *fakeCluster) AddLearner(_ context.Context, peerURL string) (Member, []Member, error) {
	*f.log = append(*f.log, "add learner "+peerURL)
	if len(f.addErrs) > 0 {
		err := f.addErrs[0]
		f.addErrs = f.addErrs[1:]
		return Member{}, nil, err
	}
	m := Member{ID: 9, PeerURLs: []string{peerURL}, Learner: true}
	f.members = append(f.members, m)
	return m, slices.Clone(f.members), nil
}

func (f *fakeCluster) Promote(_ context.Context, id uint64) error {
	*f.log = append(*f.log, fmt.Sprintf("promote %x", id))
	var err error
	if len(f.promoteErrs) > 0 {
		err = f.promoteErrs[0]
		f.promoteErrs = f.promoteErrs[1:]
	}
	if err == nil || f.promotedAnyway {
		for i := range f.members {
			if f.members[i].ID == id {
				f.members[i].Learner = false
				f.members[i].Name = "joined"
			}
		}
	}
	return err
}

func (f *fakeCluster) Remove(_ context.Context, id uint64) error {
	*f.log = append(*f.log, fmt.Sprintf("remove %x", id))
	if f.removeErr == nil {
		f.members = slices.DeleteFunc(f.members, func(m Member) bool { return m.ID == id })
	}
	return f.removeErr
}

func (f *fakeCluster) Healthy(context.Context, string) error { return nil }

func (f *fakeCluster) HealthyMembers(_ context.Context, ms []Member) ([]Member, []error) {
	var healthy []Member
	var errs []error
	for _, m := range ms {
		switch {
		case !m.Started() || m.Learner:
		case f.down[m.Name]:
			errs = append(errs, fmt.Errorf("etcd member %s does not answer", m.Name))
		default:
			healthy = append(healthy, m)
		}
	}
	return healthy, errs
}

func (f *fakeCluster) Close() error { return nil }

func voter(id uint64, name string) Member {
	return Member{ID: id, Name: name, PeerURLs: []string{fmt.Sprintf("https://10.0.0.%d:2380", id)},
		ClientURLs: []string{fmt.Sprintf("https://10.0.0.%d:2379", id)}}
}

// durations makes reported durations comparable.
var durations = regexp.MustCompile(`after [0-9.]+[µnm]?s`)

// checkErr fails the test unless err is nil and want empty, or err says exactly want.
func checkErr(t *testing.T, what string, err error, want string) {
	t.Helper()
	if want == "" && err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if want != "" && (err == nil || err.Error() != want) {
		t.Fatalf("%s error = %v, want %q", what, err, want)
	}
}

func TestJoin(t *testing.T) {
	p := JoinParams{Name: "cp2", PeerURL: "https://10.0.0.2:2380"}
	notYet := fmt.Errorf("promoting etcd member 9: %w", ErrNotCaughtUp)
	// added is what adding cp2 as a learner does; promoted is what follows in a cluster of
	// cp1 and cp2 when nothing goes wrong.
	added := []string{"add learner https://10.0.0.2:2380", "report: added etcd member cp2 (9) as a learner after D"}
	promoted := []string{
		"configure cp1=https://10.0.0.1:2380,cp2=https://10.0.0.2:2380 voter=false",
		"started",
		"promote 9",
		"report: promoted etcd member cp2 to a voting member after D",
		"report: etcd has 2 members, 2 healthy voting members",
	}
	otherLearner := fmt.Errorf("adding https://10.0.0.2:2380 as an etcd learner: %w", ErrOtherLearner)
	tests := []struct {
		name    string
		cluster fakeCluster
		// checkNever is a dry run's wait, which reports and calls no check.
		checkNever bool
		want       []string
		wantErr    string
	}{
		{
			name:    "fresh join: learner, started, promoted",
			cluster: fakeCluster{members: []Member{voter(1, "cp1")}},
			want:    slices.Concat(added, promoted),
		},
		{
			name:    "re-run when already a voter: nothing to add or promote",
			cluster: fakeCluster{members: []Member{voter(1, "cp1"), voter(2, "cp2")}},
			want: []string{
				"report: etcd already has a member for https://10.0.0.2:2380 (cp2 2 https://10.0.0.2:2380)",
				"configure cp1=https://10.0.0.1:2380,cp2=https://10.0.0.2:2380 voter=true",
				"started",
				"report: etcd has 2 members, 2 healthy voting members",
			},
		},
		{
			name: "re-run after the learner was added: started and promoted, not added again",
			cluster: fakeCluster{members: []Member{voter(1, "cp1"),
				{ID: 9, PeerURLs: []string{"https://10.0.0.2:2380"}, Learner: true}}},
			want: append([]string{
				"report: etcd already has a member for https://10.0.0.2:2380 ((not started) 9 https://10.0.0.2:2380 learner)",
			}, promoted...),
		},
		{
			name:    "another learner pending, then admitted",
			cluster: fakeCluster{members: []Member{voter(1, "cp1")}, addErrs: []error{otherLearner, otherLearner}},
			want: slices.Concat([]string{
				"add learner https://10.0.0.2:2380",
				"report: another control-plane host is joining etcd; waiting for its learner to be promoted",
				"wait for etcd to admit cp2 as a learner",
				"add learner https://10.0.0.2:2380",
			}, added, promoted),
		},
		{
			name:       "another learner pending, and a dry run's wait does not try again",
			cluster:    fakeCluster{members: []Member{voter(1, "cp1")}, addErrs: []error{otherLearner}},
			checkNever: true,
			want: []string{
				"add learner https://10.0.0.2:2380",
				"report: another control-plane host is joining etcd; waiting for its learner to be promoted",
				"wait for etcd to admit cp2 as a learner",
			},
			wantErr: "etcd did not admit this host as a learner",
		},
		{
			name:    "adding fails while waiting for the other learner: the wait stops",
			cluster: fakeCluster{members: []Member{voter(1, "cp1")}, addErrs: []error{otherLearner, errors.New("permission denied")}},
			want: []string{
				"add learner https://10.0.0.2:2380",
				"report: another control-plane host is joining etcd; waiting for its learner to be promoted",
				"wait for etcd to admit cp2 as a learner",
				"add learner https://10.0.0.2:2380",
			},
			wantErr: "permission denied",
		},
		{
			name:    "not caught up, then promoted",
			cluster: fakeCluster{members: []Member{voter(1, "cp1")}, promoteErrs: []error{notYet, notYet}},
			want: []string{
				"add learner https://10.0.0.2:2380",
				"report: added etcd member cp2 (9) as a learner after D",
				"configure cp1=https://10.0.0.1:2380,cp2=https://10.0.0.2:2380 voter=false",
				"started",
				"promote 9",
				"wait for etcd member cp2 to catch up and be promoted",
				"promote 9",
				"promote 9",
				"report: promoted etcd member cp2 to a voting member after D",
				"report: etcd has 2 members, 2 healthy voting members",
			},
		},
		{
			name: "the answer to a promotion is lost: the member list shows it voting",
			cluster: fakeCluster{members: []Member{voter(1, "cp1")}, promoteErrs: []error{errors.New("connection reset")},
				promotedAnyway: true},
			want: slices.Concat(added, promoted),
		},
		{
			name:    "a promotion that fails and did not happen",
			cluster: fakeCluster{members: []Member{voter(1, "cp1")}, promoteErrs: []error{notYet, errors.New("permission denied")}},
			want: []string{
				"add learner https://10.0.0.2:2380",
				"report: added etcd member cp2 (9) as a learner after D",
				"configure cp1=https://10.0.0.1:2380,cp2=https://10.0.0.2:2380 voter=false",
				"started",
				"promote 9",
				"wait for etcd member cp2 to catch up and be promoted",
				"promote 9",
			},
			wantErr: "permission denied",
		},
		{
			name:    "a member with the same name and another peer URL is refused",
			cluster: fakeCluster{members: []Member{voter(1, "cp1"), {ID: 0xab, Name: "cp2", PeerURLs: []string{"https://10.0.0.7:2380"}}}},
			wantErr: "etcd already has a member named cp2 with peer URL https://10.0.0.7:2380, not https://10.0.0.2:2380: remove it first " +
				"(kforge reset on that host, or etcdctl member remove ab)",
		},
		{
			name: "this host's learner from an earlier address: removed, then added again",
			cluster: fakeCluster{members: []Member{voter(1, "cp1"),
				{ID: 0xab, Name: "cp2", PeerURLs: []string{"https://10.0.0.7:2380"}, Learner: true}}},
			want: slices.Concat([]string{
				"report: removing etcd learner cp2 ab https://10.0.0.7:2380 learner: it has this host's name but another peer URL, left by an earlier join",
				"remove ab",
			}, added, promoted),
		},
		{
			name: "another host's learner never promoted: the wait ends naming it and what to do",
			cluster: fakeCluster{members: []Member{voter(1, "cp1"),
				{ID: 0x5, PeerURLs: []string{"https://10.0.0.5:2380"}, Learner: true}},
				addErrs: slices.Repeat([]error{otherLearner}, 6)},
			want: []string{
				"add learner https://10.0.0.2:2380",
				"report: another control-plane host is joining etcd: learner (not started) 5 https://10.0.0.5:2380 learner; waiting for it to be promoted",
				"wait for etcd to admit cp2 as a learner",
				"add learner https://10.0.0.2:2380", "add learner https://10.0.0.2:2380", "add learner https://10.0.0.2:2380",
				"add learner https://10.0.0.2:2380", "add learner https://10.0.0.2:2380",
			},
			wantErr: "etcd still has the learner (not started) 5 https://10.0.0.5:2380 learner of another host, and admits one learner at a time: " +
				"if that host's join was interrupted, run kforge join on it again to finish it, or kforge reset on it, " +
				"or remove the learner with etcdctl member remove 5; then run this join again: timed out: " +
				"adding https://10.0.0.2:2380 as an etcd learner: another member is joining (etcd allows one learner at a time)",
		},
		{
			name:    "no quorum: nothing is added",
			cluster: fakeCluster{members: []Member{voter(1, "cp1"), voter(3, "cp3"), voter(4, "cp4")}, down: map[string]bool{"cp3": true, "cp4": true}},
			wantErr: "etcd cannot commit a membership change: 1 of 3 voting members are healthy, 2 needed: " +
				"etcd member cp3 does not answer\netcd member cp4 does not answer",
		},
		{
			name:    "quorum with a member down: a warning",
			cluster: fakeCluster{members: []Member{voter(1, "cp1"), voter(3, "cp3"), voter(4, "cp4")}, down: map[string]bool{"cp4": true}},
			want: []string{
				"report: WARNING: etcd member cp4 does not answer",
				"add learner https://10.0.0.2:2380",
				"report: added etcd member cp2 (9) as a learner after D",
				"configure cp1=https://10.0.0.1:2380,cp3=https://10.0.0.3:2380,cp4=https://10.0.0.4:2380,cp2=https://10.0.0.2:2380 voter=false",
				"started",
				"promote 9",
				"report: promoted etcd member cp2 to a voting member after D",
				"report: etcd has 4 members, 3 healthy voting members",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var log []string
			c := tc.cluster
			c.log = &log
			h := JoinHooks{
				Report: func(format string, args ...any) {
					log = append(log, "report: "+durations.ReplaceAllString(fmt.Sprintf(format, args...), "after D"))
				},
				Wait: func(ctx context.Context, what string, check func(context.Context) error) error {
					log = append(log, "wait for "+what)
					if tc.checkNever {
						return nil
					}
					var err error
					for range 5 {
						if err = check(ctx); err == nil {
							return nil
						}
					}
					return fmt.Errorf("timed out: %w", err)
				},
				Configure: func(initialCluster string, voter bool) error {
					log = append(log, fmt.Sprintf("configure %s voter=%t", initialCluster, voter))
					return nil
				},
				Started: func(context.Context) error {
					log = append(log, "started")
					return nil
				},
			}
			err := Join(t.Context(), &c, slices.Clone(c.members), p, h)
			checkErr(t, "Join", err, tc.wantErr)
			if diff := cmp.Diff(tc.want, log); diff != "" {
				t.Errorf("Join steps (-want +got):\n%s", diff)
			}
		})
	}
}

func TestJoinStopsWhenTheMemberDoesNotStart(t *testing.T) {
	var log []string
	c := &fakeCluster{members: []Member{voter(1, "cp1")}, log: &log}
	h := JoinHooks{
		Report:    func(string, ...any) {},
		Wait:      func(context.Context, string, func(context.Context) error) error { return nil },
		Configure: func(string, bool) error { return nil },
		Started:   func(context.Context) error { return errors.New("the local etcd member did not start") },
	}
	err := Join(t.Context(), c, c.members, JoinParams{Name: "cp2", PeerURL: "https://10.0.0.2:2380"}, h)
	if err == nil || !strings.Contains(err.Error(), "did not start") {
		t.Fatalf("Join error = %v, want the start failure", err)
	}
	if diff := cmp.Diff([]string{"add learner https://10.0.0.2:2380"}, log); diff != "" {
		t.Errorf("Join steps (-want +got):\n%s", diff)
	}
}

func TestLeave(t *testing.T) {
	self := voter(2, "cp2")
	learner := Member{ID: 2, Name: "cp2", PeerURLs: self.PeerURLs, Learner: true}
	tests := []struct {
		name    string
		cluster fakeCluster
		want    Removal
		wantLog []string
		is      error
		wantErr string
	}{
		{
			name:    "removed, quorum kept",
			cluster: fakeCluster{members: []Member{voter(1, "cp1"), self, voter(3, "cp3")}},
			want:    Removal{Outcome: Removed, Member: self, Remaining: 2},
			wantLog: []string{"remove 2"},
		},
		{
			name:    "the only member",
			cluster: fakeCluster{members: []Member{self}},
			want:    Removal{Outcome: OnlyMember, Member: self, Remaining: 1},
		},
		{
			name:    "already removed",
			cluster: fakeCluster{members: []Member{voter(1, "cp1"), voter(3, "cp3")}},
			want:    Removal{Outcome: NotAMember, Remaining: 2},
		},
		{
			name:    "the rest would lose quorum: refused, nothing removed",
			cluster: fakeCluster{members: []Member{voter(1, "cp1"), self, voter(3, "cp3")}, down: map[string]bool{"cp3": true}},
			is:      ErrQuorum,
			wantErr: "refusing to remove etcd member cp2: removing the member would lose quorum: 1 of the 2 other voting members are healthy and 2 are needed " +
				"(etcd member cp3 does not answer); bring the other members back first, or pass --force",
		},
		{
			name:    "a learner does not count for quorum: removed",
			cluster: fakeCluster{members: []Member{voter(1, "cp1"), learner, voter(3, "cp3")}, down: map[string]bool{"cp3": true}},
			want:    Removal{Outcome: Removed, Member: learner, Remaining: 2},
			wantLog: []string{"remove 2"},
		},
		{
			name:    "the removal fails",
			cluster: fakeCluster{members: []Member{voter(1, "cp1"), self, voter(3, "cp3")}, removeErr: errors.New("removing etcd member 2: no leader")},
			wantLog: []string{"remove 2"},
			wantErr: "removing etcd member 2: no leader",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var log []string
			c := tc.cluster
			c.log = &log
			got, err := Leave(t.Context(), &c, slices.Clone(c.members), self.PeerURLs[0])
			checkErr(t, "Leave", err, tc.wantErr)
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("Leave error = %v, want one wrapping %v", err, tc.is)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Leave (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantLog, log); diff != "" {
				t.Errorf("Leave changes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDryRunRemembersChanges(t *testing.T) {
	var said []string
	say := func(format string, args ...any) { said = append(said, fmt.Sprintf(format, args...)) }
	f := NewDryRun(say, []string{"https://10.0.0.1:2379", "https://[fd00::3]:2379"})
	ctx := t.Context()
	m, all, err := f.AddLearner(ctx, "https://10.0.0.2:2380")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Promote(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.Remove(ctx, 1); err != nil {
		t.Fatal(err)
	}
	got, _ := f.Members(ctx)
	want := []Member{
		{ID: 1, Name: "member-1", PeerURLs: []string{"https://10.0.0.1:2380"}, ClientURLs: []string{"https://10.0.0.1:2379"}},
		{ID: 2, Name: "member-2", PeerURLs: []string{"https://[fd00::3]:2380"}, ClientURLs: []string{"https://[fd00::3]:2379"}},
		{ID: 3, PeerURLs: []string{"https://10.0.0.2:2380"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("members after the changes (-want +got):\n%s", diff)
	}
	if len(all) != 3 || !all[2].Learner {
		t.Errorf("AddLearner returned members %v, want the new learner last", all)
	}
	healthy, _ := f.HealthyMembers(ctx, got)
	if len(healthy) != 2 {
		t.Errorf("HealthyMembers = %v, want the two started members", healthy)
	}
	wantSaid := []string{"would add etcd learner https://10.0.0.2:2380", "would promote etcd member 3", "would remove etcd member 1"}
	if diff := cmp.Diff(wantSaid, said); diff != "" {
		t.Errorf("reported (-want +got):\n%s", diff)
	}
}
