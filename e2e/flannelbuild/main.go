// Command flanneld is the flannel daemon of kforge's test bundle. It is built from
// flannel's own packages, but only with what kforge's flannel add-on uses: the Kubernetes
// subnet manager and the vxlan and host-gw backends. (flannel's own main package cannot be
// built here: its tencentvpc backend needs a module the module proxy refuses, and its udp
// backend needs cgo.)
//
// It takes flannel's flag names for what it supports, e.g. the add-on's
// "--ip-masq --kube-subnet-mgr", finds its node through POD_NAME and POD_NAMESPACE (or
// NODE_NAME), reads /etc/kube-flannel/net-conf.json and writes /run/flannel/subnet.env.
// Every flag can also be set through the environment as FLANNELD_<FLAG>, with dashes as
// underscores.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flannel-io/flannel/pkg/backend"
	_ "github.com/flannel-io/flannel/pkg/backend/hostgw" // registers "host-gw"
	_ "github.com/flannel-io/flannel/pkg/backend/vxlan"  // registers "vxlan"
	"github.com/flannel-io/flannel/pkg/ip"
	"github.com/flannel-io/flannel/pkg/ipmatch"
	"github.com/flannel-io/flannel/pkg/subnet"
	"github.com/flannel-io/flannel/pkg/subnet/kube"
	"github.com/flannel-io/flannel/pkg/trafficmngr"
	"github.com/flannel-io/flannel/pkg/trafficmngr/iptables"
	"github.com/flannel-io/flannel/pkg/trafficmngr/nftables"
	"github.com/flannel-io/flannel/pkg/version"
	"k8s.io/klog/v2"
)

// options are the command-line flags.
type options struct {
	version                   bool
	kubeSubnetMgr             bool
	kubeAPIURL                string
	kubeConfigFile            string
	kubeAnnotationPrefix      string
	netConfPath               string
	subnetFile                string
	ifaces                    listFlag
	ifaceRegexes              listFlag
	ifaceCanReach             string
	publicIP                  string
	publicIPv6                string
	ipMasq                    bool
	ipMasqRandomFullyDisable  bool
	iptablesResyncSeconds     int
	iptablesForwardRules      bool
	setNodeNetworkUnavailable bool
	healthzIP                 string
	healthzPort               int
}

// listFlag is a flag that may be given several times.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func newFlagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("flanneld", flag.ContinueOnError)
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.BoolVar(&o.kubeSubnetMgr, "kube-subnet-mgr", false, "use the Kubernetes API for subnet assignment (required: this build has no etcd subnet manager)")
	fs.StringVar(&o.kubeAPIURL, "kube-api-url", "", "Kubernetes API server URL; not needed in a pod")
	fs.StringVar(&o.kubeConfigFile, "kubeconfig-file", "", "kubeconfig file; not needed in a pod")
	fs.StringVar(&o.kubeAnnotationPrefix, "kube-annotation-prefix", "flannel.alpha.coreos.com", "prefix of the node annotations flannel writes")
	fs.StringVar(&o.netConfPath, "net-config-path", "/etc/kube-flannel/net-conf.json", "network configuration file")
	fs.StringVar(&o.subnetFile, "subnet-file", "/run/flannel/subnet.env", "file the node's subnet, MTU and masquerade setting are written to, for the CNI plugin")
	fs.Var(&o.ifaces, "iface", "interface (name or address) for inter-host traffic; may be repeated, the first match wins")
	fs.Var(&o.ifaceRegexes, "iface-regex", "regular expression matching the interface (name or address) for inter-host traffic; may be repeated")
	fs.StringVar(&o.ifaceCanReach, "iface-can-reach", "", "use the interface that routes to this address")
	fs.StringVar(&o.publicIP, "public-ip", "", "IPv4 address other nodes reach this one at")
	fs.StringVar(&o.publicIPv6, "public-ipv6", "", "IPv6 address other nodes reach this one at")
	fs.BoolVar(&o.ipMasq, "ip-masq", false, "masquerade traffic that leaves the pod network")
	fs.BoolVar(&o.ipMasqRandomFullyDisable, "ip-masq-fully-random-disable", false, "do not use fully-random mode for MASQUERADE")
	fs.IntVar(&o.iptablesResyncSeconds, "iptables-resync", 5, "seconds between checks of the netfilter rules")
	fs.BoolVar(&o.iptablesForwardRules, "iptables-forward-rules", true, "accept the pod network's traffic in the FORWARD chain")
	fs.BoolVar(&o.setNodeNetworkUnavailable, "set-node-network-unavailable", true, "set the node's NetworkUnavailable condition to False once the network is up")
	fs.StringVar(&o.healthzIP, "healthz-ip", "0.0.0.0", "address of the /healthz and /readyz server")
	fs.IntVar(&o.healthzPort, "healthz-port", 0, "port of the /healthz and /readyz server (0: no server)")
	return fs
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		klog.ErrorS(err, "flanneld failed")
		klog.Flush()
		os.Exit(1)
	}
	klog.Flush()
}

func run(args []string) error {
	var o options
	fs := newFlagSet(&o)
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	for _, name := range []string{"v", "vmodule"} {
		f := klogFlags.Lookup(name)
		fs.Var(f.Value, f.Name, f.Usage)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := flagsFromEnv(fs, os.LookupEnv); err != nil {
		return err
	}
	if o.version {
		fmt.Println(version.Version)
		return nil
	}
	if !o.kubeSubnetMgr {
		return errors.New("only --kube-subnet-mgr is supported: this flanneld has no etcd subnet manager")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var wg sync.WaitGroup
	err := runFlannel(ctx, &o, &wg)
	stop()
	wg.Wait()
	if err == nil {
		klog.Info("stopped")
	}
	return err
}

// runFlannel sets the node's network up and returns once it runs; the backend and the
// rule resyncs keep running in wg until ctx ends.
func runFlannel(ctx context.Context, o *options, wg *sync.WaitGroup) error {
	klog.InfoS("starting flanneld", "version", version.Version, "ipMasq", o.ipMasq, "netConf", o.netConfPath, "subnetFile", o.subnetFile)
	sm, err := kube.NewSubnetManager(ctx, o.kubeAPIURL, o.kubeConfigFile, o.kubeAnnotationPrefix, o.netConfPath, o.setNodeNetworkUnavailable)
	if err != nil {
		return fmt.Errorf("creating the Kubernetes subnet manager: %w", err)
	}

	config, err := networkConfig(ctx, sm)
	if err != nil {
		return err
	}
	klog.InfoS("network configuration", "backend", config.BackendType, "network", config.Network, "ipv6Network", config.IPv6Network, "nftables", config.EnableNFTables)
	stack, err := ipmatch.GetIPFamily(config.EnableIPv4, config.EnableIPv6)
	if err != nil {
		return fmt.Errorf("%s: %w", o.netConfPath, err)
	}
	if !config.EnableNFTables {
		if err := checkBridgeNetfilter(config); err != nil {
			return err
		}
	}

	extIface, err := externalInterface(ctx, o, sm, stack)
	if err != nil {
		return err
	}

	var healthy atomic.Bool
	if o.healthzPort > 0 {
		serveHealth(ctx, wg, net.JoinHostPort(o.healthzIP, strconv.Itoa(o.healthzPort)), &healthy)
	}

	be, err := backend.NewManager(ctx, sm, extIface).GetBackend(config.BackendType)
	if err != nil {
		return fmt.Errorf("backend %q (this flanneld has vxlan and host-gw): %w", config.BackendType, err)
	}
	bn, err := be.RegisterNetwork(ctx, wg, config)
	if err != nil {
		return fmt.Errorf("registering the network with the %s backend: %w", config.BackendType, err)
	}

	// Remove the rules of the traffic manager not in use, in case flannel ran with the
	// other one before, then set up the one in use.
	if err := trafficManager(!config.EnableNFTables).CleanUp(ctx); err != nil {
		return fmt.Errorf("cleaning up unused traffic rules: %w", err)
	}
	tm := trafficManager(config.EnableNFTables)
	if err := tm.Init(ctx); err != nil {
		return fmt.Errorf("initializing the traffic manager: %w", err)
	}
	if o.ipMasq {
		prev := readSubnetFile(o.subnetFile)
		err := tm.SetupAndEnsureMasqRules(ctx,
			config.Network, prev.ip4("FLANNEL_SUBNET"), prev.ip4("FLANNEL_NETWORK"),
			config.IPv6Network, prev.ip6("FLANNEL_IPV6_SUBNET"), prev.ip6("FLANNEL_IPV6_NETWORK"),
			bn.Lease(), o.iptablesResyncSeconds, o.ipMasqRandomFullyDisable)
		if err != nil {
			return fmt.Errorf("setting up masquerade rules: %w", err)
		}
	}
	if o.iptablesForwardRules {
		tm.SetupAndEnsureForwardRules(ctx, config.Network, config.IPv6Network, o.iptablesResyncSeconds)
	}

	lease := bn.Lease()
	if err := sm.HandleSubnetFile(o.subnetFile, config, o.ipMasq, lease.Subnet, lease.IPv6Subnet, bn.MTU()); err != nil {
		return fmt.Errorf("writing %s: %w", o.subnetFile, err)
	}
	klog.InfoS("wrote the subnet file", "path", o.subnetFile, "subnet", lease.Subnet, "mtu", bn.MTU())
	healthy.Store(true)

	wg.Add(1)
	go func() {
		defer wg.Done()
		bn.Run(ctx)
	}()
	if err := sm.CompleteLease(ctx, lease, wg); err != nil && ctx.Err() == nil {
		return fmt.Errorf("completing the lease: %w", err)
	}
	klog.Info("flannel is running")
	<-ctx.Done()
	return nil
}

// networkConfig reads the network configuration, retrying every second.
func networkConfig(ctx context.Context, sm subnet.Manager) (*subnet.Config, error) {
	for {
		config, err := sm.GetNetworkConfig(ctx)
		switch {
		case err != nil:
			klog.ErrorS(err, "reading the network configuration")
		case config == nil:
			klog.Warning("no network configuration yet")
		default:
			return config, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// checkBridgeNetfilter fails when br_netfilter is not loaded: without it, traffic between
// pods on one bridge bypasses kube-proxy's rules.
func checkBridgeNetfilter(config *subnet.Config) error {
	for _, c := range []struct {
		on   bool
		path string
	}{
		{config.EnableIPv4, "/proc/sys/net/bridge/bridge-nf-call-iptables"},
		{config.EnableIPv6, "/proc/sys/net/bridge/bridge-nf-call-ip6tables"},
	} {
		if _, err := os.Stat(c.path); c.on && err != nil {
			return fmt.Errorf("br_netfilter is not loaded (modprobe br_netfilter): %w", err)
		}
	}
	return nil
}

// externalInterface picks the interface for inter-host traffic: the first of --iface,
// then --iface-regex, then --iface-can-reach that matches, else the default route's.
func externalInterface(ctx context.Context, o *options, sm subnet.Manager, stack int) (*backend.ExternalInterface, error) {
	// An address stored on the node (flannel's public-ip-overwrite annotation) wins.
	if v4, v6 := sm.GetStoredPublicIP(ctx); v4 != "" || v6 != "" {
		if v4 != "" {
			o.publicIP = v4
		}
		if v6 != "" {
			o.publicIPv6 = v6
		}
	}
	pub := ipmatch.PublicIPOpts{PublicIP: o.publicIP, PublicIPv6: o.publicIPv6}
	if len(o.ifaces) == 0 && len(o.ifaceRegexes) == 0 && o.ifaceCanReach == "" {
		addr := o.publicIP
		if addr == "" {
			addr = o.publicIPv6
		}
		ext, err := ipmatch.LookupExtIface(addr, "", "", stack, pub)
		if err != nil {
			return nil, fmt.Errorf("finding the interface for inter-host traffic: %w", err)
		}
		return ext, nil
	}
	type try struct{ name, regex, canReach string }
	var tries []try
	for _, n := range o.ifaces {
		tries = append(tries, try{name: n})
	}
	for _, r := range o.ifaceRegexes {
		tries = append(tries, try{regex: r})
	}
	if o.ifaceCanReach != "" {
		tries = append(tries, try{canReach: o.ifaceCanReach})
	}
	for _, t := range tries {
		ext, err := ipmatch.LookupExtIface(t.name, t.regex, t.canReach, stack, pub)
		if err == nil && ext != nil {
			return ext, nil
		}
		klog.InfoS("interface does not match", "iface", t.name, "regex", t.regex, "canReach", t.canReach, "err", err)
	}
	return nil, errors.New("no interface matches --iface, --iface-regex or --iface-can-reach")
}

func trafficManager(nft bool) trafficmngr.TrafficManager {
	if nft {
		return &nftables.NFTablesManager{}
	}
	return &iptables.IPTablesManager{}
}

// serveHealth serves /healthz (the process runs) and /readyz (the subnet file is written
// and the rules are in place) until ctx ends.
func serveHealth(ctx context.Context, wg *sync.WaitGroup, addr string, ready *atomic.Bool) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "flanneld is running")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "flanneld is not ready yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "flanneld is ready")
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	wg.Add(2)
	go func() {
		defer wg.Done()
		klog.InfoS("serving health checks", "addr", addr)
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			klog.ErrorS(err, "health server")
		}
	}()
	go func() {
		defer wg.Done()
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
}

// subnetFile holds the KEY=VALUE lines of a previous run's subnet file.
type subnetFile map[string]string

func readSubnetFile(path string) subnetFile {
	out := subnetFile{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok {
			out[k] = v
		}
	}
	return out
}

// ip4 is the IPv4 network under key, or the zero network.
func (s subnetFile) ip4(key string) ip.IP4Net {
	if _, n, err := net.ParseCIDR(s[key]); err == nil && n.IP.To4() != nil {
		return ip.FromIPNet(n)
	}
	return ip.IP4Net{}
}

// ip6 is the IPv6 network under key, or the zero network.
func (s subnetFile) ip6(key string) ip.IP6Net {
	if _, n, err := net.ParseCIDR(s[key]); err == nil && n.IP.To4() == nil {
		return ip.FromIP6Net(n)
	}
	return ip.IP6Net{IP: (*ip.IP6)(big.NewInt(0))}
}

// flagsFromEnv sets every flag not given on the command line from FLANNELD_<NAME>, the
// name in upper case with dashes as underscores.
func flagsFromEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		key := "FLANNELD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := lookup(key); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", key, v, err))
			}
		}
	})
	return errors.Join(errs...)
}
