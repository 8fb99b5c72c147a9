// Package etcd manages the membership of a cluster's stacked etcd: it lists members, adds
// a joining control-plane host as a learner and promotes it once it has caught up, removes
// a member without losing quorum, and checks members' health. It wraps etcd's client API;
// it knows nothing of hosts, files or the terminal.
package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Errors callers branch on.
var (
	// ErrNotCaughtUp means a learner is not yet in sync with the leader and cannot be
	// promoted yet.
	ErrNotCaughtUp = errors.New("the learner has not caught up with the leader yet")
	// ErrOtherLearner means another learner is in the cluster (another control-plane host is
	// joining right now); etcd allows one at a time.
	ErrOtherLearner = errors.New("another member is joining (etcd allows one learner at a time)")
	// ErrQuorum means removing a member would leave fewer healthy members than the
	// remaining cluster needs for quorum.
	ErrQuorum = errors.New("removing the member would lose quorum")
)

// Member is one etcd cluster member.
type Member struct {
	ID         uint64
	Name       string
	PeerURLs   []string
	ClientURLs []string
	Learner    bool
}

// Started reports whether the member has run and published its name; a member that was
// added but never started has none.
func (m Member) Started() bool { return m.Name != "" }

func (m Member) String() string {
	name := m.Name
	if name == "" {
		name = "(not started)"
	}
	s := fmt.Sprintf("%s %x %s", name, m.ID, strings.Join(m.PeerURLs, ","))
	if m.Learner {
		s += " learner"
	}
	return s
}

// HasPeerURL reports whether u is one of the member's peer URLs.
func (m Member) HasPeerURL(u string) bool { return slices.Contains(m.PeerURLs, u) }

// TLSConfig is the client TLS configuration from PEM files: the etcd CA and a client
// certificate it signed.
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading the etcd client certificate %s: %w", certFile, err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading the etcd CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("the etcd CA %s holds no PEM certificate", caFile)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// Client talks to one etcd cluster.
type Client struct {
	c   *clientv3.Client
	tls *tls.Config
}

// DialTimeout bounds connecting to an endpoint.
const DialTimeout = 5 * time.Second

// New connects to the cluster through endpoints ("https://10.0.0.1:2379").
func New(endpoints []string, tlsConfig *tls.Config) (*Client, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("connecting to etcd: no endpoints")
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		TLS:                  tlsConfig,
		DialTimeout:          DialTimeout,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to etcd at %s: %w", strings.Join(endpoints, ", "), err)
	}
	return &Client{c: c, tls: tlsConfig}, nil
}

// Close closes the connections.
func (c *Client) Close() error { return c.c.Close() }

// Members lists the cluster's members, ordered by name (unstarted ones last).
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	resp, err := c.c.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing etcd members: %w", err)
	}
	var out []Member
	for _, m := range resp.Members {
		out = append(out, Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: m.IsLearner})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Started() != out[j].Started() {
			return out[i].Started()
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// AddLearner adds a non-voting member with peerURL and returns it and the members after
// the change. A learner does not count for quorum, so a new host that never starts cannot
// make the cluster lose it.
func (c *Client) AddLearner(ctx context.Context, peerURL string) (Member, []Member, error) {
	resp, err := c.c.MemberAddAsLearner(ctx, []string{peerURL})
	if err != nil {
		if errors.Is(err, rpctypes.ErrTooManyLearners) {
			return Member{}, nil, fmt.Errorf("adding %s as an etcd learner: %w", peerURL, ErrOtherLearner)
		}
		return Member{}, nil, fmt.Errorf("adding %s as an etcd learner: %w", peerURL, err)
	}
	var all []Member
	for _, m := range resp.Members {
		all = append(all, Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: m.IsLearner})
	}
	m := resp.Member
	return Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: true}, all, nil
}

// Promote makes a learner a voting member. ErrNotCaughtUp means try again later.
func (c *Client) Promote(ctx context.Context, id uint64) error {
	_, err := c.c.MemberPromote(ctx, id)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, rpctypes.ErrMemberLearnerNotReady):
		return fmt.Errorf("promoting etcd member %x: %w", id, ErrNotCaughtUp)
	}
	return fmt.Errorf("promoting etcd member %x: %w", id, err)
}

// Remove removes a member.
func (c *Client) Remove(ctx context.Context, id uint64) error {
	if _, err := c.c.MemberRemove(ctx, id); err != nil {
		return fmt.Errorf("removing etcd member %x: %w", id, err)
	}
	return nil
}

// Healthy asks the member serving clientURL for its status; nil means it answered and
// reports no errors and a leader.
func (c *Client) Healthy(ctx context.Context, clientURL string) error {
	ctx, cancel := context.WithTimeout(ctx, DialTimeout)
	defer cancel()
	st, err := c.c.Status(ctx, clientURL)
	if err != nil {
		return fmt.Errorf("etcd at %s: %w", clientURL, err)
	}
	if len(st.Errors) > 0 {
		return fmt.Errorf("etcd at %s reports: %s", clientURL, strings.Join(st.Errors, "; "))
	}
	if st.Leader == 0 {
		return fmt.Errorf("etcd at %s has no leader", clientURL)
	}
	return nil
}

// HealthyMembers returns the started voting members that answer Healthy, and the errors of
// those that do not.
func (c *Client) HealthyMembers(ctx context.Context, members []Member) (healthy []Member, errs []error) {
	for _, m := range members {
		if !m.Started() || m.Learner {
			continue
		}
		var err error = fmt.Errorf("etcd member %s publishes no client URL", m.Name)
		for _, u := range m.ClientURLs {
			if err = c.Healthy(ctx, u); err == nil {
				break
			}
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		healthy = append(healthy, m)
	}
	return healthy, errs
}

// Quorum is how many voting members a cluster of n needs to make progress.
func Quorum(n int) int { return n/2 + 1 }

// CheckRemoval returns nil when removing the member with id keeps quorum: the voting
// members other than it that are healthy must be at least a quorum of the cluster after
// the removal. healthy are the healthy voting members (HealthyMembers).
func CheckRemoval(members []Member, healthy []Member, id uint64) error {
	voters := 0
	for _, m := range members {
		if !m.Learner && m.ID != id {
			voters++
		}
	}
	healthyOthers := 0
	for _, m := range healthy {
		if m.ID != id {
			healthyOthers++
		}
	}
	if voters == 0 {
		return fmt.Errorf("%w: it is the last voting member", ErrQuorum)
	}
	if need := Quorum(voters); healthyOthers < need {
		return fmt.Errorf("%w: %d of the %d other voting members are healthy and %d are needed", ErrQuorum, healthyOthers, voters, need)
	}
	return nil
}

// InitialCluster is the --initial-cluster value for a member named self with peerURL
// joining members: every started member's name and peer URLs, then self.
func InitialCluster(members []Member, self, peerURL string) string {
	var parts []string
	for _, m := range members {
		if !m.Started() || m.Name == self || m.HasPeerURL(peerURL) {
			continue
		}
		for _, u := range m.PeerURLs {
			parts = append(parts, m.Name+"="+u)
		}
	}
	sort.Strings(parts)
	return strings.Join(append(parts, self+"="+peerURL), ",")
}

// PeerURL is the peer URL of a member advertising ip on port 2380.
func PeerURL(ip string) string {
	return (&url.URL{Scheme: "https", Host: net.JoinHostPort(ip, "2380")}).String()
}

// ClientURL is the client URL of a member advertising ip on port 2379.
func ClientURL(ip string) string {
	return (&url.URL{Scheme: "https", Host: net.JoinHostPort(ip, "2379")}).String()
}
