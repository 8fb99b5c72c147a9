package cmd

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/discovery"
)

// TestJoinRefusesBadInputBeforeDiscovery covers the mistakes join catches without asking
// the network: every one is an error naming the flag, and none reaches discovery.
func TestJoinRefusesBadInputBeforeDiscovery(t *testing.T) {
	t.Setenv(envToken, "")
	t.Setenv(envCertificateKey, "")
	pin := "sha256:" + strings.Repeat("ab", 32)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no endpoint", []string{"join", "--token", "k4fg3x.q7w8e9r0t1y2u3i4"}, "no API server endpoint"},
		{"no token", []string{"join", "127.0.0.1:6443", "--discovery-token-ca-cert-hash", pin}, "no bootstrap token"},
		{"malformed token", []string{"join", "127.0.0.1:6443", "--token", "abc.def"}, "--token"},
		{"malformed pin", []string{"join", "127.0.0.1:6443", "--token", "k4fg3x.q7w8e9r0t1y2u3i4", "--discovery-token-ca-cert-hash", "md5:00"}, "--discovery-token-ca-cert-hash"},
		{"no pin and no unsafe flag", []string{"join", "127.0.0.1:6443", "--token", "k4fg3x.q7w8e9r0t1y2u3i4"}, "refusing to trust a cluster CA without a CA pin"},
		{"malformed certificate key", []string{"join", "127.0.0.1:6443", "--token", "k4fg3x.q7w8e9r0t1y2u3i4", "--discovery-token-ca-cert-hash", pin, "--certificate-key", "xyz"}, "--certificate-key"},
		{"two endpoints", []string{"join", "127.0.0.1:6443", "127.0.0.2:6443", "--token", "k4fg3x.q7w8e9r0t1y2u3i4"}, "accepts at most 1 arg"},
		{"missing config file", []string{"join", "-f", "/nonexistent/cluster.toml", "--token", "k4fg3x.q7w8e9r0t1y2u3i4"}, "reading cluster config"},
		// Issue 10, item 21: these retried until the discovery timeout, or were taken as 5m.
		{"port out of range", []string{"join", "127.0.0.1:99999", "--token", "k4fg3x.q7w8e9r0t1y2u3i4", "--discovery-token-ca-cert-hash", pin}, `has port "99999"`},
		{"port zero", []string{"join", "127.0.0.1:0", "--token", "k4fg3x.q7w8e9r0t1y2u3i4", "--discovery-token-ca-cert-hash", pin}, `has port "0"`},
		{"http scheme", []string{"join", "http://127.0.0.1:6443", "--token", "k4fg3x.q7w8e9r0t1y2u3i4", "--discovery-token-ca-cert-hash", pin}, `scheme "http"`},
		{"a path", []string{"join", "https://127.0.0.1:6443/api", "--token", "k4fg3x.q7w8e9r0t1y2u3i4", "--discovery-token-ca-cert-hash", pin}, "more than a host and a port"},
		{"not a host", []string{"join", "999.0.0.1:6443", "--token", "k4fg3x.q7w8e9r0t1y2u3i4", "--discovery-token-ca-cert-hash", pin}, "neither an IP address nor a DNS name"},
		{"negative discovery timeout", []string{"join", "127.0.0.1:6443", "--token", "k4fg3x.q7w8e9r0t1y2u3i4", "--discovery-token-ca-cert-hash", pin, "--discovery-timeout", "-5s"}, "--discovery-timeout -5s is not positive"},
		{"zero discovery timeout", []string{"join", "127.0.0.1:6443", "--token", "k4fg3x.q7w8e9r0t1y2u3i4", "--discovery-token-ca-cert-hash", pin, "--discovery-timeout", "0s"}, "--discovery-timeout 0s is not positive"},
		{"bad advertise address", []string{"join", "127.0.0.1:6443", "--token", "k4fg3x.q7w8e9r0t1y2u3i4", "--discovery-token-ca-cert-hash", pin, "--advertise-address", "999.0.0.1"}, `--advertise-address: "999.0.0.1" is not an IP address`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("kforge %s: err = %v, want one saying %q", strings.Join(tc.args, " "), err, tc.want)
			}
			if strings.Contains(out, "q7w8e9r0t1y2u3i4") || strings.Contains(err.Error(), "q7w8e9r0t1y2u3i4") {
				t.Errorf("the token secret reached the output: %s / %v", out, err)
			}
			// Refused before discovery: nothing printed, above all not "WITHOUT checking the CA".
			if out != "" {
				t.Errorf("join printed before refusing:\n%s", out)
			}
		})
	}
}

func TestJoinTokenFromEnvironment(t *testing.T) {
	o := &joinOptions{root: &rootOptions{secrets: secretEnv{token: "k4fg3x.q7w8e9r0t1y2u3i4"}}, discoveryTimeout: discovery.DefaultTimeout, unsafeSkipCA: true}
	req, err := o.request(nil, []string{"10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if req.Token.ID != "k4fg3x" || req.Endpoint != "10.0.0.1:6443" {
		t.Errorf("request = token %s endpoint %s, want k4fg3x from %s and port 6443 added", req.Token.ID, req.Endpoint, envToken)
	}
}

// TestJoinEndpoint is issue 10, item 21: the endpoint is read before discovery, with or
// without https:// and the port.
func TestJoinEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1":               "10.0.0.1:6443",
		"10.0.0.1:7443":          "10.0.0.1:7443",
		"https://10.0.0.1:6443":  "10.0.0.1:6443",
		"https://10.0.0.1:6443/": "10.0.0.1:6443",
		"HTTPS://lb.example.com": "lb.example.com:6443",
		"fd00::1":                "[fd00::1]:6443",
		"[fd00::1]:7443":         "[fd00::1]:7443",
		"https://[fd00::1]:7443": "[fd00::1]:7443",
		"lb.example.com:443":     "lb.example.com:443",
	} {
		o := &joinOptions{root: &rootOptions{secrets: secretEnv{token: "k4fg3x.q7w8e9r0t1y2u3i4"}}, discoveryTimeout: discovery.DefaultTimeout, unsafeSkipCA: true}
		req, err := o.request(nil, []string{in})
		if err != nil || req.Endpoint != want {
			t.Errorf("endpoint %q = %q, %v; want %q", in, req.Endpoint, err, want)
		}
	}
}

func TestJoinHelpListsPhases(t *testing.T) {
	out := mustRun(t, "join", "--help")
	for _, want := range []string{"download-certs", "etcd-join", "kubelet-wait-bootstrap",
		"mark-control-plane", "--discovery-token-ca-cert-hash", "--certificate-key", envToken} {
		if !strings.Contains(out, want) {
			t.Errorf("join --help lacks %q", want)
		}
	}
	if out := mustRun(t, "join", "phase", "--help"); !strings.Contains(out, "etcd-join") {
		t.Errorf("join phase --help lacks the phases:\n%s", out)
	}
	key := strings.TrimSpace(mustRun(t, "certs", "certificate-key"))
	if len(key) != 64 || strings.Trim(key, "0123456789abcdef") != "" {
		t.Errorf("certs certificate-key printed %q, want 64 hex digits", key)
	}
}

// TestJoinFromStoredConfiguration joins, without a file, from the configuration init stored
// in kube-system/kubeadm-config, which holds no host's SSH settings or own settings.
func TestJoinFromStoredConfiguration(t *testing.T) {
	c := &config.Cluster{Bundle: "/home/operator/bundle", Hosts: []config.Host{
		{Name: "cp1", Address: "cp1.ops.example.com", InternalAddress: "10.0.0.10", Roles: []string{config.RoleControlPlane},
			SSH: config.SSH{User: "deployer", Bastion: "jump@bastion.example.com"}},
		{Name: "w1", Address: "203.0.113.20", InternalAddress: "10.0.0.20", Roles: []string{config.RoleWorker},
			Labels: map[string]string{"site": "a"}},
	}}
	config.SetDefaults(c)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	cm, err := bootstrap.KubeadmConfig(c, "/etc/kubernetes/pki")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, node, addr string
		controlPlane     bool
		wantHosts        []string
	}{
		{name: "new worker", node: "w2", addr: "10.0.0.30",
			wantHosts: []string{"cp1 10.0.0.10 [control-plane]", "w1 10.0.0.20 [worker]", "w2 10.0.0.30 [worker]"}},
		{name: "new control plane", node: "cp2", addr: "10.0.0.11", controlPlane: true,
			wantHosts: []string{"cp1 10.0.0.10 [control-plane]", "w1 10.0.0.20 [worker]", "cp2 10.0.0.11 [control-plane]"}},
		{name: "a worker that was in the file joins again", node: "w1", addr: "10.0.0.20",
			wantHosts: []string{"cp1 10.0.0.10 [control-plane]", "w1 10.0.0.20 [worker]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stored, err := bootstrap.ClusterFromKubeadmConfig(cm)
			if err != nil {
				t.Fatal(err)
			}
			o := &joinOptions{node: tc.node, advertiseAddress: tc.addr, controlPlane: tc.controlPlane}
			h, err := o.selectNode(stored, false)
			if err != nil {
				t.Fatal(err)
			}
			if h.Name != tc.node || h.NodeIP() != tc.addr || h.IsControlPlane() != tc.controlPlane {
				t.Errorf("this host = %s %s control plane %v", h.Name, h.NodeIP(), h.IsControlPlane())
			}
			var hosts []string
			for _, x := range stored.Hosts {
				hosts = append(hosts, fmt.Sprintf("%s %s %v", x.Name, x.NodeIP(), x.Roles))
			}
			if diff := cmp.Diff(tc.wantHosts, hosts); diff != "" {
				t.Errorf("hosts (-want +got):\n%s", diff)
			}
			if ep, port := stored.Endpoint(); ep != "10.0.0.10" || port != 6443 {
				t.Errorf("endpoint %s:%d, want the first control plane's node address 10.0.0.10:6443", ep, port)
			}
		})
	}
}
