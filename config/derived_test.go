package config

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestServiceIP(t *testing.T) {
	tests := []struct {
		cidr    string
		n       int
		want    string
		wantErr bool
	}{
		{cidr: "10.96.0.0/12", n: 1, want: "10.96.0.1"},
		{cidr: "10.96.0.0/12", n: 10, want: "10.96.0.10"},
		{cidr: "10.96.0.0/12", n: 256, want: "10.96.1.0"},
		{cidr: "10.96.0.0/28", n: 10, want: "10.96.0.10"},
		{cidr: "10.96.0.0/28", n: 15, want: "10.96.0.15"},
		{cidr: "10.96.0.0/28", n: 16, wantErr: true},
		{cidr: "10.96.0.0/29", n: 10, wantErr: true},
		{cidr: "10.96.5.7/12", n: 1, want: "10.96.0.1"}, // host bits are ignored
		{cidr: "255.255.255.252/30", n: 4, wantErr: true},
		{cidr: "fd00:10:96::/112", n: 1, want: "fd00:10:96::1"},
		{cidr: "fd00:10:96::/112", n: 10, want: "fd00:10:96::a"},
		{cidr: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0/124", n: 16, wantErr: true},
		{cidr: "10.96.0.0/12", n: -1, wantErr: true},
		{cidr: "10.96.0.0", n: 1, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.cidr+"/"+tc.want, func(t *testing.T) {
			c := Default()
			c.Networking.ServiceCIDR = tc.cidr
			got, err := c.ServiceIP(tc.n)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ServiceIP(%d) of %s = %v, want an error", tc.n, tc.cidr, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ServiceIP(%d) of %s: %v", tc.n, tc.cidr, err)
			}
			if want := netip.MustParseAddr(tc.want); got != want {
				t.Errorf("ServiceIP(%d) of %s = %v, want %v", tc.n, tc.cidr, got, want)
			}
		})
	}
}

func TestEndpoint(t *testing.T) {
	cp := func(name, addr, internal string) Host {
		return Host{Name: name, Address: addr, InternalAddress: internal, Roles: []string{RoleControlPlane}}
	}
	tests := []struct {
		name     string
		endpoint string
		hosts    []Host
		wantHost string
		wantPort int
		wantURL  string
	}{
		{name: "name without port", endpoint: "lb.example.com", wantHost: "lb.example.com", wantPort: 6443, wantURL: "https://lb.example.com:6443"},
		{name: "name with port", endpoint: "lb.example.com:443", wantHost: "lb.example.com", wantPort: 443, wantURL: "https://lb.example.com:443"},
		{name: "IPv4 with port", endpoint: "10.0.0.100:8443", wantHost: "10.0.0.100", wantPort: 8443, wantURL: "https://10.0.0.100:8443"},
		{name: "IPv6 with port", endpoint: "[fd00::100]:8443", wantHost: "fd00::100", wantPort: 8443, wantURL: "https://[fd00::100]:8443"},
		{name: "bracketed IPv6", endpoint: "[fd00::100]", wantHost: "fd00::100", wantPort: 6443, wantURL: "https://[fd00::100]:6443"},
		{name: "bare IPv6", endpoint: "fd00::100", wantHost: "fd00::100", wantPort: 6443, wantURL: "https://[fd00::100]:6443"},
		{
			name:     "first control-plane host",
			hosts:    []Host{{Name: "w", Address: "10.0.0.9", Roles: []string{RoleWorker}}, cp("a", "192.0.2.1", "10.0.0.1"), cp("b", "192.0.2.2", "")},
			wantHost: "10.0.0.1", wantPort: 6443, wantURL: "https://10.0.0.1:6443",
		},
		{
			name:     "first control-plane host without internal address",
			hosts:    []Host{cp("b", "fd00::2", "")},
			wantHost: "fd00::2", wantPort: 6443, wantURL: "https://[fd00::2]:6443",
		},
		{name: "nothing", wantHost: "", wantPort: 6443, wantURL: "https://:6443"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.ControlPlaneEndpoint = tc.endpoint
			c.Hosts = tc.hosts
			h, p := c.Endpoint()
			if h != tc.wantHost || p != tc.wantPort {
				t.Errorf("Endpoint() = %q, %d; want %q, %d", h, p, tc.wantHost, tc.wantPort)
			}
			if got := c.EndpointURL(); got != tc.wantURL {
				t.Errorf("EndpointURL() = %q, want %q", got, tc.wantURL)
			}
		})
	}
}

func TestKubernetesMinor(t *testing.T) {
	for v, want := range map[string]int{
		"v1.34.4": 34, "v1.9.0": 9, "1.34.4": 34, "v2.1.0": -1, "v1": -1, "": -1, "v1.x.0": -1,
	} {
		c := &Cluster{KubernetesVersion: v}
		if got := c.KubernetesMinor(); got != want {
			t.Errorf("KubernetesMinor() of %q = %d, want %d", v, got, want)
		}
	}
	if diff := cmp.Diff([]int{34}, SupportedMinors()); diff != "" {
		t.Errorf("SupportedMinors() mismatch (-want +got):\n%s", diff)
	}
}

func TestImage(t *testing.T) {
	c := Default()
	c.ImageRepository = "mirror.example.com/k8s"
	tests := map[string]string{
		ImageAPIServer:         "mirror.example.com/k8s/kube-apiserver:v1.34.4",
		ImageControllerManager: "mirror.example.com/k8s/kube-controller-manager:v1.34.4",
		ImageScheduler:         "mirror.example.com/k8s/kube-scheduler:v1.34.4",
		ImageKubeProxy:         "mirror.example.com/k8s/kube-proxy:v1.34.4",
		ImageEtcd:              "mirror.example.com/k8s/etcd:3.6.5-0",
		ImagePause:             "mirror.example.com/k8s/pause:3.10.1",
		ImageCoreDNS:           "mirror.example.com/k8s/coredns/coredns:v1.12.1",
		ImageFlannel:           "mirror.example.com/k8s/flannel-io/flannel:v0.28.10",
	}
	for component, want := range tests {
		if got := c.Image(component); got != want {
			t.Errorf("Image(%q) = %q, want %q", component, got, want)
		}
	}
}

func TestHosts(t *testing.T) {
	c := Default()
	c.Hosts = []Host{
		{Name: "w-1", Address: "192.0.2.20", Roles: []string{RoleWorker}},
		{Name: "cp-1", Address: "192.0.2.10", InternalAddress: "10.0.0.10", Roles: []string{RoleControlPlane}},
		{Name: "cp-2", Address: "192.0.2.11", Roles: []string{RoleWorker, RoleControlPlane}},
	}
	var names []string
	for _, h := range c.ControlPlaneHosts() {
		names = append(names, h.Name)
	}
	if diff := cmp.Diff([]string{"cp-1", "cp-2"}, names); diff != "" {
		t.Errorf("ControlPlaneHosts() mismatch (-want +got):\n%s", diff)
	}

	h, ok := c.HostByName("cp-1")
	if !ok || h != &c.Hosts[1] {
		t.Fatalf("HostByName(cp-1) = %v, %v; want a pointer to hosts[1]", h, ok)
	}
	if got := h.NodeIP(); got != "10.0.0.10" {
		t.Errorf("NodeIP() = %q, want the internal address", got)
	}
	if got := c.Hosts[2].NodeIP(); got != "192.0.2.11" {
		t.Errorf("NodeIP() without internal address = %q, want the address", got)
	}
	if !c.Hosts[2].HasRole(RoleWorker) || c.Hosts[0].IsControlPlane() {
		t.Errorf("roles of %+v / %+v read wrong", c.Hosts[2], c.Hosts[0])
	}
	if h, ok := c.HostByName("nope"); ok || h != nil {
		t.Errorf("HostByName(nope) = %v, %v; want nil, false", h, ok)
	}
}
