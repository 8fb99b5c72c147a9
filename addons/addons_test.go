package addons

import (
	"encoding/json"
	"errors"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	"sigs.k8s.io/yaml"

	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/internal/testutil"
)

// testCluster is the default configuration with one control-plane host, validated.
func testCluster(t *testing.T, edit func(c *config.Cluster)) *config.Cluster {
	t.Helper()
	c := &config.Cluster{Hosts: []config.Host{{Name: "cp1", Address: "10.77.0.11", Roles: []string{config.RoleControlPlane}}}}
	if edit != nil {
		edit(c)
	}
	config.SetDefaults(c)
	if err := c.Validate(); err != nil {
		t.Fatalf("test configuration is invalid: %v", err)
	}
	return c
}

func mustObjects(t *testing.T, c *config.Cluster, name string) []Object {
	t.Helper()
	objs, err := Objects(c, name)
	if err != nil {
		t.Fatalf("Objects(%q): %v", name, err)
	}
	return objs
}

func find[T Object](t *testing.T, objs []Object, name string) T {
	t.Helper()
	for _, o := range objs {
		if v, ok := o.(T); ok && o.GetName() == name {
			return v
		}
	}
	var zero T
	t.Fatalf("no %T named %q among %d objects", zero, name, len(objs))
	return zero
}

func TestGolden(t *testing.T) {
	c := testCluster(t, nil)
	for _, a := range All() {
		t.Run(a.Name, func(t *testing.T) {
			objs := mustObjects(t, c, a.Name)
			got, err := Render(objs)
			if err != nil {
				t.Fatal(err)
			}
			again, err := Render(mustObjects(t, c, a.Name))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(got), string(again)); diff != "" {
				t.Fatalf("two renders of the same configuration differ (-first +second):\n%s", diff)
			}
			testutil.Golden(t, a.Name+".yaml", got)
		})
	}
}

// TestObjectsAreWellFormed checks what server-side apply relies on: a kind the client
// scheme knows, a name, a namespace exactly for namespaced kinds, and an explicit protocol
// on every port (it is part of the ports' merge key).
func TestObjectsAreWellFormed(t *testing.T) {
	c := testCluster(t, nil)
	clusterScoped := []string{"Namespace", "ClusterRole", "ClusterRoleBinding"}
	for _, a := range All() {
		t.Run(a.Name, func(t *testing.T) {
			objs := mustObjects(t, c, a.Name)
			if len(objs) == 0 {
				t.Fatal("no objects")
			}
			seen := map[string]bool{}
			for i, o := range objs {
				gvk := o.GetObjectKind().GroupVersionKind()
				kinds, _, err := scheme.Scheme.ObjectKinds(o)
				if err != nil {
					t.Fatalf("object %d (%T): %v", i, o, err)
				}
				if !slices.Contains(kinds, gvk) {
					t.Errorf("%s: TypeMeta says %v, the scheme says %v", Describe(o), gvk, kinds)
				}
				if o.GetName() == "" {
					t.Errorf("object %d (%s) has no name", i, gvk.Kind)
				}
				if namespaced := !slices.Contains(clusterScoped, gvk.Kind); namespaced != (o.GetNamespace() != "") {
					t.Errorf("%s: namespace %q is wrong for a kind that is namespaced=%v", Describe(o), o.GetNamespace(), namespaced)
				}
				if seen[Describe(o)] {
					t.Errorf("%s appears twice", Describe(o))
				}
				seen[Describe(o)] = true
				if o.GetLabels()[ManagedByLabel] != ManagedByValue {
					t.Errorf("%s lacks the label %s=%s", Describe(o), ManagedByLabel, ManagedByValue)
				}
				if ps := podSpec(o); ps != nil {
					// Selectors are immutable: the label must stay out of them and of
					// the pod template it would have to match.
					var sel, tmpl map[string]string
					switch w := o.(type) {
					case *appsv1.Deployment:
						sel, tmpl = w.Spec.Selector.MatchLabels, w.Spec.Template.Labels
					case *appsv1.DaemonSet:
						sel, tmpl = w.Spec.Selector.MatchLabels, w.Spec.Template.Labels
					}
					if _, ok := sel[ManagedByLabel]; ok {
						t.Errorf("%s: the selector carries %s", Describe(o), ManagedByLabel)
					}
					for k, v := range sel {
						if tmpl[k] != v {
							t.Errorf("%s: the pod template lacks selector label %s=%s", Describe(o), k, v)
						}
					}
				}
				if svc, ok := o.(*corev1.Service); ok {
					for _, p := range svc.Spec.Ports {
						if p.Protocol == "" {
							t.Errorf("%s: port %q has no protocol", Describe(o), p.Name)
						}
					}
				}
				for _, ctr := range containers(o) {
					for _, p := range ctr.Ports {
						if p.Protocol == "" {
							t.Errorf("%s: container %s port %q has no protocol", Describe(o), ctr.Name, p.Name)
						}
					}
				}
			}
			if objs[0].GetObjectKind().GroupVersionKind().Kind != "Namespace" {
				for _, o := range objs[1:] {
					if o.GetObjectKind().GroupVersionKind().Kind == "Namespace" {
						t.Errorf("%s is not first: later objects live in it", Describe(o))
					}
				}
			}
		})
	}
}

// containers lists the init and regular containers of a workload object.
func containers(o Object) []corev1.Container {
	var spec *corev1.PodSpec
	switch w := o.(type) {
	case *appsv1.Deployment:
		spec = &w.Spec.Template.Spec
	case *appsv1.DaemonSet:
		spec = &w.Spec.Template.Spec
	default:
		return nil
	}
	return append(slices.Clone(spec.InitContainers), spec.Containers...)
}

func podSpec(o Object) *corev1.PodSpec {
	switch w := o.(type) {
	case *appsv1.Deployment:
		return &w.Spec.Template.Spec
	case *appsv1.DaemonSet:
		return &w.Spec.Template.Spec
	}
	return nil
}

func TestUpstreams(t *testing.T) {
	tests := []struct {
		name      string
		upstreams []string
		want      []string
		wantErr   bool
	}{
		{name: "none uses the node's resolv.conf", want: []string{"/etc/resolv.conf"}},
		{name: "IPv4 without port", upstreams: []string{"10.77.0.1"}, want: []string{"10.77.0.1"}},
		{name: "IPv4 with port", upstreams: []string{"10.77.0.1:5353"}, want: []string{"10.77.0.1:5353"}},
		{name: "IPv6 without port", upstreams: []string{"fd00::53"}, want: []string{"fd00::53"}},
		{name: "IPv6 with port", upstreams: []string{"[fd00::53]:5353"}, want: []string{"[fd00::53]:5353"}},
		{name: "IPv6 written long is made canonical", upstreams: []string{"fd00:0:0:0:0:0:0:53"}, want: []string{"fd00::53"}},
		{name: "several keep their order", upstreams: []string{"10.77.0.2", "10.77.0.1:53"}, want: []string{"10.77.0.2", "10.77.0.1:53"}},
		{name: "a host name is refused", upstreams: []string{"dns.example.com"}, wantErr: true},
		{name: "port 0 is refused", upstreams: []string{"10.77.0.1:0"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := config.Default()
			c.Addons.DNS.Upstreams = tc.upstreams
			got, err := Upstreams(c)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Upstreams() error = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				if _, err := CoreDNSObjects(c); err == nil {
					t.Error("CoreDNSObjects() accepted the bad upstream")
				}
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Upstreams() (-want +got):\n%s", diff)
			}
			corefile, err := Corefile(c)
			if err != nil {
				t.Fatal(err)
			}
			if line := "forward . " + strings.Join(tc.want, " ") + " {"; !strings.Contains(corefile, line) {
				t.Errorf("Corefile lacks %q:\n%s", line, corefile)
			}
		})
	}
}

func TestCorefileUsesDNSDomain(t *testing.T) {
	c := testCluster(t, func(c *config.Cluster) { c.Networking.DNSDomain = "prod.internal" })
	cm := find[*corev1.ConfigMap](t, mustObjects(t, c, CoreDNS), "coredns")
	if want := "kubernetes prod.internal in-addr.arpa ip6.arpa {"; !strings.Contains(cm.Data["Corefile"], want) {
		t.Errorf("Corefile lacks %q:\n%s", want, cm.Data["Corefile"])
	}
}

func TestDNSService(t *testing.T) {
	tests := []struct {
		name, podCIDR, serviceCIDR string
		want                       string
	}{
		{name: "default", want: "10.96.0.10"},
		{name: "other IPv4 range", serviceCIDR: "10.32.0.0/16", want: "10.32.0.10"},
		{name: "IPv6", podCIDR: "fd00:10:244::/56", serviceCIDR: "fd00:10:96::/112", want: "fd00:10:96::a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testCluster(t, func(c *config.Cluster) {
				c.Networking.PodCIDR, c.Networking.ServiceCIDR = tc.podCIDR, tc.serviceCIDR
			})
			objs := mustObjects(t, c, CoreDNS)
			svc := find[*corev1.Service](t, objs, "kube-dns")
			if svc.Spec.ClusterIP != tc.want {
				t.Errorf("kube-dns clusterIP = %s, want %s", svc.Spec.ClusterIP, tc.want)
			}
			var ports []string
			for _, p := range svc.Spec.Ports {
				ports = append(ports, p.Name)
			}
			if diff := cmp.Diff([]string{"dns", "dns-tcp", "metrics"}, ports); diff != "" {
				t.Errorf("kube-dns ports (-want +got):\n%s", diff)
			}
			dep := find[*appsv1.Deployment](t, objs, "coredns")
			if diff := cmp.Diff(dep.Spec.Selector.MatchLabels, svc.Spec.Selector); diff != "" {
				t.Errorf("kube-dns selects other pods than the Deployment runs (-deployment +service):\n%s", diff)
			}
		})
	}
	t.Run("range too small", func(t *testing.T) {
		c := config.Default()
		c.Networking.ServiceCIDR = "10.96.0.0/29"
		if _, err := CoreDNSObjects(c); err == nil {
			t.Error("CoreDNSObjects() accepted a service range without a 10th address")
		}
	})
}

func TestCoreDNSReplicas(t *testing.T) {
	c := testCluster(t, func(c *config.Cluster) { c.Addons.DNS.Replicas = 3 })
	dep := find[*appsv1.Deployment](t, mustObjects(t, c, CoreDNS), "coredns")
	if got := *dep.Spec.Replicas; got != 3 {
		t.Errorf("replicas = %d, want 3", got)
	}
}

func flannelNetConfOf(t *testing.T, c *config.Cluster) map[string]any {
	t.Helper()
	cm := find[*corev1.ConfigMap](t, mustObjects(t, c, Flannel), "kube-flannel-cfg")
	var got map[string]any
	if err := json.Unmarshal([]byte(cm.Data["net-conf.json"]), &got); err != nil {
		t.Fatalf("net-conf.json: %v\n%s", err, cm.Data["net-conf.json"])
	}
	return got
}

func TestFlannelNetConf(t *testing.T) {
	tests := []struct {
		name             string
		backend, podCIDR string
		serviceCIDR      string
		want             map[string]any
	}{
		{
			name:    "vxlan",
			backend: "vxlan",
			want:    map[string]any{"Network": "10.244.0.0/16", "EnableIPv4": true, "EnableIPv6": false, "Backend": map[string]any{"Type": "vxlan"}},
		},
		{
			name:    "host-gw and another pod range",
			backend: "host-gw", podCIDR: "10.64.0.0/14",
			want: map[string]any{"Network": "10.64.0.0/14", "EnableIPv4": true, "EnableIPv6": false, "Backend": map[string]any{"Type": "host-gw"}},
		},
		{
			name:    "IPv6",
			backend: "vxlan", podCIDR: "fd00:10:244::/56", serviceCIDR: "fd00:10:96::/112",
			want: map[string]any{"IPv6Network": "fd00:10:244::/56", "EnableIPv4": false, "EnableIPv6": true, "Backend": map[string]any{"Type": "vxlan"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testCluster(t, func(c *config.Cluster) {
				c.Addons.CNI.FlannelBackend = tc.backend
				c.Networking.PodCIDR, c.Networking.ServiceCIDR = tc.podCIDR, tc.serviceCIDR
			})
			if diff := cmp.Diff(tc.want, flannelNetConfOf(t, c)); diff != "" {
				t.Errorf("net-conf.json (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFlannelCNIConf(t *testing.T) {
	cm := find[*corev1.ConfigMap](t, mustObjects(t, testCluster(t, nil), Flannel), "kube-flannel-cfg")
	var got map[string]any
	if err := json.Unmarshal([]byte(cm.Data["cni-conf.json"]), &got); err != nil {
		t.Fatalf("cni-conf.json: %v", err)
	}
	want := map[string]any{
		"name":       "cbr0",
		"cniVersion": "0.3.1",
		"plugins": []any{
			map[string]any{"type": "flannel", "delegate": map[string]any{"hairpinMode": true, "isDefaultGateway": true}},
			map[string]any{"type": "portmap", "capabilities": map[string]any{"portMappings": true}},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cni-conf.json (-want +got):\n%s", diff)
	}
}

// kubeProxyConfigOf decodes config.conf from the kube-proxy ConfigMap, refusing unknown
// fields as kube-proxy does.
func kubeProxyConfigOf(t *testing.T, c *config.Cluster) *kubeproxyv1alpha1.KubeProxyConfiguration {
	t.Helper()
	cm := find[*corev1.ConfigMap](t, mustObjects(t, c, KubeProxy), "kube-proxy")
	var got kubeproxyv1alpha1.KubeProxyConfiguration
	if err := yaml.UnmarshalStrict([]byte(cm.Data["config.conf"]), &got); err != nil {
		t.Fatalf("config.conf: %v\n%s", err, cm.Data["config.conf"])
	}
	return &got
}

func TestKubeProxyConfig(t *testing.T) {
	tests := []struct {
		name                 string
		mode                 string
		podCIDR, serviceCIDR string
		wantCIDR             string
		wantHealthz, wantMet string
		// everyAddress turns security.kube_proxy_local_endpoints off.
		everyAddress bool
	}{
		{name: "iptables", mode: "iptables", wantCIDR: "10.244.0.0/16", wantHealthz: "127.0.0.1:10256", wantMet: "127.0.0.1:10249"},
		{name: "ipvs", mode: "ipvs", wantCIDR: "10.244.0.0/16", wantHealthz: "127.0.0.1:10256", wantMet: "127.0.0.1:10249"},
		{name: "nftables", mode: "nftables", wantCIDR: "10.244.0.0/16", wantHealthz: "127.0.0.1:10256", wantMet: "127.0.0.1:10249"},
		{
			name: "IPv6", mode: "iptables", podCIDR: "fd00:10:244::/56", serviceCIDR: "fd00:10:96::/112",
			wantCIDR: "fd00:10:244::/56", wantHealthz: "[::1]:10256", wantMet: "[::1]:10249",
		},
		{name: "health on every address", mode: "iptables", wantCIDR: "10.244.0.0/16", wantHealthz: "0.0.0.0:10256", wantMet: "127.0.0.1:10249", everyAddress: true},
		{
			name: "IPv6 health on every address", mode: "iptables", podCIDR: "fd00:10:244::/56", serviceCIDR: "fd00:10:96::/112",
			wantCIDR: "fd00:10:244::/56", wantHealthz: "[::]:10256", wantMet: "[::1]:10249", everyAddress: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testCluster(t, func(c *config.Cluster) {
				c.Addons.KubeProxy.Mode = tc.mode
				c.Networking.PodCIDR, c.Networking.ServiceCIDR = tc.podCIDR, tc.serviceCIDR
				if tc.everyAddress {
					off := false
					c.Security.KubeProxyLocalEndpoints = &off
				}
			})
			got := kubeProxyConfigOf(t, c)
			if got.APIVersion != "kubeproxy.config.k8s.io/v1alpha1" || got.Kind != "KubeProxyConfiguration" {
				t.Errorf("apiVersion/kind = %s/%s", got.APIVersion, got.Kind)
			}
			if string(got.Mode) != tc.mode {
				t.Errorf("mode = %q, want %q", got.Mode, tc.mode)
			}
			if got.ClusterCIDR != tc.wantCIDR {
				t.Errorf("clusterCIDR = %q, want %q", got.ClusterCIDR, tc.wantCIDR)
			}
			if got.HealthzBindAddress != tc.wantHealthz || got.MetricsBindAddress != tc.wantMet {
				t.Errorf("healthz/metrics bind = %q/%q, want %q/%q", got.HealthzBindAddress, got.MetricsBindAddress, tc.wantHealthz, tc.wantMet)
			}
			if got.ClientConnection.Kubeconfig != "/var/lib/kube-proxy/kubeconfig.conf" {
				t.Errorf("clientConnection.kubeconfig = %q", got.ClientConnection.Kubeconfig)
			}
			// An explicit 0, not absent: absent means kube-proxy's default, which writes
			// nf_conntrack_max.
			if got.Conntrack.MaxPerCore == nil || *got.Conntrack.MaxPerCore != 0 {
				t.Errorf("conntrack.maxPerCore = %v, want an explicit 0", got.Conntrack.MaxPerCore)
			}
		})
	}
}

// TestKubeProxyConfigLeavesDefaults checks that unset fields stay out of config.conf, so
// kube-proxy defaults them, instead of appearing as zeros ("syncPeriod: 0s").
func TestKubeProxyConfigLeavesDefaults(t *testing.T) {
	cm := find[*corev1.ConfigMap](t, mustObjects(t, testCluster(t, nil), KubeProxy), "kube-proxy")
	var got map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["config.conf"]), &got); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"apiVersion", "bindAddress", "clientConnection", "clusterCIDR", "conntrack", "healthzBindAddress", "kind", "metricsBindAddress", "mode"}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("config.conf top-level keys (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"maxPerCore": float64(0)}, got["conntrack"]); diff != "" {
		t.Errorf("conntrack (-want +got):\n%s", diff)
	}
}

func TestKubeProxyKubeconfig(t *testing.T) {
	tests := []struct {
		name       string
		endpoint   string
		wantServer string
	}{
		{name: "first control-plane host", wantServer: "https://10.77.0.11:6443"},
		{name: "load balancer", endpoint: "lb.example.com:7443", wantServer: "https://lb.example.com:7443"},
		{name: "IPv6 endpoint", endpoint: "[fd00::1]:6443", wantServer: "https://[fd00::1]:6443"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testCluster(t, func(c *config.Cluster) { c.ControlPlaneEndpoint = tc.endpoint })
			cm := find[*corev1.ConfigMap](t, mustObjects(t, c, KubeProxy), "kube-proxy")
			kc, err := clientcmd.Load([]byte(cm.Data["kubeconfig.conf"]))
			if err != nil {
				t.Fatalf("kubeconfig.conf: %v", err)
			}
			ctx := kc.Contexts[kc.CurrentContext]
			if ctx == nil {
				t.Fatalf("current context %q is missing", kc.CurrentContext)
			}
			cl, user := kc.Clusters[ctx.Cluster], kc.AuthInfos[ctx.AuthInfo]
			if cl == nil || user == nil {
				t.Fatalf("context %q names a missing cluster or user", kc.CurrentContext)
			}
			got := []string{cl.Server, cl.CertificateAuthority, user.TokenFile}
			want := []string{tc.wantServer, "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", "/var/run/secrets/kubernetes.io/serviceaccount/token"}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("server, CA, token file (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("no endpoint", func(t *testing.T) {
		if _, err := KubeProxyObjects(config.Default()); err == nil {
			t.Error("KubeProxyObjects() built a kubeconfig without a server")
		}
	})
}

func TestKubeProxyDaemonSet(t *testing.T) {
	c := testCluster(t, func(c *config.Cluster) { c.ImageRepository = "mirror.example.com/k8s" })
	ds := find[*appsv1.DaemonSet](t, mustObjects(t, c, KubeProxy), "kube-proxy")
	ctr := ds.Spec.Template.Spec.Containers[0]
	if want := "mirror.example.com/k8s/kube-proxy:" + c.KubernetesVersion; ctr.Image != want {
		t.Errorf("image = %q, want %q", ctr.Image, want)
	}
	want := []string{"/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf", "--hostname-override=$(NODE_NAME)"}
	if diff := cmp.Diff(want, ctr.Command); diff != "" {
		t.Errorf("command (-want +got):\n%s", diff)
	}
	// $(NODE_NAME) expands only if NODE_NAME is defined in the container.
	if !slices.ContainsFunc(ctr.Env, func(e corev1.EnvVar) bool {
		return e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName"
	}) {
		t.Errorf("NODE_NAME is not set from spec.nodeName: %+v", ctr.Env)
	}
}

// TestImagesMatchManifests checks the image table against the objects: every container's
// image is listed, and every program it runs or file it copies out of the image is among
// the image's files (or its entrypoint, for containers that give only args).
func TestImagesMatchManifests(t *testing.T) {
	c := testCluster(t, nil)
	specs := map[string]ImageSpec{}
	for _, s := range AllImages(c) {
		if _, dup := specs[s.Ref]; dup {
			t.Errorf("%s is listed twice", s.Ref)
		}
		specs[s.Ref] = s
	}
	used := map[string]bool{}
	for _, a := range All() {
		for _, o := range mustObjects(t, c, a.Name) {
			ps := podSpec(o)
			if ps == nil {
				continue
			}
			for _, ctr := range containers(o) {
				where := Describe(o) + " container " + ctr.Name
				s, ok := specs[ctr.Image]
				if !ok {
					t.Errorf("%s: image %s is not in the image table", where, ctr.Image)
					continue
				}
				used[ctr.Image] = true
				if s.Addon != a.Name {
					t.Errorf("%s: image %s is listed under add-on %q", where, ctr.Image, s.Addon)
				}
				if len(ctr.Command) == 0 {
					if len(s.Entrypoint) == 0 {
						t.Errorf("%s sets no command but image %s has no entrypoint", where, ctr.Image)
					}
					for _, f := range s.Entrypoint {
						if !slices.Contains(s.Files, f) {
							t.Errorf("image %s: entrypoint %s is not among its files", ctr.Image, f)
						}
					}
					continue
				}
				if !slices.Contains(s.Files, ctr.Command[0]) {
					t.Errorf("%s runs %s, which is not among image %s's files %q", where, ctr.Command[0], ctr.Image, s.Files)
				}
				if path.Base(ctr.Command[0]) == "cp" {
					srcs := nonFlags(ctr.Args)
					if len(srcs) < 2 {
						t.Errorf("%s: cp %q has no source and destination", where, ctr.Args)
						continue
					}
					for _, src := range srcs[:len(srcs)-1] {
						if underMount(ctr, src) {
							continue
						}
						if !slices.Contains(s.Files, src) {
							t.Errorf("%s copies %s, which is neither mounted nor among image %s's files", where, src, ctr.Image)
						}
					}
					if dst := srcs[len(srcs)-1]; !underMount(ctr, dst) {
						t.Errorf("%s copies to %s, which is not on a mounted volume", where, dst)
					}
				}
			}
		}
	}
	for ref := range specs {
		if !used[ref] {
			t.Errorf("image %s is in the table but no container uses it", ref)
		}
	}
}

func nonFlags(args []string) []string {
	var out []string
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			out = append(out, a)
		}
	}
	return out
}

func underMount(ctr corev1.Container, p string) bool {
	for _, m := range ctr.VolumeMounts {
		if dir := strings.TrimSuffix(m.MountPath, "/"); p == dir || strings.HasPrefix(p, dir+"/") {
			return true
		}
	}
	return false
}

func TestImagesFollowConfig(t *testing.T) {
	refs := func(specs []ImageSpec) []string {
		var out []string
		for _, s := range specs {
			out = append(out, s.Ref)
		}
		return out
	}
	tests := []struct {
		name string
		edit func(c *config.Cluster)
		want []string
	}{
		{
			name: "default",
			want: []string{
				"registry.k8s.io/coredns/coredns:v1.12.1",
				"registry.k8s.io/kube-proxy:v1.34.4",
				"ghcr.io/flannel-io/flannel:v0.28.10",
				"ghcr.io/flannel-io/flannel-cni-plugin:v1.8.0-flannel1",
			},
		},
		{
			name: "everything off",
			edit: func(c *config.Cluster) {
				c.Addons.DNS.Disabled, c.Addons.KubeProxy.Disabled, c.Addons.CNI.Plugin = true, true, config.CNINone
			},
		},
		{
			name: "other repository, no CNI",
			edit: func(c *config.Cluster) {
				c.ImageRepository = "mirror.example.com/k8s"
				c.Addons.CNI.Plugin = config.CNINone
			},
			want: []string{"mirror.example.com/k8s/coredns/coredns:v1.12.1", "mirror.example.com/k8s/kube-proxy:v1.34.4"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testCluster(t, tc.edit)
			if diff := cmp.Diff(tc.want, refs(Images(c))); diff != "" {
				t.Errorf("Images() (-want +got):\n%s", diff)
			}
			if got := len(AllImages(c)); got != 4 {
				t.Errorf("AllImages() lists %d images, want 4 whatever is enabled", got)
			}
		})
	}
}

func TestKubeProxyTools(t *testing.T) {
	for _, tc := range []struct {
		mode, want string
	}{{"iptables", "iptables-restore"}, {"ipvs", "ipset"}, {"nftables", "nft"}} {
		t.Run(tc.mode, func(t *testing.T) {
			c := testCluster(t, func(c *config.Cluster) { c.Addons.KubeProxy.Mode = tc.mode })
			for _, s := range Images(c) {
				if s.Addon == KubeProxy && !slices.Contains(s.Tools, tc.want) {
					t.Errorf("kube-proxy tools %q lack %s", s.Tools, tc.want)
				}
			}
		})
	}
}

// TestAllImagesServeEveryProxyMode: a bundle (AllImages) made for an iptables cluster must
// still run kube-proxy after the file switches it to nftables or ipvs.
func TestAllImagesServeEveryProxyMode(t *testing.T) {
	c := testCluster(t, func(c *config.Cluster) { c.Addons.KubeProxy.Mode = "iptables" })
	for _, s := range Images(c) {
		if s.Addon == KubeProxy && (slices.Contains(s.Tools, "nft") || slices.Contains(s.Tools, "ipset")) {
			t.Errorf("the iptables cluster's own kube-proxy image needs only iptables, got %q", s.Tools)
		}
	}
	found := false
	for _, s := range AllImages(c) {
		if s.Addon != KubeProxy {
			continue
		}
		found = true
		for _, want := range []string{"iptables-restore", "nft", "ipset"} {
			if !slices.Contains(s.Tools, want) {
				t.Errorf("the bundle's kube-proxy image lacks %s: %q", want, s.Tools)
			}
		}
	}
	if !found {
		t.Error("AllImages lists no kube-proxy image")
	}
}

func TestDisabled(t *testing.T) {
	tests := []struct {
		name       string
		edit       func(c *config.Cluster)
		wantReason map[string]string // add-on name to reason; absent means enabled
	}{
		{name: "default", wantReason: map[string]string{}},
		{
			name: "dns off",
			edit: func(c *config.Cluster) { c.Addons.DNS.Disabled = true },
			wantReason: map[string]string{
				CoreDNS: "addons.dns.disabled is true",
			},
		},
		{
			name:       "kube-proxy off",
			edit:       func(c *config.Cluster) { c.Addons.KubeProxy.Disabled = true },
			wantReason: map[string]string{KubeProxy: "addons.kube_proxy.disabled is true"},
		},
		{
			name:       "no CNI",
			edit:       func(c *config.Cluster) { c.Addons.CNI.Plugin = config.CNINone },
			wantReason: map[string]string{Flannel: `addons.cni.plugin is "none"`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testCluster(t, tc.edit)
			got := map[string]string{}
			for _, a := range All() {
				if reason, off := a.Disabled(c); off {
					got[a.Name] = reason
				}
			}
			if diff := cmp.Diff(tc.wantReason, got); diff != "" {
				t.Errorf("disabled add-ons (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLookupUnknown(t *testing.T) {
	_, err := Objects(config.Default(), "weave")
	if !errors.Is(err, ErrUnknownAddon) {
		t.Errorf("Objects(weave) error = %v, want ErrUnknownAddon", err)
	}
}

func TestToMapNeedsTypeMeta(t *testing.T) {
	if _, err := ToMap(&corev1.ConfigMap{}); err == nil {
		t.Error("ToMap() encoded an object without apiVersion and kind")
	}
	m, err := ToMap(serviceAccount("ns", "sa", nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m["status"]; ok {
		t.Error("ToMap() kept status")
	}
}

// TestConfigChangeRollsPods: a pod reads its ConfigMap once, at start, so a changed
// configuration must change the pod template, which makes the controller replace the pods.
// A change to something else leaves the template alone (no needless restart), and the same
// configuration always gives the same template.
func TestConfigChangeRollsPods(t *testing.T) {
	template := func(t *testing.T, c *config.Cluster, addon, name string) corev1.PodTemplateSpec {
		t.Helper()
		for _, o := range mustObjects(t, c, addon) {
			switch w := o.(type) {
			case *appsv1.Deployment:
				if w.Name == name {
					return w.Spec.Template
				}
			case *appsv1.DaemonSet:
				if w.Name == name {
					return w.Spec.Template
				}
			}
		}
		t.Fatalf("%s has no workload %q", addon, name)
		return corev1.PodTemplateSpec{}
	}
	tests := []struct {
		name, addon, workload string
		edit                  func(c *config.Cluster)
		rolls                 bool
	}{
		{"kube-proxy mode", KubeProxy, "kube-proxy", func(c *config.Cluster) { c.Addons.KubeProxy.Mode = "nftables" }, true},
		{"DNS upstreams", CoreDNS, "coredns", func(c *config.Cluster) { c.Addons.DNS.Upstreams = []string{"1.1.1.1"} }, true},
		{"flannel backend", Flannel, "kube-flannel-ds", func(c *config.Cluster) { c.Addons.CNI.FlannelBackend = "host-gw" }, true},
		{"DNS replicas", CoreDNS, "coredns", func(c *config.Cluster) { c.Addons.DNS.Replicas = 3 }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := template(t, testCluster(t, nil), tc.addon, tc.workload)
			if again := template(t, testCluster(t, nil), tc.addon, tc.workload); !cmp.Equal(before, again) {
				t.Fatalf("the same configuration gives two pod templates:\n%s", cmp.Diff(before, again))
			}
			after := template(t, testCluster(t, tc.edit), tc.addon, tc.workload)
			if changed := !cmp.Equal(before, after); changed != tc.rolls {
				t.Errorf("pod template changed = %v, want %v (%s)", changed, tc.rolls, cmp.Diff(before, after))
			}
		})
	}
}
