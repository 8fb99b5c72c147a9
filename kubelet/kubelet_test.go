package kubelet

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/internal/testutil"
)

func params(host Host) Params {
	c := config.Default()
	c.Kubelet.ExtraArgs = map[string]string{"v": "2", "node-ip": "10.0.0.99"}
	c.Kubelet.MaxPods = 50
	return Params{Cluster: c, NodeName: "cp1", NodeIP: "10.0.0.10", CertDir: "/etc/kubernetes/pki",
		ManifestsDir: "/etc/kubernetes/manifests", Host: host}
}

func TestConfigYAMLGolden(t *testing.T) {
	for name, host := range map[string]Host{
		"plain":  {CgroupDriver: "systemd"},
		"nested": {CgroupV1: true, CgroupDriver: "cgroupfs", NoCapSysResource: true},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := ConfigYAML(params(host))
			if err != nil {
				t.Fatal(err)
			}
			testutil.Golden(t, "config-"+name+".yaml", b)
		})
	}
}

func TestConfigCgroupDriver(t *testing.T) {
	p := params(Host{CgroupDriver: "systemd"})
	p.Cluster.Kubelet.CgroupDriver = "cgroupfs"
	kc, err := Config(p)
	if err != nil {
		t.Fatal(err)
	}
	if kc.CgroupDriver != "cgroupfs" {
		t.Errorf("config's cgroup_driver must win over detection, got %q", kc.CgroupDriver)
	}
	if kc.FailCgroupV1 != nil || kc.OOMScoreAdj != nil {
		t.Errorf("plain host got quirk settings: failCgroupV1=%v oomScoreAdj=%v", kc.FailCgroupV1, kc.OOMScoreAdj)
	}
	if got := kc.ClusterDNS; len(got) != 1 || got[0] != "10.96.0.10" {
		t.Errorf("clusterDNS = %v, want [10.96.0.10]", got)
	}
}

// kubelet.server_tls_bootstrap turns on the kubelet's serving certificate bootstrap; off,
// the kubelet signs its own serving certificate, as kubeadm's default.
func TestConfigServerTLSBootstrap(t *testing.T) {
	for _, on := range []bool{false, true} {
		p := params(Host{})
		p.Cluster.Kubelet.ServerTLSBootstrap = on
		kc, err := Config(p)
		if err != nil {
			t.Fatal(err)
		}
		if kc.ServerTLSBootstrap != on || !kc.RotateCertificates {
			t.Errorf("server_tls_bootstrap = %t: serverTLSBootstrap = %t, rotateCertificates = %t; want %t, true", on, kc.ServerTLSBootstrap, kc.RotateCertificates, on)
		}
	}
}

func TestFlagsEnv(t *testing.T) {
	b, err := FlagsEnv(params(Host{}))
	if err != nil {
		t.Fatal(err)
	}
	want := `KUBELET_KUBEADM_ARGS="--hostname-override=cp1 --node-ip=10.0.0.99 --v=2"` + "\n"
	if got := string(b); got != want {
		t.Errorf("FlagsEnv = %q, want %q (extra args win)", got, want)
	}
}

// TestFlagsRegisterLabelsAndTaints checks that the node's labels and taints reach the
// kubelet's registration flags, as kubeadm's nodeRegistration does, and that extra_args win.
func TestFlagsRegisterLabelsAndTaints(t *testing.T) {
	p := params(Host{})
	p.NodeLabels = map[string]string{"zone": "a", "example.com/team": "db"}
	p.RegisterTaints = []string{"dedicated=gpu:NoSchedule", "node-role.kubernetes.io/control-plane:NoSchedule"}
	b, err := FlagsEnv(p)
	if err != nil {
		t.Fatal(err)
	}
	want := `KUBELET_KUBEADM_ARGS="--hostname-override=cp1 --node-ip=10.0.0.99 --node-labels=example.com/team=db,zone=a ` +
		`--register-with-taints=dedicated=gpu:NoSchedule,node-role.kubernetes.io/control-plane:NoSchedule --v=2"` + "\n"
	if got := string(b); got != want {
		t.Errorf("FlagsEnv = %q\nwant         %q", got, want)
	}
	p.HostExtraArgs = map[string]string{"node-labels": "mine=1"}
	if got := Flags(p)["node-labels"]; got != "mine=1" {
		t.Errorf("node-labels = %q, want extra_args' %q", got, "mine=1")
	}
}

// TestFlagsEnvRefusesInjection checks that a flag whose value or name the service manager
// would split into more arguments is refused instead of written: the env file is read by
// systemd and kforge's supervisor, which split $KUBELET_KUBEADM_ARGS at white space.
func TestFlagsEnvRefusesInjection(t *testing.T) {
	for name, extra := range map[string]map[string]string{
		"space in value":   {"node-labels": "x --anonymous-auth=true"},
		"quote in value":   {"node-labels": `x" --anonymous-auth=true "`},
		"newline in value": {"v": "2\nKUBELET_EXTRA_ARGS=--anonymous-auth=true"},
		"space in name":    {"v=2 --anonymous-auth": "true"},
	} {
		t.Run(name, func(t *testing.T) {
			p := params(Host{})
			p.HostExtraArgs = extra
			if b, err := FlagsEnv(p); err == nil {
				t.Errorf("FlagsEnv wrote %q, want an error", b)
			}
		})
	}
}

func TestSystemdFiles(t *testing.T) {
	testutil.Golden(t, "kubelet.service", SystemdUnit("/usr/local/bin/kubelet"))
	testutil.Golden(t, "10-kforge.conf", SystemdDropIn("/usr/local/bin/kubelet", "/etc/kubernetes"))
}

func TestContainerdConfig(t *testing.T) {
	b := ContainerdConfig(ContainerdParams{SandboxImage: "example.test/pause:3.10.1", RestrictOOMScoreAdj: true, CNIBinDir: "/opt/cni/bin"})
	if !strings.HasPrefix(string(b), ContainerdMarker) {
		t.Error("config does not start with the kforge marker")
	}
	testutil.Golden(t, "containerd-config.toml", b)
}

// The kubelet's certificate store (client-go util/certificate) keeps
// <dir>/kubelet-client-current.pem as a link to <dir>/kubelet-client-<YYYY-MM-DD-HH-MM-SS>.pem.
func TestClientCertFileName(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	got := ClientCertFileName(time.Date(2026, 12, 3, 14, 5, 9, 999, berlin))
	if want := "kubelet-client-2026-12-03-13-05-09.pem"; got != want {
		t.Errorf("ClientCertFileName = %q, want %q", got, want)
	}
	if dir, current := filepath.Split(ClientCertPath); filepath.Clean(dir) != CertDir || current != clientCertPrefix+"-current.pem" {
		t.Errorf("ClientCertPath %s is not %s/%s-current.pem", ClientCertPath, CertDir, clientCertPrefix)
	}
}
