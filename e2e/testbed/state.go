package testbed

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Defaults and the fixed names the testbed uses on the machine.
const (
	DefaultStateDir = "/var/lib/kforge-testbed"
	DefaultSubnet   = "10.77.0.0/24"
	// Bridge is the root-namespace bridge every host's eth0 is plugged into.
	Bridge = "kf-br0"
	// NetnsPrefix starts the name of every network namespace the testbed creates:
	// host h1 lives in /run/netns/kf-h1.
	NetnsPrefix = "kf-"
	// ruleComment tags the iptables rule that keeps traffic inside the bridge, so that
	// Down removes exactly that rule.
	ruleComment = "kforge-testbed: no egress"
	// SSHPort is where every host's sshd listens.
	SSHPort = 22

	stateFile    = "testbed.json"
	stateVersion = 1
	// Host indexes give addresses: host index i is the subnet's address 10+i.
	addrOffset = 10
)

// The networks a cluster on the testbed uses inside its hosts; the testbed subnet must not
// overlap them.
var (
	PodCIDR     = netip.MustParsePrefix("10.244.0.0/16")
	ServiceCIDR = netip.MustParsePrefix("10.96.0.0/12")
)

// ErrPoweredOff is returned when a host's PID 1 is not running.
var ErrPoweredOff = errors.New("host is powered off")

// state is what testbed.json records: enough for Down to remove everything, even after a
// crash half-way through Up.
type state struct {
	Version int         `json:"version"`
	Subnet  string      `json:"subnet"`
	Hosts   []hostState `json:"hosts"`
	// CreatedPaths are mount points Up had to create in the machine's own file system (the
	// parents before the children); Down removes them again if they are still empty.
	CreatedPaths []string `json:"createdPaths,omitempty"`
	// RunNetns says what the first `ip netns add` did to /run/netns: made it a mount
	// ("mounted"), or created the directory too ("created"). Down undoes it once no
	// namespace is left there.
	RunNetns string `json:"runNetns,omitempty"`
}

type hostState struct {
	Name  string `json:"name"`
	Index int    `json:"index"`
	// Kind is empty for KindNS (what testbeds before kinds wrote).
	Kind Kind `json:"kind,omitempty"`
}

var nameRE = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$`)

// validName reports whether name can be a host name: a lowercase DNS label of at most 32
// characters starting with a letter (it also names the host's netns and cgroups).
func validName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("host name %q is not valid: want a lowercase DNS label of 1-32 characters that starts with a letter, such as h1", name)
	}
	return nil
}

// indexOfHN returns N for the conventional names hN and 0 otherwise.
func indexOfHN(name string) int {
	digits, ok := strings.CutPrefix(name, "h")
	n, err := strconv.Atoi(digits)
	if !ok || err != nil || n <= 0 || strconv.Itoa(n) != digits {
		return 0
	}
	return n
}

// parseSubnet checks that s is a private IPv4 subnet that can hold hosts and overlaps
// neither the pod nor the service network.
func parseSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("parsing the testbed subnet %q: %w", s, err)
	}
	p = p.Masked()
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("the testbed subnet %s is not IPv4", p)
	}
	if p.Bits() < 16 || p.Bits() > 27 {
		return netip.Prefix{}, fmt.Errorf("the testbed subnet %s must be between a /16 and a /27", p)
	}
	private := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
	}
	if !slices.ContainsFunc(private, func(q netip.Prefix) bool { return q.Contains(p.Addr()) && q.Bits() <= p.Bits() }) {
		return netip.Prefix{}, fmt.Errorf("the testbed subnet %s is not a private (RFC 1918) network", p)
	}
	for _, q := range []netip.Prefix{PodCIDR, ServiceCIDR} {
		if p.Overlaps(q) {
			return netip.Prefix{}, fmt.Errorf("the testbed subnet %s overlaps %s, which clusters on the testbed use", p, q)
		}
	}
	return p, nil
}

// maxIndex is the highest host index that fits in subnet p (below the broadcast address).
func maxIndex(p netip.Prefix) int {
	size := 1 << (32 - p.Bits())
	return min(size-addrOffset-2, 1<<16)
}

// gateway is the root namespace's address on the bridge: the subnet's first address.
func gateway(p netip.Prefix) netip.Addr { return p.Addr().Next() }

// hostAddr is the address of the host with index i.
func hostAddr(p netip.Prefix, i int) netip.Addr {
	a := p.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(addrOffset + i)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// allocIndex picks the index for a new host: N for hN, otherwise the highest free index,
// so that names chosen by hand never take the address a later hN needs.
func allocIndex(st *state, name string, max int) (int, error) {
	used := map[int]string{}
	for _, h := range st.Hosts {
		used[h.Index] = h.Name
	}
	if n := indexOfHN(name); n > 0 {
		if n > max {
			return 0, fmt.Errorf("host %s does not fit in the testbed subnet %s (at most h%d)", name, st.Subnet, max)
		}
		if other, ok := used[n]; ok {
			return 0, fmt.Errorf("host %s needs index %d, which host %s has", name, n, other)
		}
		return n, nil
	}
	for i := max; i >= 1; i-- {
		if _, ok := used[i]; !ok {
			return i, nil
		}
	}
	return 0, fmt.Errorf("the testbed subnet %s has no address left for host %s", st.Subnet, name)
}

func readState(dir string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("reading the testbed state: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("reading the testbed state %s: %w", filepath.Join(dir, stateFile), err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("the testbed state %s has version %d; this testbed writes version %d: run down with the testbed that made it",
			filepath.Join(dir, stateFile), st.Version, stateVersion)
	}
	return &st, nil
}

func writeState(dir string, st *state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, stateFile), append(b, '\n'), 0o644)
}

// writeFileAtomic writes through a temp file and a rename. (Files that are bind-mounted
// into hosts are rewritten in place instead: a rename would detach them.)
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Chmod(tmp, perm); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// fileLock is an exclusive flock on a file: one testbed command at a time per state dir.
type fileLock struct{ f *os.File }

func lockDir(dir string) (*fileLock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the testbed state directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the testbed lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	return &fileLock{f: f}, nil
}

func (l *fileLock) unlock() {
	if l != nil && l.f != nil {
		unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
		l.f.Close()
		l.f = nil
	}
}
