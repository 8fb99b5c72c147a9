package manifests

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

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
		inputs: p.Inputs,
	})
}

// EtcdMember is what a local etcd static pod says about its member.
type EtcdMember struct {
	// Name is its --name.
	Name string
	// PeerURL is the first of its --initial-advertise-peer-urls.
	PeerURL string
	// ClientURL is the first of its advertised client URLs (EtcdClientURLsAnnotation).
	ClientURL string
	// Peers are the client URLs of the members named in its --initial-cluster.
	Peers []string
	// InitialCluster and InitialClusterState are its --initial-cluster and
	// --initial-cluster-state as written: etcd reads them only when it first starts, so a
	// manifest written again for a running member keeps them (Params.EtcdInitialCluster).
	InitialCluster, InitialClusterState string
}

// Endpoints are the client URLs through which the member's cluster can be reached: its own,
// then its peers'.
func (m EtcdMember) Endpoints() []string {
	out := []string{m.ClientURL}
	for _, p := range m.Peers {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// ParseEtcdMember reads the member of an etcd static pod manifest (as Etcd builds it).
func ParseEtcdMember(manifest []byte) (EtcdMember, error) {
	var pod corev1.Pod
	if err := yaml.Unmarshal(manifest, &pod); err != nil {
		return EtcdMember{}, err
	}
	if len(pod.Spec.Containers) == 0 {
		return EtcdMember{}, errors.New("it has no container")
	}
	m := EtcdMember{ClientURL: strings.Split(pod.Annotations[EtcdClientURLsAnnotation], ",")[0]}
	for _, arg := range pod.Spec.Containers[0].Command {
		k, v, ok := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
		if !ok {
			continue
		}
		switch k {
		case "name":
			m.Name = v
		case "initial-advertise-peer-urls":
			m.PeerURL = strings.Split(v, ",")[0]
		case "initial-cluster-state":
			m.InitialClusterState = v
		case "initial-cluster":
			m.InitialCluster = v
			for _, kv := range strings.Split(v, ",") {
				_, peer, _ := strings.Cut(kv, "=")
				if u, err := url.Parse(peer); err == nil && u.Hostname() != "" {
					c := "https://" + net.JoinHostPort(u.Hostname(), strconv.Itoa(EtcdClientPort))
					if !slices.Contains(m.Peers, c) {
						m.Peers = append(m.Peers, c)
					}
				}
			}
		}
	}
	if m.PeerURL == "" {
		return EtcdMember{}, errors.New("it has no --initial-advertise-peer-urls")
	}
	return m, nil
}
