package manifests

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/internal/testutil"
)

// quantityEqual compares quantities by value; their cached string form may differ.
var quantityEqual = cmp.Comparer(func(a, b resource.Quantity) bool { return a.Cmp(b) == 0 })

func defaultParams() Params {
	return Params{Cluster: config.Default(), NodeName: "cp1", AdvertiseAddress: "10.0.0.10"}
}

// customParams has non-default directories, an external CA and etcd, extra args and extra
// volumes on every component.
func customParams() Params {
	c := config.Default()
	c.Name = "prod"
	c.ImageRepository = "mirror.example.com/k8s"
	c.Networking.DNSDomain = "prod.internal"
	c.Networking.ServiceCIDR = "10.32.0.0/16"
	c.Networking.PodCIDR = "10.64.0.0/14"
	c.Etcd.Local = nil
	c.Etcd.External = &config.ExternalEtcd{
		Endpoints: []string{"https://10.0.1.1:2379", "https://10.0.1.2:2379"},
		CAFile:    "/etc/etcd/pki/ca.crt",
		CertFile:  "/etc/etcd/pki/apiserver-client.crt",
		KeyFile:   "/etc/etcd/pki/apiserver-client.key",
	}
	c.APIServer.ExtraArgs = map[string]string{
		"audit-log-path":     "/var/log/kubernetes/audit.log",
		"authorization-mode": "Node,RBAC,Webhook",
		"secure-port":        "7443",
	}
	c.APIServer.ExtraVolumes = []config.HostPathMount{
		{Name: "audit-log", HostPath: "/var/log/kubernetes", MountPath: "/var/log/kubernetes", PathType: "DirectoryOrCreate"},
		{Name: "ca-certs", HostPath: "/etc/pki/tls/certs", MountPath: "/etc/ssl/certs", ReadOnly: true},
	}
	c.ControllerManager.ExtraArgs = map[string]string{"node-cidr-mask-size": "24", "bind-address": "0.0.0.0"}
	c.ControllerManager.ExtraVolumes = []config.HostPathMount{
		{Name: "cloud-config", HostPath: "/etc/kubernetes/cloud.conf", MountPath: "/etc/kubernetes/cloud.conf", ReadOnly: true, PathType: "File"},
	}
	c.Scheduler.ExtraArgs = map[string]string{"config": "/etc/kubernetes/scheduler-config.yaml", "profiling": "false"}
	c.Scheduler.ExtraVolumes = []config.HostPathMount{
		{Name: "scheduler-config", HostPath: "/etc/kubernetes/scheduler-config.yaml", MountPath: "/etc/kubernetes/scheduler-config.yaml", ReadOnly: true, PathType: "File"},
	}
	return Params{
		Cluster:          c,
		NodeName:         "cp1",
		AdvertiseAddress: "10.0.0.10",
		CertDir:          "/opt/kforge/pki",
		KubeconfigDir:    "/opt/kforge",
		ExternalCA:       true,
	}
}

// joinParams is a second etcd member on an IPv6 network with etcd extra args.
func joinParams() Params {
	c := config.Default()
	c.Etcd.Local.DataDir = "/data/etcd"
	c.Etcd.Local.ExtraArgs = map[string]string{"quota-backend-bytes": "8589934592", "snapshot-count": "5000"}
	return Params{
		Cluster:                 c,
		NodeName:                "cp2",
		AdvertiseAddress:        "fd00::11",
		EtcdInitialCluster:      "cp1=https://[fd00::10]:2380,cp2=https://[fd00::11]:2380",
		EtcdInitialClusterState: EtcdStateExisting,
	}
}

// verifyKubeletsParams is the default node of a cluster whose kubelets request their
// serving certificates, once every kubelet was seen serving one the cluster CA signed.
func verifyKubeletsParams() Params {
	p := defaultParams()
	p.Cluster.Kubelet.ServerTLSBootstrap = true
	p.VerifyKubelets = true
	return p
}

// TestKubeletCertificateAuthority: the apiserver verifies kubelets with the cluster CA
// only when the kubelets request serving certificates and all were seen serving one.
func TestKubeletCertificateAuthority(t *testing.T) {
	tests := []struct {
		name               string
		serverTLSBootstrap bool
		verified           bool
		want               string
	}{
		{name: "off", want: ""},
		{name: "on, kubelets not verified yet", serverTLSBootstrap: true, want: ""},
		{name: "on and verified", serverTLSBootstrap: true, verified: true, want: "/etc/kubernetes/pki/ca.crt"},
		{name: "turned off after it was verified", verified: true, want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := defaultParams()
			p.Cluster.Kubelet.ServerTLSBootstrap = tc.serverTLSBootstrap
			p.VerifyKubelets = tc.verified
			got := flags(t, mustBuild(t, APIServer, p))["kubelet-certificate-authority"]
			if got != tc.want {
				t.Errorf("--kubelet-certificate-authority = %q, want %q", got, tc.want)
			}
		})
	}
}

func allComponents() []Component {
	return append([]Component{EtcdComponent()}, ControlPlaneComponents()...)
}

// checkGolden compares got with testdata/name (UPDATE_GOLDEN=1 rewrites it).
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	testutil.Golden(t, name, got)
}

func TestGolden(t *testing.T) {
	sets := []struct {
		dir        string
		params     Params
		components []Component
	}{
		{dir: "default", params: defaultParams(), components: allComponents()},
		{dir: "custom", params: customParams(), components: ControlPlaneComponents()},
		{dir: "ipv6-join", params: joinParams(), components: []Component{EtcdComponent(), ControlPlaneComponents()[0]}},
		{dir: "verify-kubelets", params: verifyKubeletsParams(), components: ControlPlaneComponents()[:1]},
	}
	for _, set := range sets {
		for _, comp := range set.components {
			t.Run(set.dir+"/"+comp.Name, func(t *testing.T) {
				pod, err := comp.Build(set.params)
				if err != nil {
					t.Fatal(err)
				}
				out, err := Render(pod)
				if err != nil {
					t.Fatal(err)
				}
				checkGolden(t, filepath.Join(set.dir, FileName(comp.Name)), out)
			})
		}
	}
}

// flags returns the container's "--name=value" flags as a map.
func flags(t *testing.T, pod *corev1.Pod) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, arg := range pod.Spec.Containers[0].Command[1:] {
		name, value, ok := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
		if !ok || !strings.HasPrefix(arg, "--") {
			t.Fatalf("argument %q is not --name=value", arg)
		}
		if _, dup := out[name]; dup {
			t.Fatalf("flag --%s given twice", name)
		}
		out[name] = value
	}
	return out
}

func mustBuild(t *testing.T, build func(Params) (*corev1.Pod, error), p Params) *corev1.Pod {
	t.Helper()
	pod, err := build(p)
	if err != nil {
		t.Fatal(err)
	}
	return pod
}

func TestExtraArgsOverrideAndAdd(t *testing.T) {
	tests := []struct {
		name  string
		build func(Params) (*corev1.Pod, error)
		set   func(c *config.Cluster, args map[string]string)
		flag  string // overridden
		extra string // added
	}{
		{name: "apiserver", build: APIServer, set: func(c *config.Cluster, a map[string]string) { c.APIServer.ExtraArgs = a }, flag: "authorization-mode"},
		{name: "controller-manager", build: ControllerManager, set: func(c *config.Cluster, a map[string]string) { c.ControllerManager.ExtraArgs = a }, flag: "controllers"},
		{name: "scheduler", build: Scheduler, set: func(c *config.Cluster, a map[string]string) { c.Scheduler.ExtraArgs = a }, flag: "leader-elect"},
		{name: "etcd", build: Etcd, set: func(c *config.Cluster, a map[string]string) { c.Etcd.Local.ExtraArgs = a }, flag: "snapshot-count"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := flags(t, mustBuild(t, tc.build, defaultParams()))
			if _, ok := base[tc.flag]; !ok {
				t.Fatalf("--%s is not set by default; the test needs a default flag to override", tc.flag)
			}
			p := defaultParams()
			tc.set(p.Cluster, map[string]string{tc.flag: "overridden", "v": "4"})
			got := flags(t, mustBuild(t, tc.build, p))

			want := base
			want[tc.flag] = "overridden"
			want["v"] = "4"
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("flags (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFlagsSorted(t *testing.T) {
	for _, comp := range allComponents() {
		p := defaultParams()
		p.Cluster.APIServer.ExtraArgs = map[string]string{"a-first": "1", "zz-last": "2"}
		cmd := mustBuild(t, comp.Build, p).Spec.Containers[0].Command
		name := func(arg string) string { n, _, _ := strings.Cut(arg, "="); return n }
		for i := 2; i < len(cmd); i++ {
			if name(cmd[i-1]) >= name(cmd[i]) {
				t.Errorf("%s: %q comes before %q", comp.Name, cmd[i-1], cmd[i])
			}
		}
	}
}

func TestExternalCAOmitsSigningFlags(t *testing.T) {
	signing := []string{"cluster-signing-cert-file", "cluster-signing-key-file"}

	got := flags(t, mustBuild(t, ControllerManager, defaultParams()))
	if got["cluster-signing-cert-file"] != "/etc/kubernetes/pki/ca.crt" || got["cluster-signing-key-file"] != "/etc/kubernetes/pki/ca.key" {
		t.Errorf("with ca.key: signing flags = %q, %q", got["cluster-signing-cert-file"], got["cluster-signing-key-file"])
	}

	p := defaultParams()
	p.ExternalCA = true
	got = flags(t, mustBuild(t, ControllerManager, p))
	for _, f := range signing {
		if v, ok := got[f]; ok {
			t.Errorf("external CA: --%s=%s is set, want it absent", f, v)
		}
	}
	if got["root-ca-file"] != "/etc/kubernetes/pki/ca.crt" {
		t.Errorf("external CA: --root-ca-file = %q, want /etc/kubernetes/pki/ca.crt", got["root-ca-file"])
	}
}

func TestNoPodCIDR(t *testing.T) {
	p := defaultParams()
	p.Cluster.Networking.PodCIDR = ""
	got := flags(t, mustBuild(t, ControllerManager, p))
	for _, f := range []string{"allocate-node-cidrs", "cluster-cidr", "service-cluster-ip-range"} {
		if v, ok := got[f]; ok {
			t.Errorf("no pod CIDR: --%s=%s is set, want it absent", f, v)
		}
	}
}

func TestEtcdURLs(t *testing.T) {
	tests := []struct {
		name, addr     string
		want           map[string]string
		wantProbeHost  string
		wantAnnotation string
	}{
		{
			name: "ipv4",
			addr: "10.0.0.10",
			want: map[string]string{
				"listen-client-urls":  "https://127.0.0.1:2379,https://10.0.0.10:2379",
				"listen-peer-urls":    "https://10.0.0.10:2380",
				"listen-metrics-urls": "http://127.0.0.1:2381",
				"initial-cluster":     "cp1=https://10.0.0.10:2380",
			},
			wantProbeHost:  "127.0.0.1",
			wantAnnotation: "https://10.0.0.10:2379",
		},
		{
			name: "loopback",
			addr: "127.0.0.1",
			want: map[string]string{
				"listen-client-urls":  "https://127.0.0.1:2379",
				"listen-peer-urls":    "https://127.0.0.1:2380",
				"listen-metrics-urls": "http://127.0.0.1:2381",
				"initial-cluster":     "cp1=https://127.0.0.1:2380",
			},
			wantProbeHost:  "127.0.0.1",
			wantAnnotation: "https://127.0.0.1:2379",
		},
		{
			name: "ipv6",
			addr: "fd00::10",
			want: map[string]string{
				"listen-client-urls":  "https://[::1]:2379,https://[fd00::10]:2379",
				"listen-peer-urls":    "https://[fd00::10]:2380",
				"listen-metrics-urls": "http://[::1]:2381",
				"initial-cluster":     "cp1=https://[fd00::10]:2380",
			},
			wantProbeHost:  "::1",
			wantAnnotation: "https://[fd00::10]:2379",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := defaultParams()
			p.AdvertiseAddress = tc.addr
			pod := mustBuild(t, Etcd, p)
			all := flags(t, pod)
			got := map[string]string{}
			for k := range tc.want {
				got[k] = all[k]
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("flags (-want +got):\n%s", diff)
			}
			c := pod.Spec.Containers[0]
			for _, pr := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
				if pr.HTTPGet.Host != tc.wantProbeHost || pr.HTTPGet.Port.IntValue() != 2381 {
					t.Errorf("probe %s on %s:%s, want %s:2381", pr.HTTPGet.Path, pr.HTTPGet.Host, pr.HTTPGet.Port.String(), tc.wantProbeHost)
				}
			}
			if a := pod.Annotations[EtcdClientURLsAnnotation]; a != tc.wantAnnotation {
				t.Errorf("annotation = %q, want %q", a, tc.wantAnnotation)
			}
		})
	}
}

func TestEtcdNoExperimentalFlags(t *testing.T) {
	for _, p := range []Params{defaultParams(), joinParams()} {
		for name := range flags(t, mustBuild(t, Etcd, p)) {
			if strings.HasPrefix(name, "experimental-") {
				t.Errorf("etcd flag --%s: etcd 3.6 renamed the experimental flags", name)
			}
		}
	}
}

func TestProbesFollowFlags(t *testing.T) {
	p := customParams()
	api := mustBuild(t, APIServer, p).Spec.Containers[0]
	if g := api.LivenessProbe.HTTPGet; g.Host != "10.0.0.10" || g.Port.IntValue() != 7443 || g.Scheme != corev1.URISchemeHTTPS {
		t.Errorf("apiserver liveness probe = %+v, want https 10.0.0.10:7443", g)
	}
	cm := mustBuild(t, ControllerManager, p).Spec.Containers[0]
	if g := cm.LivenessProbe.HTTPGet; g.Host != "127.0.0.1" || g.Port.IntValue() != 10257 || g.Path != "/healthz" {
		t.Errorf("controller-manager bound to 0.0.0.0: liveness probe = %+v, want 127.0.0.1:10257/healthz", g)
	}

	p = defaultParams()
	p.Cluster.APIServer.ExtraArgs = map[string]string{"secure-port": "none"}
	if _, err := APIServer(p); err == nil || !strings.Contains(err.Error(), "secure-port") {
		t.Errorf("bad secure-port: error = %v, want one naming --secure-port", err)
	}
}

func TestExtraVolumes(t *testing.T) {
	pod := mustBuild(t, APIServer, customParams())
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		vols[v.Name] = v
	}
	if v := vols["ca-certs"]; v.HostPath == nil || v.HostPath.Path != "/etc/pki/tls/certs" || v.HostPath.Type != nil {
		t.Errorf("extra volume ca-certs did not replace the built-in one: %+v", v.HostPath)
	}
	if v := vols["audit-log"]; v.HostPath == nil || v.HostPath.Path != "/var/log/kubernetes" {
		t.Errorf("extra volume audit-log missing: %+v", v)
	}
	if v := vols["etcd-certs-0"]; v.HostPath == nil || v.HostPath.Path != "/etc/etcd/pki" {
		t.Errorf("external etcd certificate directory not mounted: %+v", v)
	}
	if len(pod.Spec.Volumes) != len(pod.Spec.Containers[0].VolumeMounts) {
		t.Errorf("%d volumes but %d mounts", len(pod.Spec.Volumes), len(pod.Spec.Containers[0].VolumeMounts))
	}

	tests := []struct {
		name string
		m    config.HostPathMount
		want string
	}{
		{name: "no name", m: config.HostPathMount{HostPath: "/a", MountPath: "/a"}, want: "has no name"},
		{name: "relative host path", m: config.HostPathMount{Name: "x", HostPath: "a", MountPath: "/a"}, want: "not absolute"},
		{name: "relative mount path", m: config.HostPathMount{Name: "x", HostPath: "/a", MountPath: "a"}, want: "not absolute"},
		{name: "unknown type", m: config.HostPathMount{Name: "x", HostPath: "/a", MountPath: "/a", PathType: "Dir"}, want: "unknown path type"},
		{name: "same mount path", m: config.HostPathMount{Name: "x", HostPath: "/a", MountPath: "/etc/kubernetes/pki/"}, want: "both mounted at /etc/kubernetes/pki"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := defaultParams()
			p.Cluster.APIServer.ExtraVolumes = []config.HostPathMount{tc.m}
			if _, err := APIServer(p); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestParamsErrors(t *testing.T) {
	tests := []struct {
		name  string
		build func(Params) (*corev1.Pod, error)
		edit  func(*Params)
		want  string
	}{
		{name: "no cluster", build: Scheduler, edit: func(p *Params) { p.Cluster = nil }, want: "no cluster configuration"},
		{name: "no node", build: Scheduler, edit: func(p *Params) { p.NodeName = "" }, want: "node name is empty"},
		{name: "bad address", build: APIServer, edit: func(p *Params) { p.AdvertiseAddress = "cp1.example.com" }, want: "not an IP address"},
		{name: "relative cert dir", build: APIServer, edit: func(p *Params) { p.CertDir = "pki" }, want: "certificate directory \"pki\" is not an absolute path"},
		{name: "relative kubeconfig dir", build: ControllerManager, edit: func(p *Params) { p.KubeconfigDir = "k" }, want: "kubeconfig directory \"k\" is not an absolute path"},
		{name: "bad etcd state", build: Etcd, edit: func(p *Params) { p.EtcdInitialClusterState = "joining" }, want: "etcd initial cluster state \"joining\""},
		{name: "external etcd has no local member", build: Etcd, edit: func(p *Params) { p.Cluster = customParams().Cluster }, want: "external etcd"},
		{name: "external etcd without endpoints", build: APIServer, edit: func(p *Params) {
			p.Cluster = customParams().Cluster
			p.Cluster.Etcd.External.Endpoints = nil
		}, want: "external etcd has no endpoints"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := defaultParams()
			tc.edit(&p)
			if _, err := tc.build(p); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestCommonShape(t *testing.T) {
	for _, comp := range allComponents() {
		t.Run(comp.Name, func(t *testing.T) {
			pod := mustBuild(t, comp.Build, defaultParams())
			if pod.Name != comp.Name || pod.Namespace != "kube-system" {
				t.Errorf("pod %s/%s, want kube-system/%s", pod.Namespace, pod.Name, comp.Name)
			}
			if diff := cmp.Diff(map[string]string{"component": comp.Name, "tier": "control-plane"}, pod.Labels); diff != "" {
				t.Errorf("labels (-want +got):\n%s", diff)
			}
			if !IsManaged(pod) {
				t.Error("managed-by annotation missing")
			}
			s := pod.Spec
			if !s.HostNetwork || s.PriorityClassName != "system-node-critical" || s.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("hostNetwork %v, priorityClassName %q, seccomp %v", s.HostNetwork, s.PriorityClassName, s.SecurityContext.SeccompProfile)
			}
			c := s.Containers[0]
			if c.ImagePullPolicy != corev1.PullIfNotPresent || c.LivenessProbe == nil || c.StartupProbe == nil {
				t.Errorf("pull policy %q, liveness %v, startup %v", c.ImagePullPolicy, c.LivenessProbe, c.StartupProbe)
			}
			if c.StartupProbe.FailureThreshold != 24 || c.StartupProbe.PeriodSeconds != 10 || c.StartupProbe.TimeoutSeconds != 15 {
				t.Errorf("startup probe thresholds %+v", c.StartupProbe)
			}
			if !strings.HasPrefix(c.Image, "registry.k8s.io/"+comp.Name+":") {
				t.Errorf("image %q", c.Image)
			}
		})
	}
	if IsManaged(&corev1.Pod{}) || IsManaged(nil) {
		t.Error("IsManaged true for a pod without the annotation")
	}
	if got := FileName(NameAPIServer); got != "kube-apiserver.yaml" {
		t.Errorf("FileName = %q", got)
	}
}

func TestComponents(t *testing.T) {
	type row struct{ Name, Phase string }
	var got []row
	for _, c := range allComponents() {
		if c.Desc == "" || c.Build == nil {
			t.Errorf("component %s has no description or builder", c.Name)
		}
		got = append(got, row{c.Name, c.Phase})
	}
	want := []row{{"etcd", "local"}, {"kube-apiserver", "apiserver"}, {"kube-controller-manager", "controller-manager"}, {"kube-scheduler", "scheduler"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("components (-want +got):\n%s", diff)
	}
}

func TestRenderParseRoundTrip(t *testing.T) {
	for _, p := range []Params{defaultParams(), customParams(), joinParams()} {
		for _, comp := range allComponents() {
			pod, err := comp.Build(p)
			if err != nil {
				continue // etcd with an external etcd
			}
			out, err := Render(pod)
			if err != nil {
				t.Fatal(err)
			}
			back, err := Parse(out)
			if err != nil {
				t.Fatalf("%s: %v", comp.Name, err)
			}
			if diff := cmp.Diff(pod, back, quantityEqual); diff != "" {
				t.Errorf("%s: Parse(Render(pod)) differs (-built +parsed):\n%s", comp.Name, diff)
			}
		}
	}
}

func TestRenderDeterministic(t *testing.T) {
	for _, comp := range allComponents() {
		var first []byte
		for i := range 20 {
			// A fresh build each time: map iteration order differs between builds.
			out, err := Render(mustBuild(t, comp.Build, joinParamsFor(comp)))
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				first = out
			} else if string(out) != string(first) {
				t.Fatalf("%s: render %d differs from the first", comp.Name, i)
			}
		}
	}
}

// joinParamsFor returns params with extra args for comp, so that map order matters.
func joinParamsFor(comp Component) Params {
	if comp.Name == NameEtcd {
		return joinParams()
	}
	return customParams()
}

func TestRenderShape(t *testing.T) {
	pod := mustBuild(t, Scheduler, defaultParams())
	pod.APIVersion, pod.Kind = "", ""
	out, err := Render(pod)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	if !strings.HasPrefix(s, "apiVersion: v1\nkind: Pod\n") {
		t.Errorf("render does not start with apiVersion v1, kind Pod:\n%s", s)
	}
	for _, noise := range []string{"status:", "creationTimestamp"} {
		if strings.Contains(s, noise) {
			t.Errorf("render contains %q:\n%s", noise, s)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, data, want string }{
		{name: "not yaml", data: "a: [", want: "parsing manifest"},
		{name: "deployment", data: "apiVersion: apps/v1\nkind: Deployment\n", want: `got apiVersion "apps/v1" kind "Deployment"`},
		{name: "empty", data: "", want: "want v1 Pod"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse([]byte(tc.data)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse() error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestParseEtcdMember(t *testing.T) {
	render := func(p Params) string {
		t.Helper()
		b, err := Render(mustBuild(t, Etcd, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := []struct {
		name          string
		manifest      string
		want          EtcdMember
		wantEndpoints []string
		wantErr       string
	}{
		{
			name:     "the first member",
			manifest: render(defaultParams()),
			want: EtcdMember{Name: "cp1", PeerURL: "https://10.0.0.10:2380", ClientURL: "https://10.0.0.10:2379",
				Peers: []string{"https://10.0.0.10:2379"}, InitialCluster: "cp1=https://10.0.0.10:2380", InitialClusterState: EtcdStateNew},
			wantEndpoints: []string{"https://10.0.0.10:2379"},
		},
		{
			name:     "a joined member names its peers",
			manifest: render(joinParams()),
			want: EtcdMember{Name: "cp2", PeerURL: "https://[fd00::11]:2380", ClientURL: "https://[fd00::11]:2379",
				Peers:          []string{"https://[fd00::10]:2379", "https://[fd00::11]:2379"},
				InitialCluster: "cp1=https://[fd00::10]:2380,cp2=https://[fd00::11]:2380", InitialClusterState: EtcdStateExisting},
			wantEndpoints: []string{"https://[fd00::11]:2379", "https://[fd00::10]:2379"},
		},
		{name: "not yaml", manifest: "a: [", wantErr: "error converting YAML to JSON"},
		{name: "no container", manifest: "apiVersion: v1\nkind: Pod\n", wantErr: "it has no container"},
		{name: "no peer URL", manifest: "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: etcd\n    command: [etcd, --name=cp1]\n",
			wantErr: "it has no --initial-advertise-peer-urls"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseEtcdMember([]byte(tc.manifest))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseEtcdMember error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseEtcdMember (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantEndpoints, got.Endpoints()); diff != "" {
				t.Errorf("Endpoints (-want +got):\n%s", diff)
			}
		})
	}
}
