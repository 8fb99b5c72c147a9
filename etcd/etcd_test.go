package etcd

import (
	"errors"
	"testing"
)

func TestQuorum(t *testing.T) {
	for n, want := range map[int]int{1: 1, 2: 2, 3: 2, 4: 3, 5: 3} {
		if got := Quorum(n); got != want {
			t.Errorf("Quorum(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestCheckRemoval(t *testing.T) {
	m := func(id uint64, learner bool) Member {
		return Member{ID: id, Name: "m" + string(rune('0'+id)), PeerURLs: []string{"https://10.0.0." + string(rune('0'+id)) + ":2380"}, Learner: learner}
	}
	three := []Member{m(1, false), m(2, false), m(3, false)}
	tests := []struct {
		name    string
		members []Member
		healthy []Member
		remove  uint64
		ok      bool
	}{
		{"all healthy, 3 to 2", three, three, 3, true},
		{"one other down, 3 to 2: the last healthy one alone is not a quorum of 2", three, []Member{m(1, false), m(3, false)}, 3, false},
		{"removing the down one keeps the healthy two", three, []Member{m(1, false), m(2, false)}, 3, true},
		{"2 to 1 with the other healthy", three[:2], three[:2], 2, true},
		{"2 to 1 with the other down", three[:2], []Member{m(2, false)}, 2, false},
		{"the last voter", three[:1], three[:1], 1, false},
		{"learners do not count", []Member{m(1, false), m(2, true)}, []Member{m(1, false)}, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckRemoval(tc.members, tc.healthy, tc.remove)
			if tc.ok && err != nil {
				t.Errorf("CheckRemoval: %v, want nil", err)
			}
			if !tc.ok && !errors.Is(err, ErrQuorum) {
				t.Errorf("CheckRemoval: %v, want ErrQuorum", err)
			}
		})
	}
}

func TestInitialCluster(t *testing.T) {
	ms := []Member{
		{ID: 1, Name: "h1", PeerURLs: []string{"https://10.0.0.1:2380"}},
		{ID: 2, Name: "h2", PeerURLs: []string{"https://10.0.0.2:2380"}},
		{ID: 3, Name: "", PeerURLs: []string{"https://10.0.0.9:2380"}}, // added, never started
		{ID: 4, Name: "", PeerURLs: []string{"https://10.0.0.3:2380"}, Learner: true},
	}
	got := InitialCluster(ms, "h3", "https://10.0.0.3:2380")
	want := "h1=https://10.0.0.1:2380,h2=https://10.0.0.2:2380,h3=https://10.0.0.3:2380"
	if got != want {
		t.Errorf("InitialCluster = %q, want %q", got, want)
	}
	if got, want := PeerURL("fd00::1"), "https://[fd00::1]:2380"; got != want {
		t.Errorf("PeerURL = %q, want %q", got, want)
	}
}
