package manifests

import (
	"errors"
	"fmt"
	"net"
	"path"
	"strconv"

	corev1 "k8s.io/api/core/v1"

	"github.com/kforge/kforge/config"
)

// Etcd returns the static pod of this node's local etcd member. It fails when the cluster
// uses an external etcd.
func Etcd(p Params) (*corev1.Pod, error) {
	p, err := p.normalize()
	if err != nil {
		return nil, fmt.Errorf("building %s manifest: %w", NameEtcd, err)
	}
	pod, err := etcd(p)
	if err != nil {
		return nil, fmt.Errorf("building %s manifest: %w", NameEtcd, err)
	}
	return pod, nil
}

func etcd(p Params) (*corev1.Pod, error) {
	c := p.Cluster
	local := c.Etcd.Local
	if local == nil {
		return nil, errors.New("the cluster uses an external etcd, there is no local member to run")
	}
	url := func(scheme, host string, port int) string {
		return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port))
	}
	lo, ip := p.loopback(), p.AdvertiseAddress
	clientURL := url("https", ip, EtcdClientPort)
	peerURL := url("https", ip, EtcdPeerPort)
	listenClient := clientURL
	if lo != ip {
		listenClient = url("https", lo, EtcdClientPort) + "," + clientURL
	}
	initialCluster := p.EtcdInitialCluster
	if initialCluster == "" {
		initialCluster = p.NodeName + "=" + peerURL
	}
	etcdDir := path.Join(p.CertDir, "etcd")
	flags := map[string]string{
		"advertise-client-urls":          clientURL,
		"cert-file":                      path.Join(etcdDir, "server.crt"),
		"client-cert-auth":               "true",
		"data-dir":                       local.DataDir,
		"feature-gates":                  "InitialCorruptCheck=true",
		"initial-advertise-peer-urls":    peerURL,
		"initial-cluster":                initialCluster,
		"initial-cluster-state":          p.EtcdInitialClusterState,
		"key-file":                       path.Join(etcdDir, "server.key"),
		"listen-client-urls":             listenClient,
		"listen-metrics-urls":            url("http", lo, EtcdMetricsPort),
		"listen-peer-urls":               peerURL,
		"name":                           p.NodeName,
		"peer-cert-file":                 path.Join(etcdDir, "peer.crt"),
		"peer-client-cert-auth":          "true",
		"peer-key-file":                  path.Join(etcdDir, "peer.key"),
		"peer-trusted-ca-file":           path.Join(etcdDir, "ca.crt"),
		"snapshot-count":                 "10000",
		"trusted-ca-file":                path.Join(etcdDir, "ca.crt"),
		"watch-progress-notify-interval": "5s",
	}
	if !path.IsAbs(local.DataDir) {
		return nil, fmt.Errorf("etcd data directory %q is not an absolute path", local.DataDir)
	}
	vols := []volume{
		{name: "etcd-data", hostPath: local.DataDir, pathType: corev1.HostPathDirectoryOrCreate},
		{name: "etcd-certs", hostPath: etcdDir, pathType: corev1.HostPathDirectoryOrCreate},
	}
	return pod(podSpec{
		name:      NameEtcd,
		image:     c.Image(config.ImageEtcd),
		command:   command("etcd", flags, local.ExtraArgs),
		requests:  requests("100m", "100Mi"),
		liveness:  httpProbe(liveness, corev1.URISchemeHTTP, lo, EtcdMetricsPort, "/health?exclude=NOSPACE&serializable=true"),
		readiness: httpProbe(readiness, corev1.URISchemeHTTP, lo, EtcdMetricsPort, "/health?serializable=false"),
		startup:   httpProbe(startup, corev1.URISchemeHTTP, lo, EtcdMetricsPort, "/health?exclude=NOSPACE&serializable=true"),
		volumes:   vols,
		annotations: map[string]string{
			EtcdClientURLsAnnotation: clientURL,
		},
	})
}
