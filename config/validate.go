package config

import (
	"fmt"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// ValidationError lists every unacceptable value in a cluster config.
type ValidationError struct {
	// File is the config file's name; empty when the Cluster did not come from Decode.
	File   string
	Errors []FieldError
}

// FieldError is one unacceptable value.
type FieldError struct {
	// Path is the dotted key path, as written in cluster.toml: "hosts[1].address".
	Path string
	// Line is where the key is written in File; 0 when unknown (the value was defaulted, or
	// the Cluster did not come from a file).
	Line int
	// Message says what is wrong and what would be valid.
	Message string
}

// Error lists the problems one per line as FILE:LINE: PATH: message, leaving out the file
// and line when they are unknown; at most MaxReported of them, then how many more there are.
func (e *ValidationError) Error() string {
	var b strings.Builder
	for i, fe := range e.Errors {
		if i > 0 {
			b.WriteByte('\n')
		}
		if i == MaxReported {
			b.WriteString(position(e.File, 0, 0))
			b.WriteString(moreLine(len(e.Errors) - i))
			break
		}
		b.WriteString(position(e.File, fe.Line, 0))
		b.WriteString(clip(fe.Path))
		b.WriteString(": ")
		b.WriteString(fe.Message)
	}
	return b.String()
}

// Validate checks a defaulted Cluster and reports every problem at once as a
// *ValidationError. Run SetDefaults first: unset fields are errors here.
func (c *Cluster) Validate() error {
	if ps := c.validate(); len(ps) > 0 {
		return ps.toError("", nil)
	}
	return nil
}

// fieldProblem is a FieldError before its line is known.
type fieldProblem struct {
	path string
	// anchor is the key whose line to report when path itself is not in the file: the
	// enclosing table for a missing key, the key a default was copied from.
	anchor string
	msg    string
}

type problemList []fieldProblem

// add records a problem at path. String arguments are clipped: a message quotes at most
// the start of a long value.
func (l *problemList) add(path, format string, args ...any) {
	*l = append(*l, fieldProblem{path: path, msg: fmt.Sprintf(format, clipArgs(format, args)...)})
}

func (l *problemList) addAt(path, anchor, format string, args ...any) {
	*l = append(*l, fieldProblem{path: path, anchor: anchor, msg: fmt.Sprintf(format, clipArgs(format, args)...)})
}

func (l problemList) toError(file string, idx *docIndex) *ValidationError {
	e := &ValidationError{File: file}
	for _, p := range l {
		line := idx.line(p.path)
		if line == 0 && p.anchor != "" {
			line = idx.line(p.anchor)
		}
		e.Errors = append(e.Errors, FieldError{Path: p.path, Line: line, Message: p.msg})
	}
	return e
}

// HostPathTypes lists the accepted extra_volumes path_type values: corev1.HostPathType.
var HostPathTypes = []string{"", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice"}

// KubeProxyModes lists the accepted addons.kube_proxy.mode values.
var KubeProxyModes = []string{"iptables", "ipvs", "nftables"}

// Accepted values of the enumerated fields.
var (
	cgroupDrivers   = []string{"", "cgroupfs", "systemd"}
	cniPlugins      = []string{CNIFlannel, CNINone}
	flannelBackends = []string{"vxlan", "host-gw"}
	roles           = []string{RoleControlPlane, RoleWorker}
	taintEffects    = []string{"NoSchedule", "PreferNoSchedule", "NoExecute"}
	// reservedResources are the resources the kubelet accepts in system_reserved and
	// kube_reserved.
	reservedResources = []string{"cpu", "memory", "ephemeral-storage", "pid"}
	// evictionSignals are the kubelet's eviction signals.
	evictionSignals = []string{
		"memory.available", "nodefs.available", "nodefs.inodesFree", "imagefs.available",
		"imagefs.inodesFree", "containerfs.available", "containerfs.inodesFree",
		"pid.available", "allocatableMemory.available",
	}
)

var releaseVersion = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$`)

func (c *Cluster) validate() problemList {
	var l problemList
	if c.Version != APIVersion {
		l.add("version", "%q is not supported; want %q", c.Version, APIVersion)
	}
	if len(validation.IsDNS1123Label(c.Name)) > 0 {
		l.add("name", "%q is not a DNS label; want lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters, such as %q", c.Name, DefaultClusterName)
	}
	c.validateVersion(&l)
	if ep := c.ControlPlaneEndpoint; ep != "" {
		if msg := checkHostPort(ep, true); msg != "" {
			l.add("control_plane_endpoint", "%q %s; want a DNS name or IP with an optional port, such as \"lb.example.com:6443\"", ep, msg)
		}
	}
	if msg := checkImageRepository(c.ImageRepository); msg != "" {
		l.add("image_repository", "%q %s; want a registry host and optional path without a scheme or tag, such as \"registry.example.com/k8s\"", c.ImageRepository, msg)
	}
	c.validateNetworking(&l)
	c.validateEtcd(&l)
	c.validateCertificates(&l)

	validateExtraArgs(&l, "apiserver.extra_args", c.APIServer.ExtraArgs, false)
	validateExtraVolumes(&l, "apiserver.extra_volumes", c.APIServer.ExtraVolumes)
	validateSANs(&l, "apiserver.cert_sans", c.APIServer.CertSANs)
	validateExtraArgs(&l, "controller_manager.extra_args", c.ControllerManager.ExtraArgs, false)
	validateExtraVolumes(&l, "controller_manager.extra_volumes", c.ControllerManager.ExtraVolumes)
	validateExtraArgs(&l, "scheduler.extra_args", c.Scheduler.ExtraArgs, false)
	validateExtraVolumes(&l, "scheduler.extra_volumes", c.Scheduler.ExtraVolumes)

	c.validateKubelet(&l)
	c.validateAddons(&l)
	c.validateSecurity(&l)
	c.validateHosts(&l)
	return l
}

func (c *Cluster) validateVersion(l *problemList) {
	v := c.KubernetesVersion
	if !releaseVersion.MatchString(v) {
		l.add("kubernetes_version", "%q is not a release version; want vMAJOR.MINOR.PATCH such as %q", v, DefaultKubernetesVersion)
		return
	}
	supported := SupportedMinors()
	if !slices.Contains(supported, c.KubernetesMinor()) {
		var names []string
		for _, m := range supported {
			names = append(names, fmt.Sprintf("v1.%d", m))
		}
		l.add("kubernetes_version", "%q is not supported by this build; want a patch release of %s", v, orList(names))
	}
}

func (c *Cluster) validateNetworking(l *problemList) {
	n := c.Networking
	pod, podOK := checkCIDR(l, "networking.pod_cidr", n.PodCIDR, DefaultPodCIDR)
	svc, svcOK := checkCIDR(l, "networking.service_cidr", n.ServiceCIDR, DefaultServiceCIDR)

	if svcOK {
		bits := svc.Bits()
		switch {
		case svc.Addr().Is4() && bits > 28, svc.Addr().Is6() && bits > 124:
			l.add("networking.service_cidr", "%q is too small: the DNS service takes its 10th address; want a prefix of /%d or shorter", n.ServiceCIDR, maxPrefix(svc, 28, 124))
		case svc.Addr().Is4() && bits < 12, svc.Addr().Is6() && bits < 108:
			l.add("networking.service_cidr", "%q is too large: kube-apiserver accepts at most 2^20 service addresses; want a prefix of /%d or longer", n.ServiceCIDR, maxPrefix(svc, 12, 108))
		}
	}
	if podOK && svcOK {
		switch {
		case pod.Addr().Is4() != svc.Addr().Is4():
			l.add("networking.service_cidr", "%q is %s but networking.pod_cidr %q is %s; want both from the same IP family", n.ServiceCIDR, family(svc), n.PodCIDR, family(pod))
		case pod.Overlaps(svc):
			l.add("networking.service_cidr", "%q overlaps networking.pod_cidr %q; want ranges that do not overlap", n.ServiceCIDR, n.PodCIDR)
		}
	}
	if podOK && !c.setsNodeCIDRMask() {
		// kube-controller-manager (and flannel) hand each node a /24 (IPv4) or /64 (IPv6) of
		// the pod range, and refuse a pod range more than 16 bits larger than that.
		nodeBits := 24
		if pod.Addr().Is6() {
			nodeBits = 64
		}
		switch bits := pod.Bits(); {
		case bits > nodeBits:
			l.add("networking.pod_cidr", "%q is too small to give each node a /%d; want a prefix of /%d or shorter", n.PodCIDR, nodeBits, nodeBits)
		case nodeBits-bits > 16:
			l.add("networking.pod_cidr", "%q is too large: kube-controller-manager splits it into /%d node ranges and allows at most 2^16 of them; want a prefix of /%d or longer", n.PodCIDR, nodeBits, nodeBits-16)
		case nodeBits-bits < 16 && len(c.Hosts) > 1<<(nodeBits-bits):
			l.add("networking.pod_cidr", "%q has room for %d node ranges of /%d but %d hosts are listed; want a shorter prefix", n.PodCIDR, 1<<(nodeBits-bits), nodeBits, len(c.Hosts))
		}
	}
	if len(validation.IsDNS1123Subdomain(n.DNSDomain)) > 0 {
		l.add("networking.dns_domain", "%q is not a DNS domain; want a lowercase DNS name such as %q", n.DNSDomain, DefaultDNSDomain)
	}
}

// setsNodeCIDRMask reports whether the controller-manager's node range size is overridden,
// which voids kforge's assumptions about it.
func (c *Cluster) setsNodeCIDRMask() bool {
	for k := range c.ControllerManager.ExtraArgs {
		if strings.HasPrefix(strings.TrimLeft(k, "-"), "node-cidr-mask-size") {
			return true
		}
	}
	return false
}

func maxPrefix(p netip.Prefix, v4, v6 int) int {
	if p.Addr().Is4() {
		return v4
	}
	return v6
}

func family(p netip.Prefix) string {
	if p.Addr().Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// checkCIDR parses a CIDR, reporting it at path when it is not one in canonical form.
func checkCIDR(l *problemList, at, s, example string) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		l.add(at, "%q is not a CIDR; want an address and prefix such as %q", s, example)
		return netip.Prefix{}, false
	}
	if p.Addr().Is4In6() {
		l.add(at, "%q is an IPv4-mapped IPv6 range; want a plain IPv4 or IPv6 CIDR such as %q", s, example)
		return netip.Prefix{}, false
	}
	if m := p.Masked(); m != p {
		l.add(at, "%q has host bits set; want the network address, %q", s, m.String())
		return netip.Prefix{}, false
	}
	return p, true
}

func (c *Cluster) validateEtcd(l *problemList) {
	e := c.Etcd
	switch {
	case e.Local != nil && e.External != nil:
		l.addAt("etcd", "etcd.external", "both etcd.local and etcd.external are set; want exactly one of them")
	case e.Local == nil && e.External == nil:
		l.add("etcd", "neither etcd.local nor etcd.external is set; want exactly one of them")
	}
	if e.Local != nil {
		if msg := DirProblem(e.Local.DataDir, DefaultEtcdDataDir); msg != "" {
			l.addAt("etcd.local.data_dir", "etcd.local", "%s", msg)
		}
		validateExtraArgs(l, "etcd.local.extra_args", e.Local.ExtraArgs, false)
		validateSANs(l, "etcd.local.server_cert_sans", e.Local.ServerCertSANs)
		validateSANs(l, "etcd.local.peer_cert_sans", e.Local.PeerCertSANs)
	}
	if x := e.External; x != nil {
		if len(x.Endpoints) == 0 {
			l.addAt("etcd.external.endpoints", "etcd.external", "is empty; want at least one etcd client URL such as \"https://10.0.0.5:2379\"")
		}
		for i, ep := range x.Endpoints {
			if msg := checkEtcdURL(ep); msg != "" {
				l.add(fmt.Sprintf("etcd.external.endpoints[%d]", i), "%q %s; want an https://host:port URL such as \"https://10.0.0.5:2379\"", ep, msg)
			}
		}
		for _, f := range []struct{ key, val, what string }{
			{"ca_file", x.CAFile, "the CA certificate that signed the etcd servers' certificates"},
			{"cert_file", x.CertFile, "the client certificate the apiserver presents to etcd"},
			{"key_file", x.KeyFile, "the client certificate's private key"},
		} {
			if f.val == "" {
				l.addAt("etcd.external."+f.key, "etcd.external", "is missing; want the path of %s", f.what)
			}
		}
	}
}

// checkEtcdURL returns what is wrong with an etcd client URL, or "".
func checkEtcdURL(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "is not a URL"
	case u.Scheme != "https":
		return "does not use https"
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/"):
		return "has more than scheme, host and port"
	case u.Port() == "":
		return "has no port"
	}
	if msg := checkHostPort(u.Host, false); msg != "" {
		return msg
	}
	return ""
}

func (c *Cluster) validateCertificates(l *problemList) {
	cc := c.Certificates
	if cc.CAValidity.Duration <= 0 {
		l.add("certificates.ca_validity", "%s is not positive; want a lifetime such as \"10y\"", fmtDuration(cc.CAValidity))
	}
	if cc.CertValidity.Duration <= 0 {
		l.add("certificates.cert_validity", "%s is not positive; want a lifetime such as \"365d\"", fmtDuration(cc.CertValidity))
	}
	if cc.CAValidity.Duration > 0 && cc.CertValidity.Duration > cc.CAValidity.Duration {
		l.add("certificates.cert_validity", "%s is longer than certificates.ca_validity %s; want at most the CAs' lifetime", fmtDuration(cc.CertValidity), fmtDuration(cc.CAValidity))
	}
	if rb := cc.RenewBefore; rb != nil {
		switch {
		case rb.Duration < 0:
			l.add("certificates.renew_before", "%s is negative; want a duration shorter than certificates.cert_validity, such as \"30d\", or \"0s\" to turn automatic renewal off", fmtDuration(*rb))
		case cc.CertValidity.Duration > 0 && rb.Duration >= cc.CertValidity.Duration:
			l.add("certificates.renew_before", "%s is not shorter than certificates.cert_validity %s: every certificate would be due as soon as it is renewed; want less than cert_validity, such as a twelfth of it, or \"0s\" to turn automatic renewal off", fmtDuration(*rb), fmtDuration(cc.CertValidity))
		}
	}
	if !slices.Contains(KeyAlgorithms, cc.KeyAlgorithm) {
		l.add("certificates.key_algorithm", "%q is not supported; want %s", cc.KeyAlgorithm, orList(quoteAll(KeyAlgorithms)))
	}
}

func fmtDuration(d Duration) string {
	b, _ := d.MarshalText()
	return strconv.Quote(string(b))
}

// validateExtraArgs checks extra_args: each key is a flag name written without dashes and
// each value is one flag's value, so that "key = value" is exactly one argument
// "--key=value". envFile says the flags are written to kubeadm-flags.env (the kubelet's),
// whose values must also survive the service manager's word splitting (FlagValueProblem).
func validateExtraArgs(l *problemList, at string, args map[string]string, envFile bool) {
	for _, k := range sortedKeys(args) {
		p := joinKey(at, k)
		switch name := strings.TrimLeft(k, "-"); {
		case k == "" || name == "":
			l.add(p, "a flag needs a name; want a key such as \"v\"")
		case name != k:
			l.add(p, "flag name %q starts with dashes; want %q", k, name)
		case strings.Contains(k, "="):
			n, v, _ := strings.Cut(k, "=")
			l.add(p, "flag name %q contains '='; want the name as the key and the value as its value: %s = %q", k, joinKey("", n), v)
		case strings.ContainsFunc(k, isSpace):
			l.add(p, "flag name %q contains white space; want a flag name such as \"feature-gates\"", k)
		case !ValidFlagName(k):
			l.add(p, "flag name %q is not a flag name; want lowercase letters, digits and dashes, such as \"feature-gates\"", k)
		}
		if problem := FlagValueProblem(args[k], envFile); problem != "" {
			l.add(p, "value %q %s", args[k], problem)
		}
	}
}

// flagName is what a flag of a Kubernetes component or etcd is called, without dashes.
var flagName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// envFileUnsafe are the characters systemd and kforge's supervisor unquote or expand in a
// value read from an env file and a $VAR in a command line.
const envFileUnsafe = "\"'`\\$"

// ValidFlagName reports whether name (without dashes) can be a component's flag.
func ValidFlagName(name string) bool { return flagName.MatchString(name) }

// FlagValueProblem says why value cannot be one flag's value, or returns "". No value may
// hold a line break or another control character. envFile values are written to
// kubeadm-flags.env, which systemd and kforge's supervisor split into arguments at white
// space (as kubeadm's file is read): those may hold no white space, no quotes, backslashes
// or '$' either, since the service manager would split, unquote or expand them and a value
// could then add a flag of its own.
func FlagValueProblem(value string, envFile bool) string {
	if strings.ContainsFunc(value, unicode.IsControl) {
		return "contains a line break or control character; want one line"
	}
	if !envFile {
		return ""
	}
	what := ""
	switch {
	case strings.ContainsFunc(value, unicode.IsSpace):
		what = "white space"
	case strings.ContainsAny(value, envFileUnsafe):
		what = fmt.Sprintf("'%c'", value[strings.IndexAny(value, envFileUnsafe)])
	default:
		return ""
	}
	return "cannot be written to kubeadm-flags.env as one argument: it contains " + what +
		"; want a value without white space, quotes, backslashes or '$'"
}

func isSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f'
}

func validateExtraVolumes(l *problemList, at string, vols []HostPathMount) {
	seen := map[string]int{}
	for i, v := range vols {
		p := fmt.Sprintf("%s[%d]", at, i)
		switch {
		case v.Name == "":
			l.addAt(p+".name", p, "is missing; want a volume name such as \"audit-policy\"")
		case len(validation.IsDNS1123Label(v.Name)) > 0:
			l.add(p+".name", "%q is not a DNS label; want lowercase letters, digits and '-', at most 63 characters, such as \"audit-policy\"", v.Name)
		default:
			if j, dup := seen[v.Name]; dup {
				l.add(p+".name", "%q is already used by %s[%d]; want unique volume names", v.Name, at, j)
			} else {
				seen[v.Name] = i
			}
		}
		if !isAbsPath(v.HostPath) {
			l.addAt(p+".host_path", p, "%q is not an absolute path; want the path on the host, such as \"/etc/kubernetes/audit\"", v.HostPath)
		}
		if !isAbsPath(v.MountPath) {
			l.addAt(p+".mount_path", p, "%q is not an absolute path; want the path in the container, such as \"/etc/kubernetes/audit\"", v.MountPath)
		}
		if !slices.Contains(HostPathTypes, v.PathType) {
			l.add(p+".path_type", "%q is not a hostPath type; want %s", v.PathType, orList(quoteAll(HostPathTypes[1:])))
		}
	}
}

func isAbsPath(s string) bool { return path.IsAbs(s) }

// validateSANs checks extra certificate subject alternative names: IPs or DNS names,
// wildcards allowed.
func validateSANs(l *problemList, at string, sans []string) {
	for i, s := range sans {
		if _, err := netip.ParseAddr(s); err == nil && !strings.Contains(s, "%") {
			continue
		}
		lower := strings.ToLower(s)
		if len(validation.IsDNS1123Subdomain(lower)) == 0 || len(validation.IsWildcardDNS1123Subdomain(lower)) == 0 {
			continue
		}
		l.add(fmt.Sprintf("%s[%d]", at, i), "%q is neither an IP address nor a DNS name; want e.g. \"10.0.0.100\", \"api.example.com\" or \"*.example.com\"", s)
	}
}

func (c *Cluster) validateKubelet(l *problemList) {
	k := c.Kubelet
	if !slices.Contains(cgroupDrivers, k.CgroupDriver) {
		l.add("kubelet.cgroup_driver", "%q is not a cgroup driver; want \"systemd\" or \"cgroupfs\", or leave it out to detect the container runtime's", k.CgroupDriver)
	}
	if k.MaxPods < 0 {
		l.add("kubelet.max_pods", "%d is negative; want a pod limit such as 110, or 0 for the kubelet's default", k.MaxPods)
	}
	if msg := checkCRIEndpoint(k.ContainerRuntimeEndpoint); msg != "" {
		l.add("kubelet.container_runtime_endpoint", "%q %s; want a unix:// or npipe:// URL such as %q", k.ContainerRuntimeEndpoint, msg, DefaultCRISocket)
	}
	for _, m := range []struct {
		key string
		val map[string]string
	}{{"kubelet.system_reserved", k.SystemReserved}, {"kubelet.kube_reserved", k.KubeReserved}} {
		for _, name := range sortedKeys(m.val) {
			p := joinKey(m.key, name)
			if !slices.Contains(reservedResources, name) {
				l.add(p, "the kubelet cannot reserve %q; want %s", name, orList(quoteAll(reservedResources)))
				continue
			}
			if q, err := resource.ParseQuantity(m.val[name]); err != nil || q.Sign() < 0 {
				l.add(p, "%q is not a quantity; want an amount such as \"500m\" (cpu) or \"1Gi\" (memory)", m.val[name])
			}
		}
	}
	for _, name := range sortedKeys(k.EvictionHard) {
		p := joinKey("kubelet.eviction_hard", name)
		if !slices.Contains(evictionSignals, name) {
			l.add(p, "%q is not an eviction signal; want one of %s", name, orList(quoteAll(evictionSignals)))
			continue
		}
		v := k.EvictionHard[name]
		if pct, ok := strings.CutSuffix(v, "%"); ok {
			if f, err := strconv.ParseFloat(pct, 64); err != nil || f < 0 || f > 100 {
				l.add(p, "%q is not a percentage; want e.g. \"10%%\" or a quantity such as \"100Mi\"", v)
			}
		} else if q, err := resource.ParseQuantity(v); err != nil || q.Sign() < 0 {
			l.add(p, "%q is not a quantity; want e.g. \"100Mi\" or a percentage such as \"10%%\"", v)
		}
	}
	validateExtraArgs(l, "kubelet.extra_args", k.ExtraArgs, true)
	validateServingFlag(l, "kubelet.extra_args", k.ExtraArgs, k.ServerTLSBootstrap)
}

// rotateServerCertsFlag is the kubelet flag for serverTLSBootstrap, which kforge writes to
// the KubeletConfiguration from kubelet.server_tls_bootstrap.
const rotateServerCertsFlag = "rotate-server-certificates"

// validateServingFlag reports a kubelet flag in args (extra_args at at) that would override
// kubelet.server_tls_bootstrap with another value: a flag beats the config file.
func validateServingFlag(l *problemList, at string, args map[string]string, serverTLSBootstrap bool) {
	v, ok := args[rotateServerCertsFlag]
	if !ok {
		return
	}
	if on, err := strconv.ParseBool(v); err == nil && on == serverTLSBootstrap {
		return
	}
	l.add(joinKey(at, rotateServerCertsFlag), "%q would override kubelet.server_tls_bootstrap = %t (kforge writes it to the KubeletConfiguration as serverTLSBootstrap); want server_tls_bootstrap alone",
		v, serverTLSBootstrap)
}

// checkCRIEndpoint returns what is wrong with a container runtime endpoint, or "".
func checkCRIEndpoint(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "is not a URL"
	case u.Scheme == "unix":
		if u.Host != "" || !isAbsPath(u.Path) {
			return "has no absolute socket path (unix:// is followed by the path, so three slashes)"
		}
	case u.Scheme == "npipe":
		if u.Path == "" {
			return "has no pipe path"
		}
	default:
		return "is not a unix:// or npipe:// URL"
	}
	return ""
}

func (c *Cluster) validateAddons(l *problemList) {
	a := c.Addons
	if !slices.Contains(cniPlugins, a.CNI.Plugin) {
		l.add("addons.cni.plugin", "%q is not supported; want %s (\"none\" to install a CNI yourself)", a.CNI.Plugin, orList(quoteAll(cniPlugins)))
	}
	if !slices.Contains(flannelBackends, a.CNI.FlannelBackend) {
		l.add("addons.cni.flannel_backend", "%q is not supported; want %s", a.CNI.FlannelBackend, orList(quoteAll(flannelBackends)))
	}
	for i, u := range a.DNS.Upstreams {
		if !isIPOrIPPort(u) {
			l.add(fmt.Sprintf("addons.dns.upstreams[%d]", i), "%q is not an IP address or IP:port; want e.g. \"1.1.1.1\", \"10.0.0.2:53\" or \"[2606:4700::1111]:53\"", u)
		}
	}
	if a.DNS.Replicas < 1 && !a.DNS.Disabled {
		l.add("addons.dns.replicas", "%d is less than 1; want at least 1, or set addons.dns.disabled = true", a.DNS.Replicas)
	}
	if !slices.Contains(KubeProxyModes, a.KubeProxy.Mode) {
		l.add("addons.kube_proxy.mode", "%q is not a kube-proxy mode; want %s", a.KubeProxy.Mode, orList(quoteAll(KubeProxyModes)))
	}
}

func isIPOrIPPort(s string) bool {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Zone() == ""
	}
	ap, err := netip.ParseAddrPort(s)
	return err == nil && ap.Addr().Zone() == "" && ap.Port() != 0
}

func (c *Cluster) validateHosts(l *problemList) {
	if len(c.Hosts) == 0 {
		return
	}
	if len(c.ControlPlaneHosts()) == 0 {
		l.add("hosts", "no host has role %q; want at least one", RoleControlPlane)
	}
	pod, _ := netip.ParsePrefix(c.Networking.PodCIDR)
	svc, _ := netip.ParsePrefix(c.Networking.ServiceCIDR)
	names, addrs, internal := map[string]int{}, map[string]int{}, map[string]int{}
	for i := range c.Hosts {
		h := &c.Hosts[i]
		p := fmt.Sprintf("hosts[%d]", i)

		switch {
		case h.Name == "":
			l.addAt(p+".name", p, "is missing; want the node name, such as \"cp-1\"")
		case len(validation.IsDNS1123Subdomain(h.Name)) > 0:
			l.add(p+".name", "%q is not a valid node name; want a lowercase DNS name such as \"cp-1\"", h.Name)
		default:
			if j, dup := names[h.Name]; dup {
				l.add(p+".name", "%q is already used by hosts[%d]; want unique host names", h.Name, j)
			} else {
				names[h.Name] = i
			}
		}

		addrDup := false
		switch {
		case h.Address == "":
			l.addAt(p+".address", p, "is missing; want the IP address or DNS name kforge reaches the host at, such as \"192.0.2.10\"")
		case !isIPOrDNSName(h.Address):
			l.add(p+".address", "%q is neither an IP address nor a DNS name; want e.g. \"192.0.2.10\" or \"cp-1.example.com\"", h.Address)
		default:
			k := normalizeHost(h.Address)
			if j, dup := addrs[k]; dup {
				addrDup = true
				l.add(p+".address", "%q is already used by hosts[%d]; want unique addresses", h.Address, j)
			} else {
				addrs[k] = i
			}
		}

		// internal_address defaults to address: when it is not written, report its
		// problems on the address line.
		in := p + ".internal_address"
		nodeIP := h.NodeIP()
		switch {
		case nodeIP == "":
			// Reported as a missing address.
		case NodeIPProblem(nodeIP) != "":
			// init and join advertise the node IP, which defaults to address.
			_, ipErr := netip.ParseAddr(nodeIP)
			switch {
			case nodeIP != h.Address || ipErr == nil:
				l.addAt(in, p+".address", "%s", NodeIPProblem(nodeIP))
			case isIPOrDNSName(h.Address):
				l.addAt(in, p+".address", "%q is not an IP address, and init and join advertise it (internal_address defaults to address); want internal_address set to the node's IP address, such as \"10.0.0.10\"", h.Address)
			}
		default:
			k := normalizeHost(nodeIP)
			if j, dup := internal[k]; dup && !addrDup {
				l.addAt(in, p+".address", "%q is already used by hosts[%d]; want unique internal addresses", nodeIP, j)
			} else if !dup {
				internal[k] = i
			}
			if a, err := netip.ParseAddr(nodeIP); err == nil {
				a = a.Unmap()
				for _, r := range []struct {
					key string
					p   netip.Prefix
				}{{"networking.pod_cidr", pod}, {"networking.service_cidr", svc}} {
					if r.p.IsValid() && r.p.Contains(a) {
						l.addAt(in, p+".address", "%s is inside %s %q; want a node address outside the pod and service ranges", nodeIP, r.key, r.p)
					}
				}
			}
		}

		validateRoles(l, p, h.Roles)
		validateLabels(l, p+".labels", h.Labels)
		validateTaints(l, p+".taints", h.Taints)
		validateExtraArgs(l, p+".kubelet_extra_args", h.KubeletExtraArgs, true)
		validateServingFlag(l, p+".kubelet_extra_args", h.KubeletExtraArgs, c.Kubelet.ServerTLSBootstrap)
		validateSSH(l, p+".ssh", h.SSH)
	}
}

func validateRoles(l *problemList, host string, rs []string) {
	at := host + ".roles"
	if len(rs) == 0 {
		l.addAt(at, host, "is empty; want %q, %q or both", RoleControlPlane, RoleWorker)
		return
	}
	seen := map[string]bool{}
	for j, r := range rs {
		p := fmt.Sprintf("%s[%d]", at, j)
		switch {
		case !slices.Contains(roles, r):
			l.add(p, "%q is not a role; want %s", r, orList(quoteAll(roles)))
		case seen[r]:
			l.add(p, "%q is listed twice; want each role once", r)
		}
		seen[r] = true
	}
}

const (
	labelKeyWant   = `want an optional DNS subdomain prefix and "/", then a name of at most 63 letters, digits, '-', '_' or '.' that starts and ends with a letter or digit, such as "example.com/zone"`
	labelValueWant = `want at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`
)

func validateLabels(l *problemList, at string, labels map[string]string) {
	for _, k := range sortedKeys(labels) {
		p := joinKey(at, k)
		if len(validation.IsQualifiedName(k)) > 0 {
			l.add(p, "%q is not a valid label key; %s", k, labelKeyWant)
		}
		if v := labels[k]; len(validation.IsValidLabelValue(v)) > 0 {
			l.add(p, "%q is not a valid label value; %s", v, labelValueWant)
		}
	}
}

func validateTaints(l *problemList, at string, taints []string) {
	type keyEffect struct{ key, effect string }
	seen := map[keyEffect]int{}
	for i, t := range taints {
		p := fmt.Sprintf("%s[%d]", at, i)
		kv, effect, ok := cutLast(t, ":")
		if !ok {
			l.add(p, "%q has no effect; want \"key[=value]:Effect\" with Effect %s, such as \"dedicated=gpu:NoSchedule\"", t, orList(taintEffects))
			continue
		}
		key, value, _ := strings.Cut(kv, "=")
		switch {
		case !slices.Contains(taintEffects, effect):
			l.add(p, "%q has effect %q; want %s", t, effect, orList(taintEffects))
		case len(validation.IsQualifiedName(key)) > 0:
			l.add(p, "%q has an invalid key %q; %s", t, key, labelKeyWant)
		case len(validation.IsValidLabelValue(value)) > 0:
			l.add(p, "%q has an invalid value %q; %s", t, value, labelValueWant)
		default:
			ke := keyEffect{key, effect}
			if j, dup := seen[ke]; dup {
				l.add(p, "%q repeats the key and effect of %s[%d]; want one taint per key and effect", t, at, j)
			} else {
				seen[ke] = i
			}
		}
	}
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

func validateSSH(l *problemList, at string, s SSH) {
	if s.Port < 1 || s.Port > 65535 {
		l.add(at+".port", "%d is not a port; want 1-65535", s.Port)
	}
	if s.User == "" {
		l.addAt(at+".user", at, "is missing; want the login name, such as %q", DefaultSSHUser)
	}
	if s.Bastion != "" {
		if msg := checkBastion(s.Bastion); msg != "" {
			l.add(at+".bastion", "%q %s; want \"[user@]host[:port]\", such as \"admin@jump.example.com:2222\"", s.Bastion, msg)
		}
	}
}

func checkBastion(s string) string {
	hostPort := s
	if user, rest, ok := cutLast(s, "@"); ok {
		if user == "" {
			return "has an empty user name"
		}
		hostPort = rest
	}
	return checkHostPort(hostPort, true)
}

// HostPortProblem returns what is wrong with "host" or "host:port" (the port required when
// needPort), or "": the rule control_plane_endpoint follows. Hosts are IP addresses or DNS
// names; an IPv6 address with a port is bracketed; a port is 1-65535.
func HostPortProblem(s string, needPort bool) string { return checkHostPort(s, !needPort) }

// checkHostPort returns what is wrong with "host" or "host:port", or "". Hosts are IP
// addresses or DNS names; IPv6 addresses with a port are bracketed. Without optionalPort the
// port must be there.
func checkHostPort(s string, optionalPort bool) string {
	if strings.Contains(s, "://") {
		return "has a scheme"
	}
	host, port, hasPort := s, "", false
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.Index(s, "]")
		if end < 0 {
			return "has an unclosed '['"
		}
		host = s[1:end]
		rest := s[end+1:]
		if rest != "" {
			p, ok := strings.CutPrefix(rest, ":")
			if !ok {
				return "has text after ']'"
			}
			port, hasPort = p, true
		}
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() || a.Zone() != "" {
			return "has no IPv6 address inside [ ]"
		}
	case strings.Count(s, ":") == 1:
		host, port, _ = strings.Cut(s, ":")
		hasPort = true
	}
	if host == "" {
		return "has no host"
	}
	if !isIPOrDNSName(host) {
		return "has a host that is neither an IP address nor a DNS name"
	}
	if hasPort {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return fmt.Sprintf("has port %q; a port is 1-65535", port)
		}
	} else if !optionalPort {
		return "has no port"
	}
	return ""
}

// isIPOrDNSName reports whether s is an IP address without a zone, or a DNS name (any case).
// A name whose last label is all digits is not a DNS name (RFC 3696, section 2): that is
// how "999.1.2.3" and "10.0.0.300", which look like IPv4 addresses but are not, are refused
// instead of being looked up.
func isIPOrDNSName(s string) bool {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Zone() == ""
	}
	if len(validation.IsDNS1123Subdomain(strings.ToLower(s))) > 0 {
		return false
	}
	last := s[strings.LastIndexByte(s, '.')+1:]
	return strings.ContainsFunc(last, func(r rune) bool { return r < '0' || r > '9' })
}

// NodeIPProblem checks an address a node advertises: a host's internal_address, or
// --advertise-address. It returns "" for an IPv4 or IPv6 address without a zone, else a
// complete message that quotes s and says what is wanted.
func NodeIPProblem(s string) string {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return fmt.Sprintf("%s is not an IP address; want the node's IPv4 or IPv6 address, such as \"10.0.0.10\" or \"fd00::10\"", quoteValue(s))
	case a.Zone() != "":
		return fmt.Sprintf("%s has an IPv6 zone; want the node's address without one, such as \"fd00::10\"", quoteValue(s))
	case a.IsUnspecified() || a.IsMulticast():
		return fmt.Sprintf("%s cannot be a node's address; want the node's unicast IPv4 or IPv6 address, such as \"10.0.0.10\"", quoteValue(s))
	}
	return ""
}

// normalizeHost makes equal addresses compare equal: IPs in canonical form, names lowercased.
func normalizeHost(s string) string {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().String()
	}
	return strings.ToLower(strings.TrimSuffix(s, "."))
}

// checkImageRepository returns what is wrong with an image repository prefix, or "".
// It follows the distribution reference grammar: an optional registry host[:port] (the
// first component, when it has a '.' or ':' or is "localhost"), then lowercase path
// components.
func checkImageRepository(s string) string {
	switch {
	case s == "":
		return "is empty"
	case strings.Contains(s, "://"):
		return "has a scheme"
	case strings.Contains(s, "@"):
		return "has a digest"
	}
	comps := strings.Split(s, "/")
	first := comps[0]
	if strings.ContainsAny(first, ".:") || first == "localhost" || strings.HasPrefix(first, "[") {
		if msg := checkHostPort(first, true); msg != "" {
			return fmt.Sprintf("has an invalid registry host %q", first)
		}
		comps = comps[1:]
	}
	for _, c := range comps {
		switch {
		case strings.Contains(c, ":"):
			return "has a tag"
		case !pathComponent.MatchString(c):
			return fmt.Sprintf("has an invalid path component %q (lowercase letters and digits, separated by '.', '_', '__' or '-')", c)
		}
	}
	return ""
}

var pathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)

// orList joins items as `a, b or c`.
func orList(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

func quoteAll(items []string) []string {
	out := make([]string, len(items))
	for i, s := range items {
		out[i] = strconv.Quote(s)
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
