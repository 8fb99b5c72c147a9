package phases

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/kforge/kforge/config"
)

// SelectNode finds this host's entry in c.Hosts: the one named name if name is set, else
// the one whose address or internal address is among localAddrs.
func SelectNode(c *config.Cluster, name string, localAddrs []net.IP) (*config.Host, error) {
	if name != "" {
		h, ok := c.HostByName(name)
		if !ok {
			return nil, fmt.Errorf("--node %q is not in the file's hosts (%s)", name, hostNames(c))
		}
		return h, nil
	}
	var matches []*config.Host
	for i := range c.Hosts {
		h := &c.Hosts[i]
		for _, a := range localAddrs {
			if ip := net.ParseIP(h.NodeIP()); ip != nil && ip.Equal(a) {
				matches = append(matches, h)
				break
			}
			if ip := net.ParseIP(h.Address); ip != nil && ip.Equal(a) {
				matches = append(matches, h)
				break
			}
		}
	}
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		return nil, fmt.Errorf("none of the file's hosts (%s) has an address of this machine; pass --node NAME", hostNames(c))
	}
	var names []string
	for _, h := range matches {
		names = append(names, h.Name)
	}
	return nil, fmt.Errorf("hosts %s all have addresses of this machine; pass --node NAME", strings.Join(names, ", "))
}

func hostNames(c *config.Cluster) string {
	if len(c.Hosts) == 0 {
		return "none"
	}
	var names []string
	for _, h := range c.Hosts {
		names = append(names, h.Name)
	}
	return strings.Join(names, ", ")
}

// LocalAddresses lists the IP addresses of this machine's interfaces.
func LocalAddresses() ([]net.IP, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("listing this machine's addresses: %w", err)
	}
	var out []net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			out = append(out, n.IP)
		}
	}
	return out, nil
}

// ErrNoAdvertiseAddress means no address could be chosen automatically.
var ErrNoAdvertiseAddress = errors.New("no address to advertise")

// DefaultAdvertiseAddress picks the address a single-host init advertises when none is
// given: the first global IPv4 address of the interface with the default route, else the
// first global address of any interface.
func DefaultAdvertiseAddress() (net.IP, error) {
	if ifname := defaultRouteInterface("/proc/net/route"); ifname != "" {
		if ifc, err := net.InterfaceByName(ifname); err == nil {
			if ip := firstGlobal(ifc); ip != nil {
				return ip, nil
			}
		}
	}
	ifcs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("listing interfaces: %w", err)
	}
	for i := range ifcs {
		if ifcs[i].Flags&net.FlagUp == 0 || ifcs[i].Flags&net.FlagLoopback != 0 {
			continue
		}
		if ip := firstGlobal(&ifcs[i]); ip != nil {
			return ip, nil
		}
	}
	return nil, fmt.Errorf("%w: this machine has no global unicast address; pass --advertise-address", ErrNoAdvertiseAddress)
}

func firstGlobal(ifc *net.Interface) net.IP {
	addrs, err := ifc.Addrs()
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return n.IP
		}
	}
	return nil
}

// defaultRouteInterface reads the kernel's IPv4 routing table and returns the interface of
// the default route, or "".
func defaultRouteInterface(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 2 && fields[1] == "00000000" && fields[0] != "Iface" {
			return fields[0]
		}
	}
	return ""
}
