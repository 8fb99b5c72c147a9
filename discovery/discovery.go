// Package discovery finds and authenticates the cluster a node joins: the API server
// endpoint and the cluster CA, from the kube-public/cluster-info ConfigMap authenticated by a
// bootstrap token and a CA pin (token discovery), or from a kubeconfig file (file
// discovery). It follows kubeadm's discovery contract so that `kforge join` works against a
// kubeadm control plane and the other way round.
package discovery

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/internal/wait"
	"github.com/kforge/kforge/tokens"
)

// Errors of Discover, for errors.Is. Each failure wraps exactly one of them.
var (
	// ErrNoPin means no CA pin was given and unsafe skipping was not asked for.
	ErrNoPin = errors.New("no CA pin given")
	// ErrUnreachable means the discovery endpoint did not answer until the timeout.
	ErrUnreachable = errors.New("discovery endpoint unreachable")
	// ErrNoClusterInfo means the endpoint answered but would not serve cluster-info
	// (not found, forbidden to anonymous users, not a ConfigMap).
	ErrNoClusterInfo = errors.New("cluster-info not available")
	// ErrTokenUnknown means cluster-info never carried a signature for the token's ID
	// until the timeout: the token does not exist, has expired, or cannot sign.
	ErrTokenUnknown = errors.New("bootstrap token unknown or expired")
	// ErrBadSignature means cluster-info carries a signature for the token's ID that the
	// token's secret does not verify. It is bootstrap.ErrBadSignature.
	ErrBadSignature = bootstrap.ErrBadSignature
	// ErrBadClusterInfo means the signed kubeconfig in cluster-info is unusable (not
	// exactly one cluster, no server, no CA).
	ErrBadClusterInfo = errors.New("cluster-info kubeconfig unusable")
	// ErrCAPinMismatch means no CA certificate in cluster-info matches any given pin.
	ErrCAPinMismatch = errors.New("cluster CA does not match any CA pin")
	// ErrContentChanged means the fetch over TLS trusting the discovered CA returned
	// other content than the unauthenticated fetch.
	ErrContentChanged = errors.New("cluster-info changed between fetches")
)

// Defaults of Options.
const (
	DefaultTimeout  = 5 * time.Minute
	DefaultInterval = 5 * time.Second
	// maxBody bounds a cluster-info response: one kubeconfig and a JWS per token.
	maxBody = 4 << 20
)

// ClusterInfoPath is the API path of the kube-public/cluster-info ConfigMap.
const ClusterInfoPath = "/api/v1/namespaces/" + metav1.NamespacePublic + "/configmaps/" + bootstrapapi.ConfigMapClusterInfo

// Options configure Discover.
type Options struct {
	// Endpoint is the API server to ask, "host:port".
	Endpoint string
	// Token authenticates cluster-info: its secret keys the JWS. It is never logged or
	// put in an error.
	Token tokens.Token
	// CAPins are SHA-256 digests of the CA's DER SubjectPublicKeyInfo, as certs.ParsePin
	// returns them. A CA matching any of them is accepted.
	CAPins [][]byte
	// UnsafeSkipCAVerification allows empty CAPins: the CA is then trusted because the
	// token signed it, which anyone who knows the token can forge.
	UnsafeSkipCAVerification bool
	// Timeout bounds the whole discovery, waiting for the signature included. Zero means
	// DefaultTimeout.
	Timeout time.Duration
	// Interval is the pause between attempts. Zero means DefaultInterval.
	Interval time.Duration
	// NewTransport, if set, returns the round tripper for a fetch with the given TLS
	// configuration (tests wrap or count requests with it). The default clones
	// http.DefaultTransport and sets its TLSClientConfig.
	NewTransport func(*tls.Config) http.RoundTripper
}

// Check reports what makes opts unusable, before anything is fetched: an endpoint that is
// not host:port, a missing token, no CA pin without UnsafeSkipCAVerification (ErrNoPin), a
// pin of the wrong size, or a negative timeout. Discover calls it first; callers that print
// what discovery is about to do call it before printing.
func (opts *Options) Check() error {
	switch {
	case opts.Endpoint == "":
		return errors.New("token discovery: no API server endpoint given")
	case opts.Token.ID == "" || opts.Token.Secret == "":
		return errors.New("token discovery: no bootstrap token given: pass --token")
	case len(opts.CAPins) == 0 && !opts.UnsafeSkipCAVerification:
		return &Error{Kind: ErrNoPin, Msg: "token discovery: refusing to trust a cluster CA without a CA pin: " +
			"pass --discovery-token-ca-cert-hash sha256:<hex> (printed by \"kforge init\"), " +
			"or --discovery-token-unsafe-skip-ca-verification to trust any CA the token signed"}
	case opts.Timeout < 0:
		return fmt.Errorf("token discovery: timeout %s is negative; want a positive duration such as %s", opts.Timeout, DefaultTimeout)
	}
	if ep, err := ParseEndpoint(opts.Endpoint); err != nil {
		return fmt.Errorf("token discovery: %w", err)
	} else if ep != opts.Endpoint {
		return fmt.Errorf("token discovery: API server endpoint %q is not host:port; want %q", opts.Endpoint, ep)
	}
	for i, p := range opts.CAPins {
		if len(p) != sha256.Size {
			return fmt.Errorf("token discovery: CA pin %d has %d bytes, want a %d-byte SHA-256 digest", i+1, len(p), sha256.Size)
		}
	}
	return nil
}

// ParseEndpoint reads the API server endpoint a join is given and returns it as host:port:
// "host:port", "host" (port 6443), "[IPv6]:port", a bare IPv6 address, or any of these after
// "https://" with nothing but an optional "/" behind. The host is an IP address or a DNS
// name and the port 1-65535, as for control_plane_endpoint.
func ParseEndpoint(s string) (string, error) {
	hostPort := s
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		if !strings.EqualFold(scheme, "https") {
			return "", fmt.Errorf("API server endpoint %q uses the scheme %q; want host:port such as \"10.0.0.10:6443\", or https://host:port", s, scheme)
		}
		hostPort = strings.TrimSuffix(rest, "/")
	}
	if i := strings.IndexAny(hostPort, "/?#@"); i >= 0 {
		return "", fmt.Errorf("API server endpoint %q has more than a host and a port (%q); want host:port such as \"10.0.0.10:6443\"", s, hostPort[i:])
	}
	if msg := config.HostPortProblem(hostPort, false); msg != "" {
		return "", fmt.Errorf("API server endpoint %q %s; want host:port such as \"10.0.0.10:6443\"", s, msg)
	}
	if _, _, err := net.SplitHostPort(hostPort); err != nil {
		hostPort = net.JoinHostPort(strings.Trim(hostPort, "[]"), strconv.Itoa(config.DefaultAPIServerPort))
	}
	return hostPort, nil
}

// Result is what discovery authenticated.
type Result struct {
	// Server is the API server URL named in cluster-info (or the discovery file).
	Server string
	// CAPEM is the cluster CA bundle, PEM.
	CAPEM []byte
	// ClusterName is the cluster's name in the kubeconfig; often empty in cluster-info.
	ClusterName string
}

// Error is the error of Discover and DiscoverFromFile: Kind is one of the Err* sentinels,
// Msg says what failed and what to do, Err is the underlying cause, if any.
type Error struct {
	Kind error
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Msg
	}
	return e.Msg + ": " + e.Err.Error()
}

// Unwrap returns Kind and the cause, so errors.Is finds both.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// Discover runs token discovery against opts.Endpoint: it fetches cluster-info without
// trusting TLS, waits until it carries a signature for opts.Token and verifies it, checks
// the CA in the signed kubeconfig against opts.CAPins, then fetches cluster-info again over
// TLS trusting only that CA and requires the same kubeconfig.
func Discover(ctx context.Context, opts Options) (*Result, error) {
	if err := opts.Check(); err != nil {
		return nil, err
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.NewTransport == nil {
		opts.NewTransport = defaultTransport
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	d := &discoverer{opts: opts, url: "https://" + opts.Endpoint + ClusterInfoPath}

	// 1 and 2: unauthenticated fetch until the token's signature is there and verifies.
	insecure := d.client(&tls.Config{InsecureSkipVerify: true}) //nolint:gosec // authenticated by the JWS and the CA pin below
	var content string
	err := d.poll(ctx, func() (bool, error) {
		cm, err := d.fetch(ctx, insecure)
		if err != nil {
			return false, err
		}
		if err := bootstrap.VerifyClusterInfoJWS(cm, opts.Token); err != nil {
			if errors.Is(err, bootstrap.ErrNotSigned) {
				return false, err
			}
			if errors.Is(err, bootstrap.ErrBadSignature) {
				return true, &Error{Kind: ErrBadSignature, Err: err, Msg: fmt.Sprintf(
					"token discovery at %s: the cluster-info signature for token %s does not verify: "+
						"check that the token is the one \"kforge token create\" printed; if it is, "+
						"this endpoint is not serving the cluster's own cluster-info", opts.Endpoint, opts.Token.ID)}
			}
			return true, &Error{Kind: ErrNoClusterInfo, Err: err, Msg: fmt.Sprintf("token discovery at %s", opts.Endpoint)}
		}
		content = cm.Data[bootstrapapi.KubeConfigKey]
		return true, nil
	})
	if err != nil {
		return nil, err
	}

	// 3: the signed kubeconfig names the CA; the pin authenticates it.
	res, err := parseClusterInfo([]byte(content))
	if err != nil {
		return nil, &Error{Kind: ErrBadClusterInfo, Err: err, Msg: fmt.Sprintf("token discovery at %s: the signed cluster-info kubeconfig", opts.Endpoint)}
	}
	cas, err := parseCerts(res.CAPEM)
	if err != nil {
		return nil, &Error{Kind: ErrBadClusterInfo, Err: err, Msg: fmt.Sprintf("token discovery at %s: the CA in the signed cluster-info", opts.Endpoint)}
	}
	if len(opts.CAPins) > 0 {
		if err := checkPins(cas, opts.CAPins); err != nil {
			return nil, err
		}
	}

	// 4: the same content over TLS trusting only that CA.
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	secure := d.client(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	err = d.poll(ctx, func() (bool, error) {
		cm, err := d.fetch(ctx, secure)
		if err != nil {
			var ve *tls.CertificateVerificationError
			if errors.As(err, &ve) {
				return true, &Error{Kind: ErrBadClusterInfo, Err: err, Msg: fmt.Sprintf(
					"token discovery at %s: the API server's TLS certificate does not verify against the CA its "+
						"cluster-info names: check that the endpoint is the cluster's API server and not a proxy", opts.Endpoint)}
			}
			return false, err
		}
		if again := cm.Data[bootstrapapi.KubeConfigKey]; again != content {
			return true, &Error{Kind: ErrContentChanged, Msg: fmt.Sprintf(
				"token discovery at %s: cluster-info fetched over TLS trusting the discovered CA differs from "+
					"the signed copy fetched before: retry; if it persists, the endpoint is not serving a "+
					"consistent cluster-info (a proxy or load balancer in front of different clusters?)", opts.Endpoint)}
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

type discoverer struct {
	opts Options
	url  string
}

func defaultTransport(cfg *tls.Config) http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = cfg
	return t
}

func (d *discoverer) client(cfg *tls.Config) *http.Client {
	return &http.Client{Transport: d.opts.NewTransport(cfg)}
}

// poll calls attempt until it reports done, then returns its error. An error with done
// false is retried after Interval; when ctx ends, the last such error decides the result.
func (d *discoverer) poll(ctx context.Context, attempt func() (done bool, err error)) error {
	start := time.Now()
	deadline, _ := ctx.Deadline() // Discover bounds ctx by opts.Timeout
	var last error
	err := wait.Poll(ctx, d.opts.Interval, time.Until(deadline), func(context.Context) error {
		done, err := attempt()
		switch {
		case done && err != nil:
			return wait.Permanent(err)
		case done:
			return nil
		}
		if ctx.Err() == nil || last == nil {
			last = err
		}
		return err
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, wait.ErrPermanent):
		return errors.Unwrap(err)
	}
	return d.gaveUp(ctx, last, time.Since(start))
}

// gaveUp turns the last retried error into the error the user sees.
func (d *discoverer) gaveUp(ctx context.Context, last error, waited time.Duration) error {
	waited = waited.Round(time.Millisecond)
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("token discovery at %s: %w", d.opts.Endpoint, ctx.Err())
	}
	var fe *fetchError
	switch {
	case last == nil:
		return &Error{Kind: ErrUnreachable, Msg: fmt.Sprintf("token discovery at %s: no answer within %s", d.opts.Endpoint, waited)}
	case errors.Is(last, bootstrap.ErrNotSigned):
		return &Error{Kind: ErrTokenUnknown, Err: last, Msg: fmt.Sprintf(
			"token %s is unknown or expired: create one with \"kforge token create\" "+
				"(cluster-info at %s carried no signature for it for %s)", d.opts.Token.ID, d.opts.Endpoint, waited)}
	case errors.As(last, &fe) && fe.status != 0:
		return &Error{Kind: ErrNoClusterInfo, Err: last, Msg: fmt.Sprintf(
			"token discovery at %s: cluster-info was not served for %s: check that this is a control-plane "+
				"endpoint of an initialised cluster and that anonymous users may read kube-public/cluster-info", d.opts.Endpoint, waited)}
	default:
		return &Error{Kind: ErrUnreachable, Err: last, Msg: fmt.Sprintf(
			"token discovery: API server %s unreachable for %s: check the address and port, that the "+
				"control plane is up, and that no firewall is in the way", d.opts.Endpoint, waited)}
	}
}

// fetchError is a failed GET of cluster-info; status is the HTTP status, or 0 when there
// was no usable HTTP answer.
type fetchError struct {
	status int
	err    error
}

func (e *fetchError) Error() string { return e.err.Error() }
func (e *fetchError) Unwrap() error { return e.err }

func (d *discoverer) fetch(ctx context.Context, c *http.Client) (*corev1.ConfigMap, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.url, nil)
	if err != nil {
		return nil, &fetchError{err: fmt.Errorf("building request for %s: %w", d.url, err)}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, &fetchError{err: fmt.Errorf("getting cluster-info: %w", err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, &fetchError{err: fmt.Errorf("reading cluster-info: %w", err)}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &fetchError{status: resp.StatusCode, err: fmt.Errorf("getting cluster-info: HTTP %s", resp.Status)}
	}
	if len(body) > maxBody {
		return nil, &fetchError{status: resp.StatusCode, err: fmt.Errorf("cluster-info is larger than %d bytes", maxBody)}
	}
	var cm corev1.ConfigMap
	if err := json.Unmarshal(body, &cm); err != nil {
		return nil, &fetchError{status: resp.StatusCode, err: fmt.Errorf("decoding cluster-info: %w", err)}
	}
	if cm.Kind != "" && cm.Kind != "ConfigMap" {
		return nil, &fetchError{status: resp.StatusCode, err: fmt.Errorf("cluster-info is a %s, not a ConfigMap", cm.Kind)}
	}
	return &cm, nil
}

// parseClusterInfo reads the cluster-only kubeconfig of cluster-info: exactly one cluster
// with a server and embedded CA data.
func parseClusterInfo(data []byte) (*Result, error) {
	cfg, err := clientcmd.Load(data)
	if err != nil {
		return nil, fmt.Errorf("parsing kubeconfig: %w", err)
	}
	if n := len(cfg.Clusters); n != 1 {
		return nil, fmt.Errorf("it has %d clusters, want exactly 1", n)
	}
	for name, c := range cfg.Clusters {
		if c.Server == "" {
			return nil, fmt.Errorf("cluster %q has no server", name)
		}
		if len(c.CertificateAuthorityData) == 0 {
			return nil, fmt.Errorf("cluster %q has no certificate-authority-data", name)
		}
		return &Result{Server: c.Server, CAPEM: c.CertificateAuthorityData, ClusterName: name}, nil
	}
	panic("unreachable")
}

// parseCerts returns the certificates in a PEM bundle; it needs at least one and nothing
// but certificates.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := data
	for {
		var cert *x509.Certificate
		cert, rest = nextCert(rest)
		if cert == nil {
			break
		}
		out = append(out, cert)
	}
	if len(bytes.TrimSpace(rest)) != 0 || len(out) == 0 {
		return nil, errors.New("it is not a PEM bundle of certificates")
	}
	return out, nil
}

func nextCert(data []byte) (*x509.Certificate, []byte) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, data
	}
	end := bytes.Index(data, []byte("-----END CERTIFICATE-----"))
	if end < 0 {
		return nil, data
	}
	end += len("-----END CERTIFICATE-----")
	cert, err := certs.ParseCertPEM(data[:end])
	if err != nil {
		return nil, data
	}
	return cert, data[end:]
}

// checkPins accepts the CA bundle if any certificate's public key matches any pin.
func checkPins(cas []*x509.Certificate, pins [][]byte) error {
	found := make([]string, 0, len(cas))
	for _, c := range cas {
		sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
		for _, p := range pins {
			if subtle.ConstantTimeCompare(sum[:], p) == 1 {
				return nil
			}
		}
		found = append(found, certs.PinHash(c))
	}
	want := make([]string, 0, len(pins))
	for _, p := range pins {
		want = append(want, certs.PinPrefix+hex.EncodeToString(p))
	}
	return &Error{Kind: ErrCAPinMismatch, Msg: fmt.Sprintf(
		"token discovery: the cluster CA has pin %s, but --discovery-token-ca-cert-hash expects %s: "+
			"check the pin against \"kforge init\" output or run \"kforge token create --print-join-command\" on a control-plane node",
		strings.Join(found, ", "), strings.Join(want, " or "))}
}

// DiscoverFromFile reads the cluster to join from a kubeconfig file (--discovery-file): the
// cluster of its current context, or its only cluster. The CA may be embedded or a file
// path relative to the kubeconfig.
func DiscoverFromFile(path string) (*Result, error) {
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("file discovery: reading kubeconfig %s: %w", path, err)
	}
	name, c, err := pickCluster(cfg)
	if err != nil {
		return nil, fmt.Errorf("file discovery: kubeconfig %s: %w", path, err)
	}
	if c.Server == "" {
		return nil, fmt.Errorf("file discovery: kubeconfig %s: cluster %q has no server", path, name)
	}
	caPEM := c.CertificateAuthorityData
	if len(caPEM) == 0 && c.CertificateAuthority != "" {
		// LoadFromFile has already made the path absolute relative to the kubeconfig.
		caFile := c.CertificateAuthority
		if !filepath.IsAbs(caFile) {
			caFile = filepath.Join(filepath.Dir(path), caFile)
		}
		if caPEM, err = os.ReadFile(caFile); err != nil {
			return nil, fmt.Errorf("file discovery: kubeconfig %s: reading CA of cluster %q: %w", path, name, err)
		}
	}
	if len(caPEM) == 0 {
		return nil, fmt.Errorf("file discovery: kubeconfig %s: cluster %q has no certificate authority: "+
			"embed it as certificate-authority-data", path, name)
	}
	if _, err := parseCerts(caPEM); err != nil {
		return nil, fmt.Errorf("file discovery: kubeconfig %s: CA of cluster %q: %w", path, name, err)
	}
	return &Result{Server: c.Server, CAPEM: caPEM, ClusterName: name}, nil
}

func pickCluster(cfg *clientcmdapi.Config) (string, *clientcmdapi.Cluster, error) {
	if ctx, ok := cfg.Contexts[cfg.CurrentContext]; ok && ctx.Cluster != "" {
		c, ok := cfg.Clusters[ctx.Cluster]
		if !ok {
			return "", nil, fmt.Errorf("current context %q names cluster %q, which it does not define", cfg.CurrentContext, ctx.Cluster)
		}
		return ctx.Cluster, c, nil
	}
	if n := len(cfg.Clusters); n != 1 {
		return "", nil, fmt.Errorf("it has %d clusters and no current context: want exactly 1 cluster", n)
	}
	for name, c := range cfg.Clusters {
		return name, c, nil
	}
	panic("unreachable")
}
