package phases

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/discovery"
	"github.com/kforge/kforge/internal/apiclient"
	"github.com/kforge/kforge/kubeconfig"
	"github.com/kforge/kforge/kubelet"
	"github.com/kforge/kforge/tokens"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// JoinRequest is how the join command was told to find and authenticate the cluster.
type JoinRequest struct {
	// Endpoint is the API server to discover from, "host:port".
	Endpoint string
	// Token authenticates discovery and the kubelet's TLS bootstrap.
	Token tokens.Token
	// CAPins are the accepted CA pins (certs.ParsePin).
	CAPins [][]byte
	// UnsafeSkipCAVerification trusts any CA the token signed.
	UnsafeSkipCAVerification bool
	// DiscoveryFile is a kubeconfig naming the cluster (file discovery) instead of token
	// discovery.
	DiscoveryFile string
	// Timeout bounds discovery; zero is discovery.DefaultTimeout.
	Timeout time.Duration
}

// Discovered is the cluster discovery authenticated.
type Discovered struct {
	// Server is the API server URL of cluster-info (or of the discovery file).
	Server string
	// CAPEM is the cluster CA bundle.
	CAPEM []byte
	// Client reaches Server as the bootstrap token, trusting only CAPEM.
	Client kubernetes.Interface
}

// DiscoverCluster runs token (or file) discovery and returns the authenticated cluster and
// a client that acts as the bootstrap token. It writes nothing.
func DiscoverCluster(ctx context.Context, req JoinRequest, out *Printer) (*Discovered, error) {
	var res *discovery.Result
	var err error
	if req.DiscoveryFile != "" {
		out.Phase("discovery", "reading the cluster from %s", req.DiscoveryFile)
		res, err = discovery.DiscoverFromFile(req.DiscoveryFile)
	} else {
		opts := discovery.Options{
			Endpoint:                 req.Endpoint,
			Token:                    req.Token,
			CAPins:                   req.CAPins,
			UnsafeSkipCAVerification: req.UnsafeSkipCAVerification,
			Timeout:                  req.Timeout,
		}
		// Refuse before saying how the CA will be checked: without a pin, only the unsafe
		// flag lets discovery go on.
		if err := opts.Check(); err != nil {
			return nil, err
		}
		how := "checking the CA against the given pin"
		if len(req.CAPins) == 0 {
			how = "WITHOUT checking the CA (--discovery-token-unsafe-skip-ca-verification)"
		}
		out.Phase("discovery", "fetching cluster-info from %s with token %s, %s", req.Endpoint, req.Token.ID, how)
		res, err = discovery.Discover(ctx, opts)
	}
	if err != nil {
		return nil, err
	}
	if req.Token.IsZero() {
		return nil, errors.New("no bootstrap token for the kubelet's TLS bootstrap: pass --token")
	}
	out.Phase("discovery", "the cluster's API server is %s; its CA is authenticated", res.Server)
	cs, err := kubernetes.NewForConfig(apiclient.Configure(&rest.Config{
		Host:            res.Server,
		BearerToken:     req.Token.Reveal(),
		TLSClientConfig: rest.TLSClientConfig{CAData: res.CAPEM},
		Timeout:         15 * time.Second,
	}, "kforge-join"))
	if err != nil {
		return nil, fmt.Errorf("building the bootstrap token client: %w", err)
	}
	return &Discovered{Server: res.Server, CAPEM: res.CAPEM, Client: cs}, nil
}

// ClusterConfigFromCluster reads the cluster configuration stored in the cluster, as the
// bootstrap token: kforge's own in kube-system/kubeadm-config, or in a cluster made by stock
// kubeadm init one derived from kubeadm's ClusterConfiguration there and the
// KubeletConfiguration in kube-system/kubelet-config, as kubeadm join derives it. A
// kubeadm cluster without a controlPlaneEndpoint is reached at the API server discovery
// authenticated, as kubeadm join reaches it.
func ClusterConfigFromCluster(ctx context.Context, disc *Discovered) (*bootstrap.StoredCluster, error) {
	kubeadmCM, err := getConfigMap(ctx, disc.Client, bootstrap.NamespaceSystem, bootstrap.KubeadmConfigName)
	if err != nil {
		return nil, err
	}
	if kubeadmCM == nil {
		return nil, fmt.Errorf("the cluster has no ConfigMap %s/%s: it was set up by neither kforge init nor kubeadm init; pass its configuration with -f cluster.toml",
			bootstrap.NamespaceSystem, bootstrap.KubeadmConfigName)
	}
	kubeletCM, err := getConfigMap(ctx, disc.Client, bootstrap.NamespaceSystem, bootstrap.KubeletConfigName)
	if err != nil {
		return nil, err
	}
	s, err := bootstrap.ReadStoredCluster(kubeadmCM, kubeletCM)
	if err != nil {
		return nil, err
	}
	if s.FromKubeadm && s.Cluster.ControlPlaneEndpoint == "" {
		u, err := url.Parse(disc.Server)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("the cluster's API server %q is not an https://host:port URL", disc.Server)
		}
		s.Cluster.ControlPlaneEndpoint = u.Host
	}
	return s, nil
}

// PrepareJoin checks, before any phase runs, that this host may join: that no other Ready
// node has its name, and, for a control-plane join, that the certificate key opens the
// shared certificates. It fills d.Join from disc. It writes nothing.
func PrepareJoin(ctx context.Context, d *Data, disc *Discovered, key bootstrap.CertificateKey) error {
	j := &d.Join
	j.Server, j.ClusterCA = disc.Server, disc.CAPEM
	if err := checkExistingCA(d, disc.CAPEM); err != nil {
		return err
	}
	j.AlreadyJoined = joinedHere(d, disc.CAPEM)
	if err := checkNodeName(ctx, d, disc.Client); err != nil {
		return err
	}
	if !j.ControlPlane {
		return nil
	}
	return fetchSharedCerts(ctx, d, disc.Client, key)
}

// checkExistingCA refuses a host that holds another cluster's CA.
func checkExistingCA(d *Data, caPEM []byte) error {
	shown := filepath.Join(d.CertDir, "ca.crt")
	have, err := readFileIfExists(d.Path(shown))
	if err != nil || have == nil {
		return err
	}
	if strings.TrimSpace(string(have)) != strings.TrimSpace(string(caPEM)) {
		return fmt.Errorf("%s on this host is not the CA of the cluster being joined: the host belongs to another cluster; run 'kforge reset' first", shown)
	}
	return nil
}

// joinedHere reports whether this host's kubelet already has a client certificate for its
// node name that the cluster CA signed: an earlier join finished its TLS bootstrap.
func joinedHere(d *Data, caPEM []byte) bool {
	path := d.Path(filepath.Join(d.KubeconfigDir, kubelet.KubeconfigName))
	cfg, err := loadKubeconfig(path)
	if err != nil {
		return false
	}
	_, user, err := kubeconfig.CurrentUser(cfg)
	if err != nil {
		return false
	}
	certPEM := user.ClientCertificateData
	if len(certPEM) == 0 && user.ClientCertificate != "" {
		if certPEM, err = readFileIfExists(d.Path(user.ClientCertificate)); err != nil || certPEM == nil {
			return false
		}
	}
	cert, err := certs.ParseCertPEM(certPEM)
	if err != nil || cert.Subject.CommonName != kubeconfig.NodeUserPrefix+d.Node.Name {
		return false
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return false
	}
	_, err = cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, CurrentTime: d.Now()})
	return err == nil
}

// checkNodeName refuses to join as the name of another Ready node.
func checkNodeName(ctx context.Context, d *Data, cs kubernetes.Interface) error {
	name := d.Node.Name
	var node *corev1.Node
	err := apiclient.Retry(ctx, func(ctx context.Context) error {
		n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case err != nil:
			return fmt.Errorf("reading Node %s: %w", name, err)
		}
		node = n
		return nil
	})
	if apierrors.IsForbidden(err) {
		d.Out.Phase("discovery", "WARNING: the token may not read Nodes, so kforge cannot check that the name %q is free", name)
		return nil
	}
	if err != nil {
		return err
	}
	switch {
	case node == nil:
		d.Out.Phase("discovery", "node name %q is free", name)
	case d.Join.AlreadyJoined:
		d.Out.Phase("discovery", "this host already joined as node %q; converging", name)
	case nodeIsReady(node):
		return fmt.Errorf("a Ready node named %q is already in the cluster, and this host is not it: "+
			"join under another name (--node-name, or the host's name in cluster.toml), or remove the old node first "+
			"(kforge reset on it, then kubectl delete node %s)", name, name)
	default:
		d.Out.Phase("discovery", "node %q exists but is not Ready; this host takes its place", name)
	}
	return nil
}

func nodeIsReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// fetchSharedCerts opens kubeadm-certs with the certificate key. Without a key, the host
// must already hold every shared file (a re-run after the key expired).
func fetchSharedCerts(ctx context.Context, d *Data, cs kubernetes.Interface, key bootstrap.CertificateKey) error {
	files := bootstrap.SharedCertFiles(d.Cluster, d.CertDir)
	if key.IsZero() {
		var missing []string
		for _, f := range files {
			if b, err := readFileIfExists(d.Path(f.Path)); err != nil || (b == nil && !f.Optional) {
				missing = append(missing, f.Path)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("a control-plane join needs the shared certificates (%s): pass --certificate-key with the key "+
				"'kforge init --upload-certs' or 'kforge init phase upload-certs --upload-certs' printed", strings.Join(missing, ", "))
		}
		d.Out.Phase("discovery", "no certificate key given; this host already holds the shared certificates")
		return nil
	}
	sec, err := getSecret(ctx, cs, bootstrap.NamespaceSystem, bootstrap.CertsSecretName)
	if err != nil {
		return err
	}
	if sec == nil {
		return fmt.Errorf("there is no Secret %s/%s: the shared certificates were never uploaded, or the 2-hour token that owns them "+
			"expired; run 'kforge init phase upload-certs --upload-certs' on a control-plane host and join with the key it prints",
			bootstrap.NamespaceSystem, bootstrap.CertsSecretName)
	}
	opened, err := bootstrap.OpenCerts(key, sec.Data)
	if err != nil {
		return fmt.Errorf("the certificate key does not open Secret %s/%s (%w): use the key printed by the last "+
			"'kforge init --upload-certs' or 'kforge init phase upload-certs --upload-certs', or upload again to get a new one",
			bootstrap.NamespaceSystem, bootstrap.CertsSecretName, err)
	}
	for _, f := range files {
		if _, ok := opened[f.Key]; !ok && !f.Optional {
			return fmt.Errorf("Secret %s/%s has no %s: upload the certificates again with 'kforge init phase upload-certs --upload-certs'",
				bootstrap.NamespaceSystem, bootstrap.CertsSecretName, f.Key)
		}
	}
	d.Join.SharedCerts = opened
	d.Out.Phase("discovery", "opened the shared control-plane certificates (%d files) with the certificate key", len(opened))
	return nil
}
