package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ruleTag is the iptables comment on every rule the testbed adds.
const ruleTag = "kforge-testbed"

// netnsName is the network namespace of a host: /run/netns/kf-<name>.
func netnsName(host string) string { return NetnsPrefix + host }

// netnsPath is where ip netns mounts it.
func netnsPath(host string) string { return filepath.Join("/run/netns", netnsName(host)) }

// vethName is the root-namespace end of host index i's cable to the bridge; the host's
// end is eth0.
func vethName(i int) string { return "kf-veth" + strconv.Itoa(i) }

// bridgeAlias marks kf-br0 as belonging to the testbed in dir.
func bridgeAlias(dir string) string { return "kforge-testbed:" + dir }

func linkExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

func readAlias(link string) string {
	b, _ := os.ReadFile(filepath.Join("/sys/class/net", link, "ifalias"))
	return strings.TrimSpace(string(b))
}

// checkSubnetFree fails if an interface other than the bridge has an address in subnet,
// or a route other than the bridge's covers part of it: the testbed would shadow a real
// network, or be shadowed by it.
func checkSubnetFree(ctx context.Context, subnet netip.Prefix) error {
	ifs, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("listing network interfaces: %w", err)
	}
	for _, ifc := range ifs {
		if ifc.Name == Bridge {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(ipn.IP); ok && subnet.Contains(ip.Unmap()) {
					return fmt.Errorf("the testbed subnet %s is in use: interface %s has the address %s", subnet, ifc.Name, ipn)
				}
			}
		}
	}
	out, err := run(ctx, nil, "ip", "-j", "-4", "route", "show", "table", "all")
	if err != nil {
		return err
	}
	var routes []struct {
		Dst string `json:"dst"`
		Dev string `json:"dev"`
	}
	if err := json.Unmarshal(out, &routes); err != nil {
		return fmt.Errorf("parsing ip route output: %w", err)
	}
	for _, r := range routes {
		if r.Dst == "default" || r.Dev == Bridge {
			continue
		}
		dst := r.Dst
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		p, err := netip.ParsePrefix(dst)
		if err != nil || !p.Addr().Is4() {
			continue
		}
		if p.Bits() > 0 && p.Overlaps(subnet) {
			return fmt.Errorf("the testbed subnet %s is in use: there is a route to %s via %s", subnet, r.Dst, r.Dev)
		}
	}
	return nil
}

// ensureBridge creates the bridge with the gateway address, or checks that the one there
// belongs to this testbed.
func ensureBridge(ctx context.Context, dir string, subnet netip.Prefix) error {
	if linkExists(Bridge) {
		if a := readAlias(Bridge); a != bridgeAlias(dir) {
			return fmt.Errorf("the bridge %s exists but does not belong to the testbed in %s (its alias is %q): run down for the testbed that made it, or `ip link del %s`",
				Bridge, dir, a, Bridge)
		}
	} else {
		if err := checkSubnetFree(ctx, subnet); err != nil {
			return err
		}
		if _, err := run(ctx, nil, "ip", "link", "add", Bridge, "type", "bridge"); err != nil {
			return fmt.Errorf("creating the bridge: %w", err)
		}
		if _, err := run(ctx, nil, "ip", "link", "set", "dev", Bridge, "alias", bridgeAlias(dir)); err != nil {
			return fmt.Errorf("marking the bridge: %w", err)
		}
	}
	gw := netip.PrefixFrom(gateway(subnet), subnet.Bits())
	if _, err := run(ctx, nil, "ip", "addr", "replace", gw.String(), "dev", Bridge); err != nil {
		return fmt.Errorf("setting the bridge address: %w", err)
	}
	if _, err := run(ctx, nil, "ip", "link", "set", "dev", Bridge, "up"); err != nil {
		return fmt.Errorf("bringing the bridge up: %w", err)
	}
	return nil
}

// removeBridge deletes the bridge if it is this testbed's.
func removeBridge(ctx context.Context, dir string) error {
	if !linkExists(Bridge) {
		return nil
	}
	if a := readAlias(Bridge); a != bridgeAlias(dir) {
		return fmt.Errorf("leaving the bridge %s alone: it belongs to %q, not to the testbed in %s", Bridge, a, dir)
	}
	if _, err := run(ctx, nil, "ip", "link", "del", Bridge); err != nil {
		return fmt.Errorf("removing the bridge: %w", err)
	}
	return nil
}

// The FORWARD rules: traffic between hosts passes (it may traverse iptables when
// br_netfilter is loaded), anything else leaving the bridge is dropped.
var forwardRules = [][]string{
	{"-i", Bridge, "-o", Bridge, "-m", "comment", "--comment", ruleTag, "-j", "ACCEPT"},
	{"-i", Bridge, "!", "-o", Bridge, "-m", "comment", "--comment", ruleTag, "-j", "DROP"},
}

func ensureForwardRules(ctx context.Context) error {
	// Insert in reverse so that they end up first, in order.
	for i := len(forwardRules) - 1; i >= 0; i-- {
		r := forwardRules[i]
		if _, err := run(ctx, nil, "iptables", append([]string{"-w", "-C", "FORWARD"}, r...)...); err == nil {
			continue
		}
		if _, err := run(ctx, nil, "iptables", append([]string{"-w", "-I", "FORWARD", "1"}, r...)...); err != nil {
			return fmt.Errorf("adding the testbed's FORWARD rule: %w", err)
		}
	}
	return nil
}

// removeForwardRules deletes every FORWARD rule tagged with the testbed's comment.
func removeForwardRules(ctx context.Context) error {
	if _, err := lookPath("iptables"); err != nil {
		return nil // never installed: no rule
	}
	out, err := run(ctx, nil, "iptables", "-w", "-S", "FORWARD")
	if err != nil {
		return fmt.Errorf("listing FORWARD rules: %w", err)
	}
	var errs []error
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "-A" || !strings.Contains(line, "--comment "+ruleTag+" ") {
			continue
		}
		f[0] = "-D"
		if _, err := run(ctx, nil, "iptables", append([]string{"-w"}, f...)...); err != nil {
			errs = append(errs, fmt.Errorf("removing the FORWARD rule %q: %w", line, err))
		}
	}
	return errors.Join(errs...)
}

// netnsMounted reports whether /run/netns/kf-<host> is a live network namespace.
func netnsMounted(host string) bool {
	var st unix.Statfs_t
	return unix.Statfs(netnsPath(host), &st) == nil && st.Type == unix.NSFS_MAGIC
}

// hostNetworkOK reports whether a host's namespace, cable and address are all there.
func hostNetworkOK(ctx context.Context, host string, index int, addr netip.Prefix) bool {
	if !netnsMounted(host) || !linkExists(vethName(index)) {
		return false
	}
	out, err := run(ctx, nil, "ip", "-n", netnsName(host), "-j", "-4", "addr", "show", "dev", "eth0")
	return err == nil && strings.Contains(string(out), `"local":"`+addr.Addr().String()+`"`) &&
		strings.Contains(string(out), `"prefixlen":`+strconv.Itoa(addr.Bits()))
}

// createHostNetwork makes the host's network namespace with eth0 on the bridge and its
// address, the connected route and a route for ServiceCIDR, but no default route. Leftovers of an earlier attempt go first.
func createHostNetwork(ctx context.Context, host string, index int, addr netip.Prefix) error {
	if err := removeHostNetwork(ctx, host, index); err != nil {
		return err
	}
	ns, veth := netnsName(host), vethName(index)
	root := strings.Join([]string{
		"netns add " + ns,
		"link add " + veth + " type veth peer name eth0 netns " + ns,
		"link set dev " + veth + " master " + Bridge,
		"link set dev " + veth + " up",
	}, "\n") + "\n"
	if _, err := run(ctx, []byte(root), "ip", "-batch", "-"); err != nil {
		return fmt.Errorf("creating the network of host %s: %w", host, err)
	}
	// The service CIDR gets a route through the bridge, as a default route would give it
	// on a real host: the kernel must find a route before kube-proxy's DNAT rewrites a
	// ClusterIP. Anything that is not rewritten ends at the bridge's FORWARD drop.
	gw := addr.Masked().Addr().Next()
	inside := strings.Join([]string{
		"link set dev lo up",
		"addr add " + addr.String() + " dev eth0",
		"link set dev eth0 up",
		"route add " + ServiceCIDR.String() + " via " + gw.String() + " dev eth0",
	}, "\n") + "\n"
	if _, err := run(ctx, []byte(inside), "ip", "-n", ns, "-batch", "-"); err != nil {
		return fmt.Errorf("configuring the network of host %s: %w", host, err)
	}
	return nil
}

// removeHostNetwork deletes the host's network namespace and its cable. The namespace
// itself goes away once no process is left in it.
func removeHostNetwork(ctx context.Context, host string, index int) error {
	var errs []error
	if _, err := os.Lstat(netnsPath(host)); err == nil {
		if _, err := run(ctx, nil, "ip", "netns", "del", netnsName(host)); err != nil {
			errs = append(errs, fmt.Errorf("removing the network namespace of host %s: %w", host, err))
		}
	}
	if linkExists(vethName(index)) {
		if _, err := run(ctx, nil, "ip", "link", "del", vethName(index)); err != nil && linkExists(vethName(index)) {
			errs = append(errs, fmt.Errorf("removing the cable of host %s: %w", host, err))
		}
	}
	return errors.Join(errs...)
}

// noteRunNetns records, before the first `ip netns add`, whether that will turn
// /run/netns into a mount point (and create it), so that Down can undo exactly that.
func noteRunNetns(st *state) {
	if st.RunNetns != "" || slices.Contains(mountsUnder("/run/netns"), "/run/netns") {
		return
	}
	st.RunNetns = "mounted"
	if _, err := os.Lstat("/run/netns"); errors.Is(err, fs.ErrNotExist) {
		st.RunNetns = "created"
	}
}

// restoreRunNetns unmounts (and removes) /run/netns if the testbed's namespaces made it
// a mount and none is left in it.
func restoreRunNetns(st *state) error {
	if st.RunNetns == "" {
		return nil
	}
	if entries, err := os.ReadDir("/run/netns"); err != nil || len(entries) > 0 {
		return nil // someone else's namespaces are there now: leave it
	}
	if slices.Contains(mountsUnder("/run/netns"), "/run/netns") {
		if err := unix.Unmount("/run/netns", 0); err != nil {
			return fmt.Errorf("unmounting /run/netns: %w", err)
		}
	}
	if st.RunNetns == "created" {
		if err := os.Remove("/run/netns"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing /run/netns: %w", err)
		}
	}
	return nil
}
