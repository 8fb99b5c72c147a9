package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestEncodeRoundTrip(t *testing.T) {
	full, err := Decode([]byte(`
name = "lab"
control_plane_endpoint = "lb.example.com:7443"
bundle = "/opt/kforge/bundle"
[networking]
pod_cidr = "10.32.0.0/16"
[etcd.local]
data_dir = "/data/etcd"
server_cert_sans = ["etcd.example.com"]
extra_args = { snapshot-count = "5000" }
[certificates]
cert_validity = "90d"
key_algorithm = "rsa-2048"
[apiserver]
cert_sans = ["api.example.com", "10.0.0.100"]
extra_args = { audit-log-maxage = "30" }
[[apiserver.extra_volumes]]
name = "audit"
host_path = "/var/log/audit"
mount_path = "/var/log/audit"
path_type = "DirectoryOrCreate"
[kubelet]
max_pods = 60
system_reserved = { cpu = "500m" }
fail_swap_on = false
[addons.dns]
upstreams = ["10.0.0.1"]
[addons.cni]
flannel_backend = "host-gw"
[[hosts]]
name = "cp1"
address = "192.0.2.10"
internal_address = "10.0.0.10"
roles = ["control-plane", "worker"]
labels = { zone = "a" }
taints = ["dedicated=infra:NoSchedule"]
[hosts.ssh]
user = "admin"
port = 2222
bastion = "jump.example.com"
[[hosts]]
name = "w1"
address = "192.0.2.11"
roles = ["worker"]
`), "full.toml")
	if err != nil {
		t.Fatalf("decoding the test config: %v", err)
	}
	for _, tc := range []struct {
		name string
		c    *Cluster
	}{
		{"defaults with a host", func() *Cluster {
			c := Default()
			c.Hosts = []Host{{Name: "h1", Address: "10.0.0.1", Roles: []string{RoleControlPlane},
				KubeletExtraArgs: map[string]string{"cgroup-root": "/h1"}}}
			SetDefaults(c)
			return c
		}()},
		{"every key set", full},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Encode(tc.c)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(b, "encoded.toml")
			if err != nil {
				t.Fatalf("decoding the encoded config: %v\n%s", err, b)
			}
			if d := cmp.Diff(tc.c, got); d != "" {
				t.Errorf("round trip changed the config (-want +got):\n%s", d)
			}
		})
	}
}

// The copy of cluster.toml every host gets keeps each node's settings and nothing of how
// the operator's machine reaches the hosts.
func TestEncodeForHosts(t *testing.T) {
	c, err := Decode([]byte(`
bundle = "/home/op/bundle"
[[hosts]]
name = "cp1"
address = "203.0.113.10"
internal_address = "10.0.0.10"
roles = ["control-plane"]
[hosts.ssh]
user = "opadmin"
port = 2222
key = "/home/op/.ssh/lab_key"
known_hosts = "/home/op/.ssh/lab_known"
bastion = "jumpuser@jump.example.com:2200"
[[hosts]]
name = "w1"
address = "10.0.0.11"
roles = ["worker"]
labels = { zone = "a" }
taints = ["dedicated=infra:NoSchedule"]
kubelet_extra_args = { cgroup-root = "/w1" }
`), "op.toml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := EncodeForHosts(c, "/var/lib/kforge/bundle")
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"203.0.113.10", "opadmin", "2222", "lab_key", "lab_known", "jump.example.com", "/home/op"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("the hosts' cluster.toml holds %q:\n%s", secret, b)
		}
	}
	got, err := Decode(b, "remote.toml")
	if err != nil {
		t.Fatalf("the hosts' cluster.toml does not decode: %v\n%s", err, b)
	}
	if got.Bundle != "/var/lib/kforge/bundle" {
		t.Errorf("bundle = %q", got.Bundle)
	}
	if got.Hosts[0].NodeIP() != "10.0.0.10" {
		t.Errorf("cp1's node IP = %q, want 10.0.0.10", got.Hosts[0].NodeIP())
	}
	w := got.Hosts[1]
	if d := cmp.Diff(c.Hosts[1].Labels, w.Labels); d != "" {
		t.Errorf("labels (-want +got):\n%s", d)
	}
	if d := cmp.Diff(c.Hosts[1].Taints, w.Taints); d != "" {
		t.Errorf("taints (-want +got):\n%s", d)
	}
	if d := cmp.Diff(c.Hosts[1].KubeletExtraArgs, w.KubeletExtraArgs); d != "" {
		t.Errorf("kubelet extra args (-want +got):\n%s", d)
	}
}
