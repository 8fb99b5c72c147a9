package preflight

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/http/httpproxy"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/version"
	"sigs.k8s.io/yaml"

	"github.com/kforge/kforge/config"
)

// The annotation that marks a static pod manifest as written by kforge. A manifest that
// carries it belongs to an earlier kforge run, so a re-run of init passes the checks on
// that component's file and ports.
const (
	ManagedByAnnotation = "kforge.io/managed-by"
	ManagedByValue      = "kforge"
)

// Paths InitParams defaults to.
const (
	DefaultManifestsDir      = "/etc/kubernetes/manifests"
	DefaultKubeconfigDir     = "/etc/kubernetes"
	DefaultKubeletConfigPath = "/var/lib/kubelet/config.yaml"
)

// Minimum resources of a control-plane host.
const (
	MinCPUs      = 2
	MinMemoryMiB = 1700
)

// Time limits of the checks that wait on something.
const (
	dialTimeout    = 5 * time.Second
	lookupTimeout  = 5 * time.Second
	commandTimeout = 10 * time.Second
)

// maxKubeletSkew is how many minor releases the kubelet may lag the control plane.
const maxKubeletSkew = 3

// Static pod and component names.
const (
	kubeAPIServer         = "kube-apiserver"
	kubeControllerManager = "kube-controller-manager"
	kubeScheduler         = "kube-scheduler"
	etcd                  = "etcd"
	kubelet               = "kubelet"
)

// InitParams is what the init checks need to know about the node being set up.
type InitParams struct {
	// Cluster is the loaded, defaulted and validated config; nil means config.Default().
	Cluster *config.Cluster
	// NodeName is the name the node registers as.
	NodeName string
	// AdvertiseAddress is the address the apiserver advertises on this host.
	AdvertiseAddress string
	// ManifestsDir holds the static pod manifests; default DefaultManifestsDir.
	ManifestsDir string
	// KubeconfigDir holds admin.conf, kubelet.conf, ...; default DefaultKubeconfigDir.
	KubeconfigDir string
	// KubeletConfigPath is the KubeletConfiguration file; default DefaultKubeletConfigPath.
	KubeletConfigPath string
	// System is the host to check; nil means LocalSystem().
	System System
	// BundleBinaries names binaries an air-gap bundle installs after preflight (join checks
	// before it installs anything): their FileExisting checks pass, and the kubelet's
	// version is the bundle's.
	BundleBinaries []string
}

func (p InitParams) withDefaults() InitParams {
	if p.Cluster == nil {
		p.Cluster = config.Default()
	}
	if p.ManifestsDir == "" {
		p.ManifestsDir = DefaultManifestsDir
	}
	if p.KubeconfigDir == "" {
		p.KubeconfigDir = DefaultKubeconfigDir
	}
	if p.KubeletConfigPath == "" {
		p.KubeletConfigPath = DefaultKubeletConfigPath
	}
	if p.System == nil {
		p.System = LocalSystem()
	}
	return p
}

// binary is a program the node needs on PATH.
type binary struct {
	name     string
	required bool   // missing is an error, else a warning
	pkg      string // the Debian package that ships it
}

var nodeBinaries = []binary{
	{name: kubelet, required: true},
	{name: "conntrack", pkg: "conntrack"},
	{name: "iptables", pkg: "iptables"},
	{name: "ip", pkg: "iproute2"},
	{name: "mount", pkg: "mount"},
	{name: "nsenter", pkg: "util-linux"},
}

// port is a TCP port a component of the node will listen on.
type port struct {
	number    int
	component string
}

// ports returns the ports init needs free, in check order.
func (p InitParams) ports() []port {
	c := p.Cluster
	ps := []port{
		{securePort(c.APIServer.ExtraArgs, config.DefaultAPIServerPort), kubeAPIServer},
		{securePort(c.Scheduler.ExtraArgs, 10259), kubeScheduler},
		{securePort(c.ControllerManager.ExtraArgs, 10257), kubeControllerManager},
		{10250, kubelet},
	}
	if c.Etcd.Local != nil {
		ps = append(ps, port{2379, etcd}, port{2380, etcd})
	}
	return ps
}

// securePort is the --secure-port in a component's extra args, else def.
func securePort(extraArgs map[string]string, def int) int {
	if n, err := strconv.Atoi(extraArgs["secure-port"]); err == nil && n > 0 && n < 65536 {
		return n
	}
	return def
}

// staticPods returns the components init writes manifests for, in check order.
func (p InitParams) staticPods() []string {
	pods := []string{kubeAPIServer, kubeControllerManager, kubeScheduler}
	if p.Cluster.Etcd.Local != nil {
		pods = append(pods, etcd)
	}
	return pods
}

func (p InitParams) manifestPath(component string) string {
	return filepath.Join(p.ManifestsDir, component+".yaml")
}

// InitChecks returns the checks of `kforge init` on the first control-plane host, in a
// stable order.
func InitChecks(p InitParams) []Checker {
	p = p.withDefaults()
	sys, c := p.System, p.Cluster
	checks := []Checker{
		check{"IsPrivilegedUser", p.checkPrivileged},
		check{"NumCPU", p.checkCPU},
		check{"Mem", p.checkMem},
		check{"SystemVerification", systemVerification(sys, c)},
		check{"Swap", p.checkSwap},
		fileContent(sys, "/proc/sys/net/ipv4/ip_forward", "1", "net.ipv4.ip_forward"),
	}
	checks = append(checks, p.binaryChecks()...)
	for _, pt := range p.ports() {
		checks = append(checks, p.portCheck(pt))
	}
	for _, comp := range p.staticPods() {
		checks = append(checks, p.fileAvailable(comp))
	}
	if c.Etcd.Local != nil {
		checks = append(checks, p.etcdDirAvailable(c.Etcd.Local.DataDir))
	}
	checks = append(checks,
		check{"Hostname", p.checkHostname},
		check{"HTTPProxy", p.checkHTTPProxy},
	)
	return checks
}

// binaryChecks are the FileExisting checks, KubeletVersion and ContainerRuntime.
func (p InitParams) binaryChecks() []Checker {
	var checks []Checker
	for _, b := range p.nodeBinaries() {
		checks = append(checks, fileExisting(p.System, b, p.Cluster.KubernetesVersion))
	}
	if !slices.Contains(p.BundleBinaries, kubelet) {
		checks = append(checks, check{"KubeletVersion", p.checkKubeletVersion})
	}
	return append(checks, check{"ContainerRuntime", p.checkContainerRuntime})
}

// nodeBinaries are the binaries to look for: those the bundle does not bring.
func (p InitParams) nodeBinaries() []binary {
	var out []binary
	for _, b := range nodeBinaries {
		if !slices.Contains(p.BundleBinaries, b.name) {
			out = append(out, b)
		}
	}
	return out
}

// JoinChecks returns the checks of `kforge join`. A control-plane join checks what init
// checks; a worker join skips the control plane's ports, manifests, etcd directory and
// resource minimums.
func JoinChecks(p InitParams, controlPlane bool) []Checker {
	p = p.withDefaults()
	if controlPlane {
		return InitChecks(p)
	}
	checks := []Checker{
		check{"IsPrivilegedUser", p.checkPrivileged},
		check{"SystemVerification", systemVerification(p.System, p.Cluster)},
		check{"Swap", p.checkSwap},
		fileContent(p.System, "/proc/sys/net/ipv4/ip_forward", "1", "net.ipv4.ip_forward"),
	}
	checks = append(checks, p.binaryChecks()...)
	checks = append(checks,
		p.portCheck(port{10250, kubelet}),
		check{"Hostname", p.checkHostname},
		check{"HTTPProxy", p.checkHTTPProxy},
	)
	return checks
}

// proxyAddress returns the host:port of a proxy setting, which may lack its scheme
// ("proxy:3128"), and whether it is a usable URL.
func proxyAddress(value string) (string, bool) {
	u, err := url.Parse(value)
	if (err != nil || u.Scheme == "" || u.Host == "") && !strings.Contains(value, "://") {
		u, err = url.Parse("http://" + value)
	}
	if err != nil || u.Host == "" {
		return "", false
	}
	switch u.Scheme {
	case "http", "https", "socks5", "socks5h":
		return u.Host, true
	}
	return "", false
}

// dashed turns a path into the form check names use: "/var/lib/etcd" is "-var-lib-etcd".
func dashed(path string) string { return strings.ReplaceAll(path, "/", "-") }

func (p InitParams) checkPrivileged(context.Context) (warnings, errs []error) {
	if uid := p.System.Euid(); uid != 0 {
		return fail(fmt.Errorf("kforge init and join must run as root, not as user id %d: run it with sudo or as root", uid))
	}
	return nil, nil
}

func (p InitParams) checkCPU(context.Context) (warnings, errs []error) {
	if n := p.System.NumCPU(); n < MinCPUs {
		return fail(fmt.Errorf("the host has %d CPU, a control-plane host needs at least %d: give it more CPUs", n, MinCPUs))
	}
	return nil, nil
}

func (p InitParams) checkMem(context.Context) (warnings, errs []error) {
	const path = "/proc/meminfo"
	b, err := p.System.ReadFile(path)
	if err != nil {
		return fail(fmt.Errorf("reading %s: %w", path, err))
	}
	kib, err := meminfoValue(string(b), "MemTotal")
	if err != nil {
		return fail(fmt.Errorf("reading %s: %w", path, err))
	}
	if mib := kib / 1024; mib < MinMemoryMiB {
		return fail(fmt.Errorf("the host has %d MiB of memory, a control-plane host needs at least %d MiB: give it more memory", mib, MinMemoryMiB))
	}
	return nil, nil
}

// meminfoValue returns a "Key:   1234 kB" value of /proc/meminfo, in KiB.
func meminfoValue(meminfo, key string) (int64, error) {
	for line := range strings.Lines(meminfo) {
		v, ok := strings.CutPrefix(line, key+":")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parsing %s %q: %w", key, strings.TrimSpace(v), err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("no %s line", key)
}

func (p InitParams) checkSwap(context.Context) (warnings, errs []error) {
	const path = "/proc/swaps"
	b, err := p.System.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // a kernel without swap support
	}
	if err != nil {
		return fail(fmt.Errorf("reading %s: %w", path, err))
	}
	// The first line is a header; each further one is an active swap device or file.
	var devices []string
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(line); i > 0 && len(f) > 0 {
			devices = append(devices, f[0])
		}
	}
	if len(devices) == 0 {
		return nil, nil
	}
	on := strings.Join(devices, ", ")
	if fso := p.Cluster.Kubelet.FailSwapOn; fso == nil || *fso {
		return fail(fmt.Errorf("swap is on (%s) and the kubelet refuses to start with swap: run 'swapoff -a' and remove swap from /etc/fstab, or set kubelet.fail_swap_on = false in cluster.toml", on))
	}
	return warn(fmt.Errorf("swap is on (%s); kubelet.fail_swap_on is false, so the kubelet starts anyway, and pods use no swap unless the kubelet's memorySwap settings allow it", on))
}

// fileContent checks that a /proc/sys file holds want, which sysctl key sets.
func fileContent(sys System, path, want, key string) Checker {
	return check{"FileContent-" + dashed(path), func(context.Context) (warnings, errs []error) {
		b, err := sys.ReadFile(path)
		if err != nil {
			return fail(fmt.Errorf("reading %s: %w", path, err))
		}
		if got := strings.TrimSpace(string(b)); got != want {
			// kforge sets these itself in the container-runtime phase.
			return []error{fmt.Errorf("%s is %q, not %q: kforge will run 'sysctl -w %s=%s' and persist it in /etc/sysctl.d/99-kforge.conf", path, got, want, key, want)}, nil
		}
		return nil, nil
	}}
}

func fileExisting(sys System, b binary, k8sVersion string) Checker {
	return check{"FileExisting-" + b.name, func(context.Context) (warnings, errs []error) {
		_, err := sys.LookPath(b.name)
		if err == nil {
			return nil, nil
		}
		if !errors.Is(err, exec.ErrNotFound) {
			// Found but unusable, e.g. not executable: the cause says more than we can.
			err = fmt.Errorf("looking for %s in PATH: %w", b.name, err)
		} else if b.required {
			err = fmt.Errorf("%s is not in PATH: install the %s %s binary, e.g. in /usr/local/bin", b.name, b.name, k8sVersion)
		} else {
			err = fmt.Errorf("%s is not in PATH: install it (Debian package %q); the node's network and storage components expect it", b.name, b.pkg)
		}
		if b.required {
			return fail(err)
		}
		return warn(err)
	}}
}

func (p InitParams) checkKubeletVersion(ctx context.Context) (warnings, errs []error) {
	want, err := version.ParseGeneric(p.Cluster.KubernetesVersion)
	if err != nil {
		return fail(fmt.Errorf("kubernetes_version %q: %w", p.Cluster.KubernetesVersion, err))
	}
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	out, err := p.System.Output(ctx, kubelet, "--version")
	if errors.Is(err, exec.ErrNotFound) {
		return nil, nil // FileExisting-kubelet reports it
	}
	if err != nil {
		return fail(fmt.Errorf("running kubelet --version: %w; check that the kubelet binary on PATH works", err))
	}
	got, err := parseKubeletVersion(string(out))
	if err != nil {
		return fail(err)
	}
	fix := fmt.Sprintf("install kubelet v%d.%d.x to match kubernetes_version %s", want.Major(), want.Minor(), p.Cluster.KubernetesVersion)
	switch {
	case got.Major() != want.Major():
		return fail(fmt.Errorf("the kubelet reports version %s, not a v%d release (a kubelet built without version information reports v0.0.0): %s", got, want.Major(), fix))
	case got.Minor() > want.Minor():
		return fail(fmt.Errorf("the kubelet is %s, newer than the control plane's %s, and a kubelet may not be newer than its apiserver: %s", got, p.Cluster.KubernetesVersion, fix))
	case got.Minor()+maxKubeletSkew < want.Minor():
		return fail(fmt.Errorf("the kubelet is %s, more than %d minor releases older than the control plane's %s: %s", got, maxKubeletSkew, p.Cluster.KubernetesVersion, fix))
	}
	return nil, nil
}

// parseKubeletVersion reads the output of `kubelet --version`, "Kubernetes v1.34.4".
func parseKubeletVersion(out string) (*version.Version, error) {
	s, ok := strings.CutPrefix(strings.TrimSpace(out), "Kubernetes ")
	if ok {
		if v, err := version.ParseGeneric(s); err == nil {
			return v, nil
		}
	}
	return nil, fmt.Errorf("cannot read the version in the output of kubelet --version, %q (want \"Kubernetes vX.Y.Z\"): check the kubelet binary on PATH", strings.TrimSpace(out))
}

func (p InitParams) checkContainerRuntime(ctx context.Context) (warnings, errs []error) {
	ep := p.Cluster.Kubelet.ContainerRuntimeEndpoint
	path, err := unixSocketPath(ep)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if err := p.System.DialUnix(ctx, path); err != nil {
		return fail(fmt.Errorf("no container runtime answers on %s (kubelet.container_runtime_endpoint): start containerd, or the runtime that should listen there, and run again: %w", path, err))
	}
	return nil, nil
}

// unixSocketPath returns the socket path of a CRI endpoint, "unix:///run/x.sock" or
// "/run/x.sock".
func unixSocketPath(endpoint string) (string, error) {
	if strings.HasPrefix(endpoint, "/") {
		return endpoint, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", fmt.Errorf("kubelet.container_runtime_endpoint %q: %w", endpoint, err)
	}
	if u.Scheme != "unix" || u.Path == "" {
		return "", fmt.Errorf("kubelet.container_runtime_endpoint %q is not a unix socket: use unix:///path/to/socket", endpoint)
	}
	return u.Path, nil
}

// owned reports whether component already runs from an earlier kforge run on this host,
// so that its port being busy is expected.
func (p InitParams) owned(component string) bool {
	if component == kubelet {
		// The kubelet has no manifest. kubelet-start writes its config and kforge writes
		// kubelet.conf; both present means an earlier run started it.
		_, errConfig := p.System.ReadFile(p.KubeletConfigPath)
		_, errConf := p.System.ReadFile(filepath.Join(p.KubeconfigDir, "kubelet.conf"))
		return errConfig == nil && errConf == nil
	}
	exists, why := manifestOwnership(p.System, p.manifestPath(component))
	return exists && why == nil
}

// manifestOwnership reports whether a file exists at path and, if it does, why it is not
// a pod manifest written by kforge (nil when it is one).
func manifestOwnership(sys System, path string) (exists bool, why error) {
	b, err := sys.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return true, fmt.Errorf("cannot read it: %w", err)
	}
	var pod struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(b, &pod); err != nil {
		return true, fmt.Errorf("it does not parse: %w", err)
	}
	if pod.Kind != "Pod" {
		return true, errors.New("it is not a Pod")
	}
	if v := pod.Metadata.Annotations[ManagedByAnnotation]; v != ManagedByValue {
		return true, fmt.Errorf("it lacks the annotation %s: %s", ManagedByAnnotation, ManagedByValue)
	}
	return true, nil
}

func (p InitParams) portCheck(pt port) Checker {
	return check{"Port-" + strconv.Itoa(pt.number), func(ctx context.Context) (warnings, errs []error) {
		err := p.System.Listen(ctx, ":"+strconv.Itoa(pt.number))
		if err == nil {
			return nil, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return fail(fmt.Errorf("checking that port %d (%s) is free: %w", pt.number, pt.component, err))
		}
		if p.owned(pt.component) {
			return nil, nil // our own component, from an earlier run
		}
		by := ""
		if owner := portOwner(p.System, pt.number); owner != "" {
			by = " by " + owner
		}
		return fail(fmt.Errorf("port %d, which %s needs, is in use%s: stop what holds it, or run 'kforge reset' if an earlier install left it running", pt.number, pt.component, by))
	}}
}

func (p InitParams) fileAvailable(component string) Checker {
	path := p.manifestPath(component)
	return check{"FileAvailable-" + dashed(path), func(context.Context) (warnings, errs []error) {
		exists, why := manifestOwnership(p.System, path)
		if !exists || why == nil {
			return nil, nil // free, or ours from an earlier run
		}
		return fail(fmt.Errorf("%s already exists and kforge did not write it (%w): another installer set up this host; run 'kforge reset' (or that installer's reset), or remove the file", path, why))
	}}
}

func (p InitParams) etcdDirAvailable(dir string) Checker {
	return check{"DirAvailable-" + dashed(dir), func(context.Context) (warnings, errs []error) {
		names, err := p.System.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return fail(fmt.Errorf("reading %s: %w", dir, err))
		}
		if len(names) == 0 || p.owned(etcd) {
			return nil, nil
		}
		return fail(fmt.Errorf("%s is not empty and there is no kforge etcd manifest at %s, so it holds another etcd's data: run 'kforge reset', or move the directory away to keep it", dir, p.manifestPath(etcd)))
	}}
}

func (p InitParams) checkHostname(ctx context.Context) (warnings, errs []error) {
	name := p.NodeName
	if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
		return fail(fmt.Errorf("node name %q is not a valid Kubernetes node name (%s): name the host with lower-case letters, digits, '-' and '.' in cluster.toml", name, strings.Join(msgs, "; ")))
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	if _, err := p.System.LookupHost(ctx, name); err != nil {
		return warn(fmt.Errorf("node name %q does not resolve: add it to /etc/hosts or DNS, so that tools which address the node by name reach it: %w", name, err))
	}
	return nil, nil
}

func (p InitParams) checkHTTPProxy(context.Context) (warnings, errs []error) {
	getenv := func(keys ...string) (string, string) {
		for _, k := range keys {
			if v := p.System.Getenv(k); v != "" {
				return k, v
			}
		}
		return "", ""
	}
	proxyVar, proxyValue := getenv("HTTPS_PROXY", "https_proxy")
	if proxyValue == "" {
		return nil, nil
	}
	proxyHost, ok := proxyAddress(proxyValue)
	if !ok {
		// Never print the value: it may hold a password.
		return warn(fmt.Errorf("%s is not a valid proxy URL, and Go programs such as kubectl fail on it: fix or unset it", proxyVar))
	}
	_, noProxy := getenv("NO_PROXY", "no_proxy")
	proxyFor := (&httpproxy.Config{HTTPSProxy: proxyValue, NoProxy: noProxy}).ProxyFunc()

	host, epPort := p.Cluster.Endpoint()
	targets := []string{net.JoinHostPort(host, strconv.Itoa(epPort))}
	if a := p.AdvertiseAddress; net.ParseIP(a) != nil && a != host {
		targets = append(targets, net.JoinHostPort(a, strconv.Itoa(securePort(p.Cluster.APIServer.ExtraArgs, config.DefaultAPIServerPort))))
	}
	for _, t := range targets {
		h, _, _ := net.SplitHostPort(t)
		if h == "" {
			continue
		}
		if proxy, err := proxyFor(&url.URL{Scheme: "https", Host: t}); err == nil && proxy != nil {
			warnings = append(warnings, fmt.Errorf("%s is set (proxy %s) and %s is not in NO_PROXY, so connections to the apiserver at %s go through the proxy: add %s to NO_PROXY",
				proxyVar, proxyHost, h, t, h))
		}
	}
	return warnings, nil
}

// ReconfigureChecks returns the checks of `kforge reconfigure`: the host is already a
// member of the cluster, as the file says. A worker's kubelet runs from kforge's files;
// a control-plane host's static pods are kforge's, so rewriting them takes nothing over.
func ReconfigureChecks(p InitParams, controlPlane bool) []Checker {
	p = p.withDefaults()
	checks := []Checker{
		check{"IsPrivilegedUser", p.checkPrivileged},
		check{"Member", func(context.Context) (warnings, errs []error) {
			if !p.owned(kubelet) {
				return fail(fmt.Errorf("this host has not joined the cluster (no %s beside %s): kforge up joins it, or run kforge join (init on the first control-plane host)",
					filepath.Join(p.KubeconfigDir, "kubelet.conf"), p.KubeletConfigPath))
			}
			return nil, nil
		}},
	}
	if !controlPlane {
		return checks
	}
	for _, component := range p.staticPods() {
		path := p.manifestPath(component)
		checks = append(checks, check{"ControlPlaneMember-" + component, func(context.Context) (warnings, errs []error) {
			exists, why := manifestOwnership(p.System, path)
			switch {
			case !exists:
				return fail(fmt.Errorf("%s is missing: the file makes this host a control-plane host, but it is not a control-plane member; "+
					"kforge up joins it as one (kforge reset on it first if it is a worker now)", path))
			case why != nil:
				return fail(fmt.Errorf("%s was not written by kforge (%w): reconfiguring it would take over another installer's control plane; "+
					"change that installer's configuration instead", path, why))
			}
			return nil, nil
		}})
	}
	return checks
}
