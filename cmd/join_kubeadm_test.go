package cmd

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/phases"
)

// kubeadmDerived is the configuration join derives from a cluster stock kubeadm made: no
// hosts, since kubeadm's configuration names none.
func kubeadmDerived() *config.Cluster {
	c := &config.Cluster{ControlPlaneEndpoint: "192.0.2.10:6443"}
	config.SetDefaults(c)
	return c
}

// TestJoinSelectsThisHostInKubeadmCluster: this host is the only one join knows of in a
// cluster made by kubeadm, and it may be a worker.
func TestJoinSelectsThisHostInKubeadmCluster(t *testing.T) {
	tests := []struct {
		name, node, addr string
		controlPlane     bool
		wantErr          string
	}{
		{name: "worker", node: "w1", addr: "192.0.2.20"},
		{name: "control plane", node: "cp2", addr: "192.0.2.11", controlPlane: true},
		{name: "a name that is no node name", node: "W_1", addr: "192.0.2.20", wantErr: `"W_1" is not a valid node name`},
		{name: "an address in the pod range", node: "w1", addr: "10.244.0.5", wantErr: "inside networking.pod_cidr"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := &joinOptions{node: tc.node, advertiseAddress: tc.addr, controlPlane: tc.controlPlane}
			h, err := o.selectNode(kubeadmDerived(), false)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Name != tc.node || h.NodeIP() != tc.addr || h.IsControlPlane() != tc.controlPlane {
				t.Errorf("host = %s %s control plane %v, want %s %s %v", h.Name, h.NodeIP(), h.IsControlPlane(), tc.node, tc.addr, tc.controlPlane)
			}
		})
	}
}

func TestJoinUsesStoredCluster(t *testing.T) {
	tests := []struct {
		name         string
		stored       bootstrap.StoredCluster
		certDir      string
		controlPlane bool
		wantCertDir  string
		wantErr      string
	}{
		{name: "default cert dir", stored: bootstrap.StoredCluster{CertificatesDir: "/etc/kubernetes/pki", FromKubeadm: true},
			certDir: phases.DefaultCertDir, wantCertDir: "/etc/kubernetes/pki"},
		{name: "the cluster's cert dir is taken", stored: bootstrap.StoredCluster{CertificatesDir: "/srv/pki", FromKubeadm: true},
			certDir: phases.DefaultCertDir, wantCertDir: "/srv/pki"},
		{name: "--cert-dir repeats it", stored: bootstrap.StoredCluster{CertificatesDir: "/srv/pki"},
			certDir: "/srv/pki", wantCertDir: "/srv/pki"},
		{name: "--cert-dir contradicts it", stored: bootstrap.StoredCluster{CertificatesDir: "/srv/pki"},
			certDir: "/opt/pki", wantErr: "--cert-dir /opt/pki: the cluster keeps its certificates in /srv/pki"},
		{name: "no ClusterConfiguration", stored: bootstrap.StoredCluster{},
			certDir: "/opt/pki", wantCertDir: "/opt/pki"},
		{name: "kubeadm control plane without an endpoint", stored: bootstrap.StoredCluster{FromKubeadm: true},
			certDir: phases.DefaultCertDir, controlPlane: true, wantErr: "has no controlPlaneEndpoint"},
		{name: "kubeadm control plane with an endpoint", stored: bootstrap.StoredCluster{FromKubeadm: true, KubeadmControlPlaneEndpoint: "lb:6443"},
			certDir: phases.DefaultCertDir, controlPlane: true, wantCertDir: phases.DefaultCertDir},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := &joinOptions{controlPlane: tc.controlPlane}
			o.certDir = tc.certDir
			s := tc.stored
			s.Cluster = kubeadmDerived()
			var out bytes.Buffer
			err := o.useStoredCluster(&s, phases.NewPrinter(&out))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.certDir != tc.wantCertDir {
				t.Errorf("cert dir = %s, want %s", o.certDir, tc.wantCertDir)
			}
		})
	}
}
