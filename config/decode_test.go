package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// defaulted returns Default() changed by edit and defaulted again, the way Decode leaves a
// file that sets what edit sets.
func defaulted(edit func(c *Cluster)) *Cluster {
	c := &Cluster{}
	edit(c)
	SetDefaults(c)
	return c
}

func TestDecodeGood(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want *Cluster
	}{
		{
			name: "empty file is all defaults",
			doc:  "",
			want: Default(),
		},
		{
			name: "comments and blank lines only",
			doc:  "# nothing here\n\n   \n",
			want: Default(),
		},
		{
			name: "byte order mark and CRLF line ends",
			doc:  "\xef\xbb\xbfname = \"lab\"\r\n[networking]\r\ndns_domain = \"lab.internal\"\r\n",
			want: defaulted(func(c *Cluster) { c.Name = "lab"; c.Networking.DNSDomain = "lab.internal" }),
		},
		{
			name: "three hosts with ssh tables",
			doc: `
name = "prod"
kubernetes_version = "1.34.2"
control_plane_endpoint = "lb.example.com"

[[hosts]]
name = "cp-1"
address = "192.0.2.10"
internal_address = "10.0.0.10"
roles = ["control-plane"]
labels = { "topology.kubernetes.io/zone" = "a" }
taints = ["dedicated=infra:NoSchedule"]
[hosts.ssh]
user = "admin"
port = 2222
bastion = "ops@jump.example.com:22"

[[hosts]]
name = "w-1"
address = "w-1.example.com"
internal_address = "10.0.0.11"
roles = ["worker"]

[[hosts]]
name = "w-2"
address = "192.0.2.12"
roles = ["worker"]
ssh = { key = "/home/me/.ssh/id", known_hosts = "/home/me/.ssh/kh" }
`,
			want: defaulted(func(c *Cluster) {
				c.Name = "prod"
				c.KubernetesVersion = "v1.34.2"
				c.ControlPlaneEndpoint = "lb.example.com"
				c.Hosts = []Host{
					{
						Name: "cp-1", Address: "192.0.2.10", InternalAddress: "10.0.0.10",
						Roles:  []string{RoleControlPlane},
						Labels: map[string]string{"topology.kubernetes.io/zone": "a"},
						Taints: []string{"dedicated=infra:NoSchedule"},
						SSH:    SSH{User: "admin", Port: 2222, Bastion: "ops@jump.example.com:22"},
					},
					{Name: "w-1", Address: "w-1.example.com", InternalAddress: "10.0.0.11", Roles: []string{RoleWorker}},
					{
						Name: "w-2", Address: "192.0.2.12", Roles: []string{RoleWorker},
						SSH: SSH{Key: "/home/me/.ssh/id", KnownHosts: "/home/me/.ssh/kh"},
					},
				}
			}),
		},
		{
			name: "external etcd, IPv6, extra args and volumes, kubelet maps, durations",
			doc: `
image_repository = "registry.example.com:5000/k8s/"
[networking]
pod_cidr = "fd00:10:244::/56"
service_cidr = "fd00:10:96::/112"
dns_domain = "prod.internal"
[etcd.external]
endpoints = ["https://[fd00::5]:2379", "https://etcd-1.example.com:2379"]
ca_file = "/etc/etcd/ca.crt"
cert_file = "/etc/etcd/client.crt"
key_file = "/etc/etcd/client.key"
[certificates]
ca_validity = "20y"
cert_validity = "90d"
key_algorithm = "rsa-3072"
[apiserver]
cert_sans = ["api.example.com", "*.api.example.com", "fd00::100"]
extra_args.audit-log-maxage = "30"
[[apiserver.extra_volumes]]
name = "audit"
host_path = "/var/log/audit"
mount_path = "/var/log/audit"
path_type = "DirectoryOrCreate"
[scheduler]
extra_volumes = [{ name = "cfg", host_path = "/etc/s.yaml", mount_path = "/etc/s.yaml", read_only = true, path_type = "File" }]
[kubelet]
cgroup_driver = "systemd"
max_pods = 250
fail_swap_on = false
system_reserved = { cpu = "500m", memory = "1Gi" }
eviction_hard = { "memory.available" = "100Mi", "nodefs.available" = "10%" }
[addons]
cni = { plugin = "none" }
dns.upstreams = ["2606:4700:4700::1111", "[2606:4700:4700::1001]:53"]
dns.replicas = 3
kube_proxy = { disabled = true, mode = "nftables" }
`,
			want: defaulted(func(c *Cluster) {
				no := false
				c.ImageRepository = "registry.example.com:5000/k8s"
				c.Networking = Networking{PodCIDR: "fd00:10:244::/56", ServiceCIDR: "fd00:10:96::/112", DNSDomain: "prod.internal"}
				c.Etcd.External = &ExternalEtcd{
					Endpoints: []string{"https://[fd00::5]:2379", "https://etcd-1.example.com:2379"},
					CAFile:    "/etc/etcd/ca.crt", CertFile: "/etc/etcd/client.crt", KeyFile: "/etc/etcd/client.key",
				}
				c.Certificates = Certificates{
					CAValidity:   Duration{20 * 365 * 24 * time.Hour},
					CertValidity: Duration{90 * 24 * time.Hour},
					KeyAlgorithm: KeyRSA3072,
				}
				c.APIServer = APIServer{
					CertSANs:     []string{"api.example.com", "*.api.example.com", "fd00::100"},
					ExtraArgs:    map[string]string{"audit-log-maxage": "30"},
					ExtraVolumes: []HostPathMount{{Name: "audit", HostPath: "/var/log/audit", MountPath: "/var/log/audit", PathType: "DirectoryOrCreate"}},
				}
				c.Scheduler.ExtraVolumes = []HostPathMount{{Name: "cfg", HostPath: "/etc/s.yaml", MountPath: "/etc/s.yaml", ReadOnly: true, PathType: "File"}}
				c.Kubelet = Kubelet{
					CgroupDriver:   "systemd",
					MaxPods:        250,
					FailSwapOn:     &no,
					SystemReserved: map[string]string{"cpu": "500m", "memory": "1Gi"},
					EvictionHard:   map[string]string{"memory.available": "100Mi", "nodefs.available": "10%"},
				}
				c.Addons.CNI.Plugin = CNINone
				c.Addons.DNS = DNS{Upstreams: []string{"2606:4700:4700::1111", "[2606:4700:4700::1001]:53"}, Replicas: 3}
				c.Addons.KubeProxy = KubeProxy{Disabled: true, Mode: "nftables"}
			}),
		},
		{
			// The e2e test of an expired cluster lets certificates lapse within minutes.
			name: "certificates valid for minutes",
			doc:  "[certificates]\ncert_validity = \"6m\"\n[controller_manager.extra_args]\ncluster-signing-duration = \"6m0s\"\n",
			want: defaulted(func(c *Cluster) {
				c.Certificates.CertValidity = Duration{6 * time.Minute}
				c.ControllerManager.ExtraArgs = map[string]string{"cluster-signing-duration": "6m0s"}
			}),
		},
		{
			name: "dns disabled with zero replicas",
			doc:  "[addons.dns]\ndisabled = true\nreplicas = 0\n",
			want: defaulted(func(c *Cluster) { c.Addons.DNS.Disabled = true }),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode([]byte(tc.doc), "cluster.toml")
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Decode mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// decodeProblems decodes doc and returns the problems of the *DecodeError it must fail with.
func decodeProblems(t *testing.T, doc string) []Problem {
	t.Helper()
	c, err := Decode([]byte(doc), "cluster.toml")
	if err == nil {
		t.Fatalf("Decode succeeded, want a *DecodeError; got %+v", c)
	}
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("Decode error is %T (%v), want *DecodeError", err, err)
	}
	if de.File != "cluster.toml" {
		t.Errorf("DecodeError.File = %q, want %q", de.File, "cluster.toml")
	}
	return de.Problems
}

func TestDecodeUnknownKeys(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []Problem
	}{
		{
			name: "several at once, with hints",
			doc: `name = "prod"
nmae = "x"
pod_cidr = "10.1.0.0/16"
[networking]
pod-cidr = "10.0.0.0/16"
[etcd.locall]
data_dir = "/x"
[[hosts]]
name = "a"
adress = "10.0.0.1"
[[hosts]]
name = "b"
ssh = { port = 22, usr = "me" }
[hosts.ssh.extra]
x = 1
`,
			want: []Problem{
				{Line: 2, Column: 1, Key: "nmae", Message: `unknown key "nmae"; did you mean "name"?`},
				{Line: 3, Column: 1, Key: "pod_cidr", Message: `unknown key "pod_cidr"; did you mean "networking.pod_cidr"?`},
				{Line: 5, Column: 1, Key: "networking.pod-cidr", Message: `unknown key "networking.pod-cidr"; did you mean "networking.pod_cidr"?`},
				{Line: 6, Column: 7, Key: "etcd.locall", Message: `unknown key "etcd.locall"; did you mean "etcd.local"?`},
				{Line: 10, Column: 1, Key: "hosts[0].adress", Message: `unknown key "hosts[0].adress"; did you mean "hosts[0].address"?`},
				{Line: 13, Column: 20, Key: "hosts[1].ssh.usr", Message: `unknown key "hosts[1].ssh.usr"; did you mean "hosts[1].ssh.user"?`},
				{Line: 14, Column: 12, Key: "hosts[1].ssh.extra", Message: `unknown key "hosts[1].ssh.extra"`},
			},
		},
		{
			name: "dotted key",
			doc:  "addons.dns.replica = 3\n",
			want: []Problem{
				{Line: 1, Column: 12, Key: "addons.dns.replica", Message: `unknown key "addons.dns.replica"; did you mean "addons.dns.replicas"?`},
			},
		},
		{
			name: "quoted key",
			doc:  "[kubelet]\n\"max pods\" = 3\n",
			want: []Problem{
				{Line: 2, Column: 1, Key: `kubelet."max pods"`, Message: `unknown key "kubelet.\"max pods\""; did you mean "kubelet.max_pods"?`},
			},
		},
		{
			name: "wrong case is unknown",
			doc:  "Name = \"x\"\n",
			want: []Problem{
				{Line: 1, Column: 1, Key: "Name", Message: `unknown key "Name"; did you mean "name"?`},
			},
		},
		{
			name: "key one table down",
			doc:  "[[hosts]]\nport = 22\n",
			want: []Problem{
				{Line: 2, Column: 1, Key: "hosts[0].port", Message: `unknown key "hosts[0].port"; did you mean "hosts[0].ssh.port"?`},
			},
		},
		{
			name: "column after a byte order mark",
			doc:  "\xef\xbb\xbf[etcd]\nlocall = {}\nname.x = 1\n",
			want: []Problem{
				{Line: 2, Column: 1, Key: "etcd.locall", Message: `unknown key "etcd.locall"; did you mean "etcd.local"?`},
				{Line: 3, Column: 1, Key: "etcd.name", Message: `unknown key "etcd.name"`},
			},
		},
		{
			name: "no hint when nothing is close",
			doc:  "[addons]\nmetrics_server = true\n",
			want: []Problem{
				{Line: 2, Column: 1, Key: "addons.metrics_server", Message: `unknown key "addons.metrics_server"`},
			},
		},
		{
			name: "unknown keys and wrong types together",
			doc:  "name = 3\nfoo = 1\n",
			want: []Problem{
				{Line: 1, Column: 1, Key: "name", Message: "name: want a string, not an integer"},
				{Line: 2, Column: 1, Key: "foo", Message: `unknown key "foo"`},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := decodeProblems(t, tc.doc)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("problems mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeTypeErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []Problem
	}{
		{
			name: "integer for a string",
			doc:  "[networking]\npod_cidr = 10\n",
			want: []Problem{{Line: 2, Column: 1, Key: "networking.pod_cidr", Message: "networking.pod_cidr: want a string, not an integer"}},
		},
		{
			name: "string for an integer, inside an array of tables",
			doc:  "[[hosts]]\n[[hosts]]\nssh.port = \"22\"\n",
			want: []Problem{{Line: 3, Column: 5, Key: "hosts[1].ssh.port", Message: "hosts[1].ssh.port: want an integer, not a string"}},
		},
		{
			name: "integer for a duration",
			doc:  "[certificates]\nca_validity = 5\n",
			want: []Problem{{Line: 2, Column: 1, Key: "certificates.ca_validity", Message: `certificates.ca_validity: want a duration string such as "365d", "10y" or "8760h", not an integer`}},
		},
		{
			name: "bad duration",
			doc:  "[certificates]\ncert_validity = \"1 year\"\n",
			want: []Problem{{Line: 2, Column: 1, Key: "certificates.cert_validity", Message: `certificates.cert_validity: invalid duration "1 year": use Go syntax ("8760h") or days and years ("365d", "10y")`}},
		},
		{
			name: "integer out of range",
			doc:  "[kubelet]\nmax_pods = 3_000_000_000\n",
			want: []Problem{{Line: 2, Column: 1, Key: "kubelet.max_pods", Message: "kubelet.max_pods: 3_000_000_000 is out of range; want at most 2147483647"}},
		},
		{
			name: "array element of the wrong type",
			doc:  "hosts = [{ name = \"a\", roles = [\"worker\", 1] }]\n",
			want: []Problem{{Line: 1, Column: 43, Key: "hosts[0].roles[1]", Message: "hosts[0].roles[1]: want a string, not an integer"}},
		},
		{
			name: "table for a string",
			doc:  "[name]\nx = 1\n",
			want: []Problem{{Line: 1, Column: 2, Key: "name", Message: "name: want a string, not a table"}},
		},
		{
			name: "string for a table",
			doc:  "etcd = \"local\"\n",
			want: []Problem{{Line: 1, Column: 1, Key: "etcd", Message: "etcd: want a table ([etcd]), not a string"}},
		},
		{
			name: "table for an array of tables",
			doc:  "[hosts]\nname = \"a\"\n",
			want: []Problem{{Line: 1, Column: 2, Key: "hosts", Message: "hosts: want an array of tables ([[hosts]]), not a table"}},
		},
		{
			name: "array of tables for a table",
			doc:  "[[networking]]\n",
			want: []Problem{{Line: 1, Column: 3, Key: "networking", Message: "networking: want a table ([networking]), not an array of tables"}},
		},
		{
			name: "string for a map value",
			doc:  "[apiserver.extra_args]\nv = 2\n",
			want: []Problem{{Line: 2, Column: 1, Key: "apiserver.extra_args.v", Message: "apiserver.extra_args.v: want a string, not an integer"}},
		},
		{
			name: "scalar for an array",
			doc:  "[apiserver]\ncert_sans = \"a.example.com\"\n",
			want: []Problem{{Line: 2, Column: 1, Key: "apiserver.cert_sans", Message: "apiserver.cert_sans: want an array of strings, not a string"}},
		},
		{
			name: "dotted key through a string",
			doc:  "name.first = \"x\"\n",
			want: []Problem{{Line: 1, Column: 1, Key: "name", Message: "name: want a string, not a table"}},
		},
		{
			name: "several at once",
			doc:  "name = true\n[addons.dns]\nreplicas = \"two\"\ndisabled = \"no\"\n",
			want: []Problem{
				{Line: 1, Column: 1, Key: "name", Message: "name: want a string, not a boolean"},
				{Line: 3, Column: 1, Key: "addons.dns.replicas", Message: "addons.dns.replicas: want an integer, not a string"},
				{Line: 4, Column: 1, Key: "addons.dns.disabled", Message: "addons.dns.disabled: want true or false, not a string"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := decodeProblems(t, tc.doc)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("problems mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeSyntaxAndTOMLErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []Problem
	}{
		{
			name: "missing value",
			doc:  "name = \"a\"\nversion =\n",
			want: []Problem{{Line: 2, Column: 10, Message: "unexpected character U+000A at start of value"}},
		},
		{
			name: "unclosed table header",
			doc:  "[networking\n",
			want: []Problem{{Line: 1, Column: 12, Message: "expected ']' to close table name"}},
		},
		{
			name: "duplicate key, reported by go-toml",
			doc:  "name = \"a\"\nname = \"b\"\n",
			want: []Problem{{Line: 2, Column: 1, Key: "name", Message: "name: key name is already defined"}},
		},
		{
			name: "duplicate key in an array of tables",
			doc:  "[[hosts]]\nname = \"a\"\n[[hosts]]\nname = \"b\"\nname = \"c\"\n",
			want: []Problem{{Line: 5, Column: 1, Key: "hosts[1].name", Message: "hosts[1].name: key name is already defined"}},
		},
		{
			name: "table defined twice",
			doc:  "[networking]\n[kubelet]\n[networking]\n",
			want: []Problem{{Line: 3, Column: 2, Key: "networking", Message: "networking: table networking already exists"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := decodeProblems(t, tc.doc)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("problems mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeErrorString(t *testing.T) {
	err := &DecodeError{File: "c.toml", Problems: []Problem{
		{Line: 3, Column: 7, Key: "etcd.locall", Message: `unknown key "etcd.locall"`},
		{Line: 4, Message: "no column"},
		{Message: "no position"},
	}}
	want := "c.toml:3:7: unknown key \"etcd.locall\"\nc.toml:4: no column\nc.toml: no position"
	if got := err.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// validationErrors decodes doc and returns the FieldErrors of the *ValidationError it must
// fail with.
func validationErrors(t *testing.T, doc string) []FieldError {
	t.Helper()
	c, err := Decode([]byte(doc), "cluster.toml")
	if err == nil {
		t.Fatalf("Decode succeeded, want a *ValidationError; got %+v", c)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Decode error is %T (%v), want *ValidationError", err, err)
	}
	if ve.File != "cluster.toml" {
		t.Errorf("ValidationError.File = %q, want %q", ve.File, "cluster.toml")
	}
	return ve.Errors
}

func TestDecodeValidationLines(t *testing.T) {
	doc := `name = "Prod"

[networking]
pod_cidr = "10.96.0.0/16"

[etcd.local]
data_dir = "var/lib/etcd"

[[hosts]]
name = "cp-1"
address = "10.96.0.7"
roles = ["control-plane"]
labels = { "example.com/ok" = "yes", "bad key!" = "x" }

[[hosts]]
name = "cp-1"
address = "192.0.2.11"
ssh.port = 0
`
	want := []FieldError{
		{Path: "hosts[1].ssh.port", Line: 18, Message: "0 is not a port; want 1-65535"},
		{Path: "name", Line: 1, Message: `"Prod" is not a DNS label; want lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters, such as "kubernetes"`},
		// service_cidr is a default: no line.
		{Path: "networking.service_cidr", Message: `"10.96.0.0/12" overlaps networking.pod_cidr "10.96.0.0/16"; want ranges that do not overlap`},
		{Path: "etcd.local.data_dir", Line: 7, Message: `"var/lib/etcd" is not an absolute path; want an absolute, clean path of a directory kforge may own, not a system directory or a parent of one, such as "/var/lib/etcd"`},
		{Path: `hosts[0].internal_address`, Line: 11, Message: `10.96.0.7 is inside networking.pod_cidr "10.96.0.0/16"; want a node address outside the pod and service ranges`},
		{Path: `hosts[0].internal_address`, Line: 11, Message: `10.96.0.7 is inside networking.service_cidr "10.96.0.0/12"; want a node address outside the pod and service ranges`},
		{Path: `hosts[0].labels."bad key!"`, Line: 13, Message: `"bad key!" is not a valid label key; ` + labelKeyWant},
		{Path: "hosts[1].name", Line: 16, Message: `"cp-1" is already used by hosts[0]; want unique host names`},
		// roles is missing: the line of the host's table.
		{Path: "hosts[1].roles", Line: 15, Message: `is empty; want "control-plane", "worker" or both`},
	}
	got := validationErrors(t, doc)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("validation errors mismatch (-want +got):\n%s", diff)
	}
}

func TestDecodeExplicitZeros(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []FieldError
	}{
		{
			name: "zero durations",
			doc:  "[certificates]\nca_validity = \"0s\"\ncert_validity = \"0d\"\n",
			want: []FieldError{
				{Path: "certificates.ca_validity", Line: 2, Message: `"0s" is not positive; want a lifetime such as "10y"`},
				{Path: "certificates.cert_validity", Line: 3, Message: `"0s" is not positive; want a lifetime such as "365d"`},
			},
		},
		{
			name: "zero dns replicas",
			doc:  "[addons.dns]\nreplicas = 0\n",
			want: []FieldError{
				{Path: "addons.dns.replicas", Line: 2, Message: "0 is less than 1; want at least 1, or set addons.dns.disabled = true"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, validationErrors(t, tc.doc)); diff != "" {
				t.Errorf("validation errors mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidationErrorString(t *testing.T) {
	tests := []struct {
		name string
		err  *ValidationError
		want string
	}{
		{
			name: "file and lines",
			err: &ValidationError{File: "cluster.toml", Errors: []FieldError{
				{Path: "networking.pod_cidr", Line: 4, Message: "bad"},
				{Path: "networking.service_cidr", Message: "defaulted"},
			}},
			want: "cluster.toml:4: networking.pod_cidr: bad\ncluster.toml: networking.service_cidr: defaulted",
		},
		{
			name: "no file",
			err:  &ValidationError{Errors: []FieldError{{Path: "name", Message: "bad"}, {Path: "version", Message: "old"}}},
			want: "name: bad\nversion: old",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDecodeErrorMessageFormat(t *testing.T) {
	_, err := Decode([]byte("[networking]\npod_cidr = \"10.244.0.0/33\"\n"), "cluster.toml")
	want := `cluster.toml:2: networking.pod_cidr: "10.244.0.0/33" is not a CIDR; want an address and prefix such as "10.244.0.0/16"`
	if err == nil || err.Error() != want {
		t.Errorf("Decode error = %v, want %s", err, want)
	}
	_, err = Decode([]byte("[etcd]\nlocall = {}\n"), "cluster.toml")
	want = `cluster.toml:2:1: unknown key "etcd.locall"; did you mean "etcd.local"?`
	if err == nil || err.Error() != want {
		t.Errorf("Decode error = %v, want %s", err, want)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "cluster.toml")
	if err := os.WriteFile(good, []byte("name = \"lab\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(good)
	if err != nil {
		t.Fatalf("Load(%s): %v", good, err)
	}
	if c.Name != "lab" || c.Networking.PodCIDR != DefaultPodCIDR {
		t.Errorf("Load(%s) = name %q, pod_cidr %q; want \"lab\" and the default", good, c.Name, c.Networking.PodCIDR)
	}

	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("\nnope = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	if want := bad + ":2:1: unknown key \"nope\""; err == nil || err.Error() != want {
		t.Errorf("Load(%s) error = %v, want %s", bad, err, want)
	}

	_, err = Load(filepath.Join(dir, "missing.toml"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "reading cluster config: ") {
		t.Errorf("Load(missing) error = %v, want a wrapped fs.ErrNotExist", err)
	}
}

// TestServerTLSBootstrap decodes kubelet.server_tls_bootstrap, and reports a kubelet flag
// that would override it with its file and line.
func TestServerTLSBootstrap(t *testing.T) {
	c, err := Decode([]byte("[kubelet]\nserver_tls_bootstrap = true\n"), "cluster.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Kubelet.ServerTLSBootstrap {
		t.Error("server_tls_bootstrap = true decoded as false")
	}
	if c, err := Decode([]byte("[kubelet]\n"), "cluster.toml"); err != nil || c.Kubelet.ServerTLSBootstrap {
		t.Errorf("server_tls_bootstrap left out: %t, %v; want false", c.Kubelet.ServerTLSBootstrap, err)
	}
	_, err = Decode([]byte("[kubelet]\nserver_tls_bootstrap = true\n[kubelet.extra_args]\nv = \"2\"\nrotate-server-certificates = \"false\"\n"), "cluster.toml")
	want := `cluster.toml:5: kubelet.extra_args.rotate-server-certificates: "false" would override kubelet.server_tls_bootstrap = true (kforge writes it to the KubeletConfiguration as serverTLSBootstrap); want server_tls_bootstrap alone`
	if err == nil || err.Error() != want {
		t.Errorf("Decode error:\n%v\nwant\n%s", err, want)
	}
}

// TestExtraArgsCannotInjectFlags checks that an extra_args value is one flag's value: a
// value that would add a kubelet flag once written to kubeadm-flags.env, a line break in
// any component's value, and a key that is not a flag name are refused with their line.
func TestExtraArgsCannotInjectFlags(t *testing.T) {
	doc := "[kubelet.extra_args]\n" +
		"v = \"2\"\n" +
		"node-labels = \"x --anonymous-auth=true\"\n" +
		"[apiserver.extra_args]\n" +
		"audit-log-path = \"/var/log/a\\n--anonymous-auth=true\"\n" +
		"\"Feature_Gates\" = \"A=true\"\n" +
		"[[hosts]]\n" +
		"name = \"cp1\"\n" +
		"address = \"10.0.0.1\"\n" +
		"roles = [\"control-plane\"]\n" +
		"kubelet_extra_args = { cgroup-root = \"/a\\\"b\" }\n"
	_, err := Decode([]byte(doc), "cluster.toml")
	want := []string{
		`cluster.toml:6: apiserver.extra_args.Feature_Gates: flag name "Feature_Gates" is not a flag name; want lowercase letters, digits and dashes, such as "feature-gates"`,
		`cluster.toml:5: apiserver.extra_args.audit-log-path: value "/var/log/a\n--anonymous-auth=true" contains a line break or control character; want one line`,
		`cluster.toml:3: kubelet.extra_args.node-labels: value "x --anonymous-auth=true" cannot be written to kubeadm-flags.env as one argument: it contains white space; want a value without white space, quotes, backslashes or '$'`,
		`cluster.toml:11: hosts[0].kubelet_extra_args.cgroup-root: value "/a\"b" cannot be written to kubeadm-flags.env as one argument: it contains '"'; want a value without white space, quotes, backslashes or '$'`,
	}
	if err == nil {
		t.Fatal("Decode accepted extra_args that inject flags")
	}
	if diff := cmp.Diff(strings.Join(want, "\n"), err.Error()); diff != "" {
		t.Errorf("Decode error (-want +got):\n%s", diff)
	}
}

// TestRenewBefore checks certificates.renew_before: 30 days when not written (a third of
// a shorter cert_validity), "0s" kept as
// "automatic renewal off", and a negative value or one not shorter than cert_validity
// refused with the field, its line and what is valid.
func TestRenewBefore(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		want    time.Duration
		wantErr string
	}{
		{name: "not written", doc: "[certificates]\n", want: 30 * 24 * time.Hour},
		{name: "written", doc: "[certificates]\nrenew_before = \"60d\"\n", want: 60 * 24 * time.Hour},
		{name: "zero turns it off", doc: "[certificates]\nrenew_before = \"0s\"\n", want: 0},
		{name: "short validity", doc: "[certificates]\ncert_validity = \"10m\"\nrenew_before = \"7m\"\n", want: 7 * time.Minute},
		{
			name:    "negative",
			doc:     "[certificates]\nrenew_before = \"-1h\"\n",
			wantErr: `cluster.toml:2: certificates.renew_before: "-1h0m0s" is negative; want a duration shorter than certificates.cert_validity, such as "30d", or "0s" to turn automatic renewal off`,
		},
		{
			name:    "not shorter than cert_validity",
			doc:     "[certificates]\ncert_validity = \"90d\"\nrenew_before = \"90d\"\n",
			wantErr: `cluster.toml:3: certificates.renew_before: "90d" is not shorter than certificates.cert_validity "90d": every certificate would be due as soon as it is renewed; want less than cert_validity, such as a twelfth of it, or "0s" to turn automatic renewal off`,
		},
		{name: "a third of a short cert_validity when not written", doc: "[certificates]\ncert_validity = \"9d\"\n", want: 3 * 24 * time.Hour},
		{name: "30 days of a long cert_validity when not written", doc: "[certificates]\ncert_validity = \"3y\"\n", want: 30 * 24 * time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Decode([]byte(tc.doc), "cluster.toml")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Decode error:\n%v\nwant one containing\n%s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Certificates.AutoRenewBefore(); got != tc.want {
				t.Errorf("AutoRenewBefore() = %s, want %s", got, tc.want)
			}
			// Encode and decode again: the value survives, "0s" included.
			b, err := Encode(c)
			if err != nil {
				t.Fatal(err)
			}
			c2, err := Decode(b, "encoded.toml")
			if err != nil {
				t.Fatalf("decoding the encoded config: %v\n%s", err, b)
			}
			if got := c2.Certificates.AutoRenewBefore(); got != tc.want {
				t.Errorf("after Encode and Decode: AutoRenewBefore() = %s, want %s", got, tc.want)
			}
		})
	}
}
