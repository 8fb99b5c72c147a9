package host

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// Bastions shares bastion connections: the hosts dialled with the same Bastions through
// the same bastion (address, port, user, known_hosts and key files) tunnel through one
// connection to it, dialled by the first of them and closed with the last. A fleet that
// dials many hosts at once so opens one connection to the bastion, not one per host,
// which stays under OpenSSH's MaxStartups. The zero value is ready to use.
type Bastions struct {
	mu    sync.Mutex
	conns map[string]*sharedBastion
}

// sharedBastion is one bastion connection and the hosts that use it.
type sharedBastion struct {
	ready chan struct{} // closed once the dial is over
	h     *SSHHost      // set, with err, before ready is closed
	err   error
	users int // hosts that hold it or wait for it; guarded by Bastions.mu
}

// bastionKey says which configs may share a connection.
func bastionKey(c SSHConfig) string {
	return fmt.Sprintf("%s@%s:%d %s %s", c.User, c.Address, c.Port, c.KnownHostsPath, strings.Join(c.KeyFiles, ","))
}

// get returns a connection to the bastion cfg describes and the function that gives it
// back. With a nil p, every call dials a connection of its own.
func (p *Bastions) get(ctx context.Context, cfg SSHConfig) (*SSHHost, func() error, error) {
	if p == nil {
		b, err := Dial(ctx, cfg)
		if err != nil {
			return nil, nil, err
		}
		return b, b.Close, nil
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, nil, err
	}
	key := bastionKey(cfg)
	p.mu.Lock()
	if p.conns == nil {
		p.conns = map[string]*sharedBastion{}
	}
	s := p.conns[key]
	if s != nil && s.lost() {
		// The connection died (its keepalive gave up): the hosts that tunnel through it
		// keep it until they close; new ones get a new connection.
		delete(p.conns, key)
		s = nil
	}
	dialer := s == nil
	if dialer {
		s = &sharedBastion{ready: make(chan struct{})}
		p.conns[key] = s
	}
	s.users++
	p.mu.Unlock()

	if dialer {
		s.h, s.err = Dial(ctx, cfg)
		if s.err != nil {
			p.mu.Lock()
			if p.conns[key] == s {
				delete(p.conns, key)
			}
			p.mu.Unlock()
		}
		close(s.ready)
	}
	release := p.releaser(key, s)
	select {
	case <-s.ready:
	case <-ctx.Done():
		release()
		return nil, nil, ctx.Err()
	}
	if s.err != nil {
		release()
		return nil, nil, s.err
	}
	return s.h, release, nil
}

// lost reports whether the connection was dialled and then lost.
func (s *sharedBastion) lost() bool {
	select {
	case <-s.ready:
	default:
		return false
	}
	if s.h == nil {
		return false
	}
	s.h.lostMu.Lock()
	defer s.h.lostMu.Unlock()
	return s.h.lost != nil
}

// releaser returns the function that gives s back, once; the last user closes it.
func (p *Bastions) releaser(key string, s *sharedBastion) func() error {
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() {
			p.mu.Lock()
			s.users--
			last := s.users == 0
			if last && p.conns[key] == s {
				delete(p.conns, key)
			}
			p.mu.Unlock()
			if last && s.h != nil {
				err = s.h.Close()
			}
		})
		return err
	}
}
