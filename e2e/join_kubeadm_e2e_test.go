//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kforge/kforge/e2e/lab"
	"github.com/kforge/kforge/kubelet"
)

// kubeadmInitConfig is the configuration a stock kubeadm init runs with on test host h
// (address addr): the bundle's images and nothing pulled, the lab's pod network, and what
// a test host's kubelet and kube-proxy need (cgroup v1, no conntrack sysctls in a netns).
func kubeadmInitConfig(name, addr string) string {
	return fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: %[2]s
  bindPort: 6443
nodeRegistration:
  name: %[1]s
  criSocket: unix:///run/containerd/containerd.sock
  imagePullPolicy: Never
  kubeletExtraArgs:
  - name: node-ip
    value: %[2]s
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.34.4
imageRepository: registry.k8s.io
networking:
  podSubnet: 10.244.0.0/16
# No image tags: kubeadm's own pins (etcd 3.6.5-0 for v1.34.4) are the bundle's (issue 10,
# item 25), so an air-gapped stock kubeadm init finds every image it wants.
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
oomScoreAdj: 0
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
conntrack:
  maxPerCore: 0
`, name, addr)
}

// startKubelet starts the kubelet on a test host as kforge does on hosts
// without systemd: under `kforge supervise`, with kubeadm's command line and env files. A
// stock kubeadm expects systemd to do this.
func startKubelet(t *testing.T, ctx context.Context, n *node) {
	t.Helper()
	cmd := append([]string{n.lab.Kforge, "supervise", "--name", "kubelet"}, "--env-file", kubelet.FlagsEnvPath, "--env-file", kubelet.ExtraEnvPath, "--")
	for _, a := range kubelet.Command("/usr/local/bin/kubelet", "/etc/kubernetes") {
		cmd = append(cmd, "'"+a+"'")
	}
	n.sh(ctx, "mkdir -p /var/log/kforge && setsid "+strings.Join(cmd, " ")+" </dev/null >>/var/log/kforge/kubelet.log 2>&1 &")
}

// TestJoinKubeadmCluster makes a cluster with stock kubeadm init on h1 and joins h2 to it
// with kforge join given only the endpoint, the token and the CA pin (and, air-gapped, the
// bundle to install the kubelet from): kforge takes the cluster's configuration from
// kubeadm's ClusterConfiguration and kubelet-config, as kubeadm join does.
func TestJoinKubeadmCluster(t *testing.T) {
	ctx := t.Context()
	l := newLab(t, ctx, 2)
	h1Host, _ := l.TB.Host("h1")
	h2Host, _ := l.TB.Host("h2")
	h1 := &node{t: t, h: h1Host, lab: l}
	h2 := &node{t: t, h: h2Host, lab: l}

	// h1 is prepared as an operator prepares a kubeadm host: kubeadm, the kubelet and the
	// images installed (from the bundle, by kforge's bundle phase), containerd's CRI plugin
	// and IP forwarding set up (kforge's container-runtime phase), the kubelet's host
	// flags in /etc/default/kubelet. The cluster itself is kubeadm's.
	if err := l.WriteConfig(ctx, h1.h, l.ClusterConfig(h1.h)); err != nil {
		t.Fatal(err)
	}
	for _, phase := range []string{"bundle", "container-runtime"} {
		if _, err := h1.run(ctx, "init", "phase", phase, "-f", lab.ConfigPath, "--node", "h1"); err != nil {
			t.Fatal(err)
		}
	}
	h1.sh(ctx, `echo 'KUBELET_EXTRA_ARGS="--cgroup-root=/h1"' > /etc/default/kubelet`)
	startKubelet(t, ctx, h1)
	if _, _, err := h1.h.Exec(ctx, strings.NewReader(kubeadmInitConfig("h1", h1.h.Address.String())), "sh", "-c", "cat > /root/kubeadm.yaml"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, errOut, err := h1.h.Exec(ctx, nil, "kubeadm", "init", "--config", "/root/kubeadm.yaml", "--ignore-preflight-errors=all")
	if err != nil {
		t.Fatalf("kubeadm init: %v\n%s\n%s\nkubelet log:\n%s", err, out, errOut, h1.sh(ctx, "tail -n 40 /var/log/kforge/kubelet.log"))
	}
	t.Logf("kubeadm init took %s", time.Since(start).Round(100*time.Millisecond))
	tokM, pinM := tokenRE.FindStringSubmatch(string(out)), pinRE.FindStringSubmatch(string(out))
	if tokM == nil || pinM == nil {
		t.Fatalf("kubeadm init printed no join command:\n%s", out)
	}
	// kubeadm installs no pod network; the lab's is flannel.
	if _, err := h1.run(ctx, "init", "phase", "addon", "flannel", "-f", lab.ConfigPath, "--node", "h1"); err != nil {
		t.Fatal(err)
	}
	cs := h1.adminClient(ctx)
	waitFor(t, ctx, "h1 Ready", 3*time.Minute, func() error { return nodeReady(ctx, cs, "h1") })

	h2.sh(ctx, `echo 'KUBELET_EXTRA_ARGS="--cgroup-root=/h2"' > /etc/default/kubelet`)
	start = time.Now()
	joinOut, err := h2.run(ctx, "join", h1.h.Address.String()+":6443", "--token", tokM[1], "--discovery-token-ca-cert-hash", pinM[1],
		"--advertise-address", h2.h.Address.String(), "--bundle", l.BundleDir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(joinOut, "the cluster was set up by kubeadm") {
		t.Errorf("join did not say it read kubeadm's configuration:\n%s", joinOut)
	}
	waitFor(t, ctx, "h2 Ready", 3*time.Minute, func() error { return nodeReady(ctx, cs, "h2") })
	t.Logf("kforge join of h2: Node Ready after %s", time.Since(start).Round(100*time.Millisecond))

	// h2's kubelet runs with the cluster's settings, as kubeadm's kubelet-config gives them.
	cfg := h2.sh(ctx, "cat "+kubelet.ConfigPath)
	for _, want := range []string{"cgroupDriver: cgroupfs", "- 10.96.0.10", "clusterDomain: cluster.local", "clientCAFile: /etc/kubernetes/pki/ca.crt"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("h2's %s lacks %q:\n%s", kubelet.ConfigPath, want, cfg)
		}
	}
}
