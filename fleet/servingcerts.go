package fleet

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kforge/kforge/host"
	"github.com/kforge/kforge/internal/apiclient"
	"github.com/kforge/kforge/internal/wait"
	"github.com/kforge/kforge/servingcsr"
)

// DefaultKubeletPort is the kubelet's HTTPS port when its Node does not say.
const DefaultKubeletPort = 10250

// DefaultServingCertsTimeout bounds the wait for every kubelet to serve a certificate the
// cluster CA signed, when Options.Timeout is zero.
const DefaultServingCertsTimeout = 3 * time.Minute

// kubeletDialTimeout bounds one TLS dial of a kubelet.
const kubeletDialTimeout = 5 * time.Second

// approvalReason is the reason kforge writes in the conditions it adds to a CSR.
const approvalReason = "KforgeServingCertificate"

// DialFunc opens a connection, as net.Dialer.DialContext does.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// ServingCSR is one kubelet serving CSR that a review looked at, and what it decided.
type ServingCSR struct {
	// Name is the CSR's name.
	Name string `json:"name"`
	// Node is the node that asked, "" when the requester is not a node.
	Node string `json:"node,omitempty"`
	// Verdict is servingcsr's: "approve", "deny" or "pending".
	Verdict servingcsr.Verdict `json:"verdict"`
	// Reason says why.
	Reason string `json:"reason"`
	// Done is true when the verdict was written to the CSR (never on a dry run, and never
	// for "pending").
	Done bool `json:"done"`
}

// KubeletServing is what a TLS dial to one Node's kubelet found.
type KubeletServing struct {
	Node string `json:"node"`
	// Address is the host:port dialled: the kubelet port at the Node's first InternalIP,
	// ExternalIP or Hostname address, the one the apiserver uses.
	Address string `json:"address"`
	// Verified is true when the kubelet presented a certificate that chains to the cluster
	// CA and names Address's host.
	Verified bool `json:"verified"`
	// Unreachable is true when the dial itself failed: no TLS handshake took place.
	Unreachable bool `json:"unreachable,omitempty"`
	// Error says why it is not verified.
	Error string `json:"error,omitempty"`
}

// ServingCertsReport is what approving serving certificates did, or on a dry run would do.
type ServingCertsReport struct {
	// CSRs are the undecided kubelet serving CSRs the run looked at, by name.
	CSRs []ServingCSR `json:"csrs"`
	// Kubelets are the Nodes' kubelets as last dialled.
	Kubelets []KubeletServing `json:"kubelets"`
	// VerifyKubelets is true when every control plane's apiserver verifies kubelets with
	// the cluster CA (--kubelet-certificate-authority) at the end of the run, or on a dry
	// run would.
	VerifyKubelets bool `json:"verify_kubelets"`
	// Note says why VerifyKubelets is false, when it is.
	Note string `json:"note,omitempty"`
}

// ReviewServingCSRs decides every undecided CSR of signer kubernetes.io/kubelet-serving
// (servingcsr.Decide, against the cluster's Nodes) and, unless dryRun, approves or denies
// those it decided so (apiclient.DecideCSR); those left pending stay as they are, for an
// operator to look at. It returns them sorted by name.
func ReviewServingCSRs(ctx context.Context, cs kubernetes.Interface, dryRun bool) ([]ServingCSR, error) {
	var list *certificatesv1.CertificateSigningRequestList
	err := apiclient.Retry(ctx, func(ctx context.Context) error {
		var err error
		list, err = cs.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("listing CertificateSigningRequests: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var csrs []*certificatesv1.CertificateSigningRequest
	for i := range list.Items {
		c := &list.Items[i]
		if c.Spec.SignerName == certificatesv1.KubeletServingSignerName && servingcsr.Undecided(c) {
			csrs = append(csrs, c)
		}
	}
	if len(csrs) == 0 {
		return nil, nil
	}
	nodes, err := listNodes(ctx, cs)
	if err != nil {
		return nil, err
	}
	byName := map[string]*corev1.Node{}
	for i := range nodes {
		byName[nodes[i].Name] = &nodes[i]
	}
	out := make([]ServingCSR, 0, len(csrs))
	var errs []error
	for _, c := range csrs {
		d := servingcsr.Decide(c, byName)
		r := ServingCSR{Name: c.Name, Node: d.Node, Verdict: d.Verdict, Reason: d.Reason}
		if !dryRun && d.Verdict != servingcsr.Pending {
			done, err := apiclient.DecideCSR(ctx, cs, c.Name, d.Verdict == servingcsr.Approve, approvalReason, "kforge: "+d.Reason)
			if err != nil {
				errs = append(errs, err)
			}
			r.Done = done
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b ServingCSR) int { return strings.Compare(a.Name, b.Name) })
	return out, errors.Join(errs...)
}

func listNodes(ctx context.Context, cs kubernetes.Interface) ([]corev1.Node, error) {
	var nodes []corev1.Node
	err := apiclient.Retry(ctx, func(ctx context.Context) error {
		list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("listing Nodes: %w", err)
		}
		nodes = list.Items
		return nil
	})
	return nodes, err
}

// CheckKubeletServing dials the kubelet of every Node, as the apiserver does (the first
// InternalIP, ExternalIP or Hostname address, the port the Node reports), trusting only
// caPEM, and says for each whether it presents a certificate that chains to the CA and
// names the address dialled: what the apiserver checks once it has
// --kubelet-certificate-authority. dial nil is a plain net.Dialer. Nodes are in name order.
func CheckKubeletServing(ctx context.Context, cs kubernetes.Interface, caPEM []byte, dial DialFunc) ([]KubeletServing, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("reading the cluster CA: no PEM certificate")
	}
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	nodes, err := listNodes(ctx, cs)
	if err != nil {
		return nil, err
	}
	out := make([]KubeletServing, len(nodes))
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() { out[i] = checkKubelet(ctx, &nodes[i], pool, dial) })
	}
	wg.Wait()
	slices.SortFunc(out, func(a, b KubeletServing) int { return strings.Compare(a.Node, b.Node) })
	return out, nil
}

func checkKubelet(ctx context.Context, node *corev1.Node, pool *x509.CertPool, dial DialFunc) KubeletServing {
	r := KubeletServing{Node: node.Name}
	addr := kubeletAddress(node)
	if addr == "" {
		r.Error = "the Node reports no InternalIP, ExternalIP or Hostname address"
		return r
	}
	port := int(node.Status.DaemonEndpoints.KubeletEndpoint.Port)
	if port == 0 {
		port = DefaultKubeletPort
	}
	r.Address = net.JoinHostPort(addr, strconv.Itoa(port))
	ctx, cancel := context.WithTimeout(ctx, kubeletDialTimeout)
	defer cancel()
	raw, err := dial(ctx, "tcp", r.Address)
	if err != nil {
		r.Unreachable = true
		r.Error = fmt.Sprintf("unreachable from this machine: %v", err)
		return r
	}
	conn := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: addr, MinVersion: tls.VersionTLS12})
	defer conn.Close()
	if err := conn.HandshakeContext(ctx); err != nil {
		r.Error = fmt.Sprintf("no certificate signed by the cluster CA for %s: %v", addr, err)
		return r
	}
	r.Verified = true
	return r
}

// kubeletAddress is the address the apiserver reaches a kubelet at, with kforge's
// --kubelet-preferred-address-types (InternalIP,ExternalIP,Hostname).
func kubeletAddress(node *corev1.Node) string {
	for _, t := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP, corev1.NodeHostName} {
		for _, a := range node.Status.Addresses {
			if a.Type == t && a.Address != "" {
				return a.Address
			}
		}
	}
	return ""
}

// Unverified names the kubelets of ks that are not verified, with why.
func Unverified(ks []KubeletServing) []string {
	var out []string
	for _, k := range ks {
		if !k.Verified {
			out = append(out, k.Node+" ("+k.Error+")")
		}
	}
	return out
}

// ServingApproval reviews the kubelets' serving CSRs and checks the kubelets until every
// one serves a certificate signed by the cluster CA: what kforge up and kforge certs
// approve-serving share.
type ServingApproval struct {
	// Client reaches the cluster as an admin.
	Client kubernetes.Interface
	// CA is the cluster CA, PEM: the only one trusted when dialling kubelets.
	CA []byte
	// Dial opens connections to the kubelets; nil is a plain net.Dialer.
	Dial DialFunc
	// DryRun reviews without writing a verdict.
	DryRun bool
	// Interval is how often to look again; Timeout how long to wait in all. A dry run, or
	// a zero Timeout, looks once.
	Interval, Timeout time.Duration
	// Print, if set, gets the line for each CSR the first time a review decides it.
	Print func(line string)
	// GiveUpUnreachable stops the wait once a kubelet has been unreachable (no TCP
	// connection at all) for this long: waiting longer rarely helps a route or a firewall;
	// DefaultGiveUpUnreachable when zero.
	GiveUpUnreachable time.Duration
}

// DefaultGiveUpUnreachable is ServingApproval.GiveUpUnreachable when zero.
const DefaultGiveUpUnreachable = 30 * time.Second

// Run reviews the pending serving CSRs (ReviewServingCSRs) and checks every kubelet
// (CheckKubeletServing), again and again, until every kubelet is verified or the time is
// up. It returns what it found; the error says which kubelets are not verified and why
// (or what failed), and the report's Note says the same.
func (a ServingApproval) Run(ctx context.Context) (ServingCertsReport, error) {
	var rep ServingCertsReport
	seen := map[string]bool{}
	unreachableSince := map[string]time.Time{}
	giveUp := cmp.Or(a.GiveUpUnreachable, DefaultGiveUpUnreachable)
	round := func(ctx context.Context) error {
		csrs, err := ReviewServingCSRs(ctx, a.Client, a.DryRun)
		for _, c := range csrs {
			if !seen[c.Name] {
				seen[c.Name] = true
				rep.CSRs = append(rep.CSRs, c)
				if a.Print != nil {
					a.Print(c.Line(a.DryRun))
				}
			}
		}
		if err != nil {
			return err
		}
		ks, err := CheckKubeletServing(ctx, a.Client, a.CA, a.Dial)
		if err != nil {
			return err
		}
		rep.Kubelets = ks
		bad := Unverified(ks)
		if len(bad) == 0 {
			return nil
		}
		err = fmt.Errorf("%d of %d kubelets do not serve a certificate the cluster CA signed: %s", len(bad), len(ks), strings.Join(bad, "; "))
		now := time.Now()
		for _, k := range ks {
			switch since, ok := unreachableSince[k.Node]; {
			case !k.Unreachable:
				delete(unreachableSince, k.Node)
			case !ok:
				unreachableSince[k.Node] = now
			case now.Sub(since) >= giveUp:
				return wait.Permanent(fmt.Errorf("gave up after %s without a connection to %s's kubelet: %w", giveUp, k.Node, err))
			}
		}
		return err
	}
	var err error
	if a.DryRun || a.Timeout <= 0 {
		err = round(ctx)
	} else if err = wait.Poll(ctx, cmp.Or(a.Interval, DefaultPollInterval), a.Timeout, round); err != nil && ctx.Err() == nil && !errors.Is(err, wait.ErrPermanent) {
		// The last round may have been cut short by the deadline: say how the kubelets are
		// now, with a dial of their own.
		if ks, kerr := CheckKubeletServing(ctx, a.Client, a.CA, a.Dial); kerr == nil {
			rep.Kubelets = ks
			if bad := Unverified(ks); len(bad) > 0 {
				err = fmt.Errorf("after %s, %d of %d kubelets do not serve a certificate the cluster CA signed: %s", a.Timeout, len(bad), len(ks), strings.Join(bad, "; "))
			}
		}
	}
	if err != nil {
		rep.Note = err.Error()
	}
	return rep, err
}

// Line is how kforge says what a review decided on c.
func (c ServingCSR) Line(dryRun bool) string {
	who := c.Node
	if who == "" {
		who = "not a node"
	}
	switch {
	case c.Verdict == servingcsr.Pending:
		return fmt.Sprintf("left pending %s (%s): %s", c.Name, who, c.Reason)
	case dryRun:
		return fmt.Sprintf("would %s %s (%s): %s", c.Verdict, c.Name, who, c.Reason)
	case c.Done && c.Verdict == servingcsr.Approve:
		return fmt.Sprintf("approved %s (%s): %s", c.Name, who, c.Reason)
	case c.Done:
		return fmt.Sprintf("denied %s (%s): %s", c.Name, who, c.Reason)
	}
	return fmt.Sprintf("%s (%s) was decided meanwhile by someone else; left as it is", c.Name, who)
}

// ApproveServingCerts approves the kubelets' serving certificates when
// kubelet.server_tls_bootstrap is on (ServingApproval, from this machine): it reviews the
// pending serving CSRs, prints each verdict, and waits, up to Options.Timeout
// (DefaultServingCertsTimeout when zero), until every Node's kubelet serves a certificate
// signed by the cluster CA, reviewing again meanwhile since a kubelet may ask later. Only
// then does it record on each control-plane host that kubelets are verified
// (KubeletServingMarker) and reconfigure it, one at a time, so that its apiserver gets
// --kubelet-certificate-authority; if some kubelet is not verified it leaves the
// apiservers as they are and says which and why. A dry run reviews without writing,
// checks the kubelets once and says what a run would do. The outcome goes to the report.
// A control plane whose reconfigure fails is failed.
func (f *Fleet) ApproveServingCerts(ctx context.Context) error {
	if !f.HasCluster() {
		if f.o.DryRun {
			f.out().Say("no cluster yet: the kubelets' serving CSRs are reviewed once it exists")
		}
		return nil
	}
	if !f.c.Kubelet.ServerTLSBootstrap {
		f.out().Say("kubelet.server_tls_bootstrap is off: each kubelet signs its own serving certificate; nothing to approve, and the apiserver does not verify kubelets")
		return nil
	}
	ca, err := f.clusterCA()
	if err != nil {
		return err
	}
	rep := &ServingCertsReport{}
	defer func() {
		f.mu.Lock()
		f.serving = rep
		f.mu.Unlock()
	}()
	a := ServingApproval{
		Client: f.cs, CA: ca, Dial: f.o.DialKubelet, DryRun: f.o.DryRun,
		Interval: f.o.PollInterval, Timeout: cmp.Or(f.o.Timeout, DefaultServingCertsTimeout),
		Print: func(line string) { f.out().Say("%s", line) },
	}
	*rep, err = a.Run(ctx)
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case len(rep.CSRs) == 0:
		f.out().Say("no pending kubelet serving CSR")
	}
	if err != nil {
		if f.o.DryRun {
			f.out().Say("would wait for every kubelet to serve a certificate the cluster CA signed before the apiserver verifies kubelets; now %v", err)
			return nil
		}
		f.out().Say("WARNING: not turning on --kubelet-certificate-authority: %v", err)
		f.out().Say("the apiserver keeps reaching kubelets without verifying their certificates; fix those kubelets (a CSR left pending above, a node this machine cannot reach: run 'kforge certs approve-serving' on a control-plane host) and run kforge up again")
		return nil
	}
	f.out().Say("every kubelet (%d) serves a certificate signed by the cluster CA", len(rep.Kubelets))
	return f.verifyKubelets(ctx, rep)
}

// verifyKubelets has every control plane's apiserver verify kubelets: on each host that
// lacks KubeletServingMarker, one at a time, it writes the marker and runs kforge
// reconfigure there (which renders the apiserver's manifest with
// --kubelet-certificate-authority and waits for it to be healthy again). A host that
// cannot be reached, or fails, stops it: the hosts after it keep their apiserver as it is.
func (f *Fleet) verifyKubelets(ctx context.Context, rep *ServingCertsReport) error {
	var todo []string
	for _, h := range f.c.ControlPlaneHosts() {
		conn := f.conn(h.Name)
		if conn == nil {
			rep.Note = h.Name + " is not connected: its apiserver was not checked"
			f.out().Phase(h.Name, "not connected: cannot turn on --kubelet-certificate-authority there; run kforge up again once it is reachable")
			return nil
		}
		_, err := conn.Run(ctx, host.Cmd{Args: []string{"test", "-e", KubeletServingMarker}})
		var exit *host.ExitError
		switch {
		case err == nil:
			continue
		case errors.As(err, &exit) && exit.Code == 1:
			todo = append(todo, h.Name)
		default:
			f.Fail(h.Name, fmt.Errorf("checking for %s: %w", KubeletServingMarker, err))
			rep.Note = h.Name + " could not be checked"
			return nil
		}
	}
	if len(todo) == 0 {
		rep.VerifyKubelets = true
		f.out().Say("every apiserver already verifies kubelets with the cluster CA (--kubelet-certificate-authority)")
		return nil
	}
	if f.o.DryRun {
		rep.VerifyKubelets = true
		for _, n := range todo {
			f.out().Phase(n, "would add --kubelet-certificate-authority to the apiserver (restarts kube-apiserver)")
		}
		return nil
	}
	stamp := MarkerText(rep.Kubelets, time.Now())
	for _, n := range todo {
		err := f.timed(n, func() error {
			if _, err := f.ensureKforge(ctx, n); err != nil {
				return err
			}
			if _, err := f.conn(n).Upload(ctx, host.BytesFile(RemoteConfig, f.remote, 0o600)); err != nil {
				return err
			}
			if _, err := f.conn(n).Upload(ctx, host.BytesFile(KubeletServingMarker, stamp, 0o644)); err != nil {
				return fmt.Errorf("writing %s: %w", KubeletServingMarker, err)
			}
			args := append([]string{"reconfigure", "-f", RemoteConfig, "--node", n}, f.hostFlags()...)
			return f.kforge(ctx, n, args, nil)
		})
		if err != nil {
			f.Fail(n, fmt.Errorf("turning on --kubelet-certificate-authority: %w", err))
			rep.Note = "turning it on failed on " + n
			return nil
		}
		f.out().Phase(n, "the apiserver verifies kubelets with the cluster CA now (--kubelet-certificate-authority); healthy again")
	}
	rep.VerifyKubelets = true
	return nil
}

// MarkerText is what KubeletServingMarker holds, for the operator who finds it: when and
// which kubelets were verified.
func MarkerText(ks []KubeletServing, now time.Time) []byte {
	names := make([]string, len(ks))
	for i, k := range ks {
		names[i] = k.Node
	}
	return fmt.Appendf(nil, "every kubelet served a certificate signed by the cluster CA at %s: %s\n", now.UTC().Format(time.RFC3339), strings.Join(names, ", "))
}

// clusterCA is the cluster CA of admin.conf's current cluster, PEM.
func (f *Fleet) clusterCA() ([]byte, error) {
	cfg, err := clientcmd.Load(f.admin)
	if err != nil {
		return nil, fmt.Errorf("reading admin.conf: %w", err)
	}
	ctx := cfg.Contexts[cfg.CurrentContext]
	if ctx == nil || cfg.Clusters[ctx.Cluster] == nil || len(cfg.Clusters[ctx.Cluster].CertificateAuthorityData) == 0 {
		return nil, errors.New("reading the cluster CA: admin.conf's current cluster embeds no certificate-authority-data")
	}
	return cfg.Clusters[ctx.Cluster].CertificateAuthorityData, nil
}
