package config

import (
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// ComponentVersions are the versions of the images kforge pins for one Kubernetes minor
// release, beside the control-plane images, which follow KubernetesVersion itself.
type ComponentVersions struct {
	// Kubeadm is the kubeadm release whose constants (k8s.io/kubernetes
	// cmd/kubeadm/app/constants/constants.go: SupportedEtcdVersion[minor], PauseVersion,
	// CoreDNSVersion) give Etcd, Pause and CoreDNS, so that a bundle serves a stock
	// kubeadm of that release too. TestPinsFollowKubeadm checks them against that source.
	Kubeadm string
	// Etcd, Pause and CoreDNS are image tags, as kubeadm writes them.
	Etcd, Pause, CoreDNS string
	// Flannel and FlannelCNIPlugin are the flannel release kforge installs (kubeadm
	// installs no CNI).
	Flannel, FlannelCNIPlugin string
}

// componentVersions is the one table of pins, by Kubernetes minor release.
var componentVersions = map[int]ComponentVersions{
	// kubeadm v1.34.4: SupportedEtcdVersion[34] = "3.6.5-0", PauseVersion = "3.10.1",
	// CoreDNSVersion = "v1.12.1". Flannel v0.28.10 with flannel-cni-plugin v1.8.0-flannel1.
	34: {Kubeadm: "v1.34.4", Etcd: "3.6.5-0", Pause: "3.10.1", CoreDNS: "v1.12.1", Flannel: "v0.28.10", FlannelCNIPlugin: "v1.8.0-flannel1"},
}

// Pins returns the image versions pinned for Kubernetes 1.minor.
func Pins(minor int) (ComponentVersions, bool) {
	v, ok := componentVersions[minor]
	return v, ok
}

// flannelRepository is where flannel publishes its images. It is used when
// image_repository is the default; a mirror holds them under <mirror>/flannel-io.
const flannelRepository = "ghcr.io/flannel-io"

// Component image names.
const (
	ImageAPIServer         = "kube-apiserver"
	ImageControllerManager = "kube-controller-manager"
	ImageScheduler         = "kube-scheduler"
	ImageKubeProxy         = "kube-proxy"
	ImageEtcd              = "etcd"
	ImagePause             = "pause"
	ImageCoreDNS           = "coredns"
	ImageFlannel           = "flannel"
	ImageFlannelCNIPlugin  = "flannel-cni-plugin"
)

// SupportedMinors lists the Kubernetes minor releases this build knows image versions for.
func SupportedMinors() []int {
	var m []int
	for k := range componentVersions {
		m = append(m, k)
	}
	slices.Sort(m)
	return m
}

// KubernetesMinor returns the minor release of KubernetesVersion ("v1.34.4" gives 34), or -1.
func (c *Cluster) KubernetesMinor() int {
	parts := strings.Split(strings.TrimPrefix(c.KubernetesVersion, "v"), ".")
	if len(parts) < 2 || parts[0] != "1" {
		return -1
	}
	m, err := strconv.Atoi(parts[1])
	if err != nil {
		return -1
	}
	return m
}

// Image returns the full reference of a component image (one of the Image* names).
func (c *Cluster) Image(component string) string {
	v := componentVersions[c.KubernetesMinor()]
	repo := c.ImageRepository
	switch component {
	case ImageEtcd:
		return repo + "/etcd:" + v.Etcd
	case ImagePause:
		return repo + "/pause:" + v.Pause
	case ImageCoreDNS:
		return repo + "/coredns/coredns:" + v.CoreDNS
	case ImageFlannel:
		return c.flannelRepository() + "/flannel:" + v.Flannel
	case ImageFlannelCNIPlugin:
		return c.flannelRepository() + "/flannel-cni-plugin:" + v.FlannelCNIPlugin
	default:
		return repo + "/" + component + ":" + c.KubernetesVersion
	}
}

func (c *Cluster) flannelRepository() string {
	if c.ImageRepository == DefaultImageRepository {
		return flannelRepository
	}
	return c.ImageRepository + "/flannel-io"
}

// HasRole reports whether the host carries role r.
func (h *Host) HasRole(r string) bool { return slices.Contains(h.Roles, r) }

// IsControlPlane reports whether the host is a control-plane member.
func (h *Host) IsControlPlane() bool { return h.HasRole(RoleControlPlane) }

// NodeIP is the address the host's components advertise: InternalAddress, else Address.
func (h *Host) NodeIP() string {
	if h.InternalAddress != "" {
		return h.InternalAddress
	}
	return h.Address
}

// HostByName returns the host with that name.
func (c *Cluster) HostByName(name string) (*Host, bool) {
	for i := range c.Hosts {
		if c.Hosts[i].Name == name {
			return &c.Hosts[i], true
		}
	}
	return nil, false
}

// ControlPlaneHosts returns the control-plane hosts in file order; the first one inits.
func (c *Cluster) ControlPlaneHosts() []*Host {
	var out []*Host
	for i := range c.Hosts {
		if c.Hosts[i].IsControlPlane() {
			out = append(out, &c.Hosts[i])
		}
	}
	return out
}

// Endpoint returns the control-plane endpoint as host and port: control_plane_endpoint if
// set (port 6443 when it has none), else the first control-plane host's NodeIP.
func (c *Cluster) Endpoint() (string, int) {
	if ep := c.ControlPlaneEndpoint; ep != "" {
		if h, p, err := net.SplitHostPort(ep); err == nil {
			if n, err := strconv.Atoi(p); err == nil {
				return h, n
			}
		}
		return strings.Trim(ep, "[]"), DefaultAPIServerPort
	}
	if cps := c.ControlPlaneHosts(); len(cps) > 0 {
		return cps[0].NodeIP(), DefaultAPIServerPort
	}
	return "", DefaultAPIServerPort
}

// EndpointURL is "https://host:port" for the control-plane endpoint.
func (c *Cluster) EndpointURL() string {
	h, p := c.Endpoint()
	return "https://" + net.JoinHostPort(h, strconv.Itoa(p))
}

// ServiceIP returns the n-th address of the service CIDR (1 is the apiserver's, 10 is DNS).
func (c *Cluster) ServiceIP(n int) (netip.Addr, error) {
	p, err := netip.ParsePrefix(c.Networking.ServiceCIDR)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("networking.service_cidr %q: %w", c.Networking.ServiceCIDR, err)
	}
	if n < 0 {
		return netip.Addr{}, fmt.Errorf("networking.service_cidr %q has no address number %d", c.Networking.ServiceCIDR, n)
	}
	p = p.Masked()
	base := new(big.Int).SetBytes(p.Addr().AsSlice())
	ip := new(big.Int).Add(base, big.NewInt(int64(n)))
	b := ip.Bytes()
	size := len(p.Addr().AsSlice())
	if len(b) > size {
		return netip.Addr{}, fmt.Errorf("networking.service_cidr %q has no address number %d", c.Networking.ServiceCIDR, n)
	}
	buf := make([]byte, size)
	copy(buf[size-len(b):], b)
	a, _ := netip.AddrFromSlice(buf)
	if !p.Contains(a) {
		return netip.Addr{}, fmt.Errorf("networking.service_cidr %q has no address number %d", c.Networking.ServiceCIDR, n)
	}
	return a, nil
}
