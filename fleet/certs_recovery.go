package fleet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/host"
	"github.com/kforge/kforge/internal/wait"
	"github.com/kforge/kforge/kubeconfig"
	"github.com/kforge/kforge/kubelet"
	"github.com/kforge/kforge/manifests"
	"github.com/kforge/kforge/service"
	"github.com/kforge/kforge/tokens"
)

// Actions and kinds of the recovery of expired certificates.
const (
	// ActionRenewCerts is the action of a control-plane host whose certificates expired:
	// `kforge certs renew all` there, offline, before anything needs the API.
	ActionRenewCerts = "renew expired certificates"
	// RecoverControlPlane and RecoverKubelet are the kinds of CertRecovery.
	RecoverControlPlane = "control-plane"
	RecoverKubelet      = "kubelet"
)

// ErrCAExpired: a CA on a control-plane host has expired. kforge never makes a new one on
// its own.
var ErrCAExpired = errors.New("a cluster CA has expired")

// CertRecovery is one host whose certificates expired, and what up does about it.
type CertRecovery struct {
	Host string `json:"host"`
	// Kind is RecoverControlPlane (leaf and kubeconfig certificates, and the kubelet's,
	// renewed offline on the host) or RecoverKubelet (a host's kubelet re-bootstrapped).
	Kind string `json:"kind"`
	// Expired are the certificates that have expired, the first to expire first.
	Expired []HostCert `json:"expired"`
	// ExpiredSeconds is how long ago the first of them expired, by the host's clock.
	ExpiredSeconds int64 `json:"expired_seconds"`
	// Note says it in words, for the plan.
	Note string `json:"note"`
}

// Recovery is what up does, before anything else, for certificates that expired (while a
// cluster was off, typically): control planes first, then kubelets.
type Recovery struct {
	// ControlPlanes are renewed offline one at a time, each apiserver ready before the next.
	ControlPlanes []CertRecovery `json:"control_planes,omitempty"`
	// Kubelets are re-bootstrapped once the cluster answers.
	Kubelets []CertRecovery `json:"kubelets,omitempty"`
}

// planRecovery decides, from the certificates Observe read on each host (o.Certs), which
// control-plane hosts renew their certificates offline and which workers' kubelets are
// re-bootstrapped (those in the cluster, see workerJoined). A control-plane host recovers when any of its leaf or kubeconfig
// certificates, or its kubelet's client certificate (without which its kubelet does not
// start, nor its static pods), has expired. An expired CA is an error (ErrCAExpired).
// Expiry is judged by each host's own clock. Hosts are taken in file order.
func planRecovery(c *config.Cluster, o Observed) (Recovery, error) {
	var r Recovery
	var caErrs []string
	var kubelets []CertRecovery // workers' expired kubelets, kept once the control planes are known
	for _, h := range c.Hosts {
		hc, ok := o.Certs[h.Name]
		if !ok || o.Unreachable[h.Name] {
			continue
		}
		if h.IsControlPlane() {
			for _, ca := range Expired(hc.CAs, hc.Now) {
				caErrs = append(caErrs, fmt.Sprintf("%s: %s (%s) expired %s ago, on %s",
					h.Name, ca.Name, ca.Path, ago(hc.Now.Sub(ca.NotAfter)), ca.NotAfter.Format(time.RFC3339)))
			}
			expired := Expired(hc.Leaves, hc.Now)
			if hc.KubeletExpired() {
				expired = Expired(append(expired, *hc.KubeletClient), hc.Now)
			}
			if len(expired) == 0 {
				continue
			}
			first := expired[0]
			since := hc.Now.Sub(first.NotAfter)
			what := fmt.Sprintf("%s expired %s ago", first.Name, ago(since))
			if n := len(expired) - 1; n > 0 {
				what += fmt.Sprintf(", and %d more", n)
			}
			r.ControlPlanes = append(r.ControlPlanes, CertRecovery{Host: h.Name, Kind: RecoverControlPlane, Expired: expired,
				ExpiredSeconds: int64(since.Seconds()),
				Note:           fmt.Sprintf("certificates expired on %s (%s): renews offline, restarts static pods", h.Name, what)})
			continue
		}
		if hc.KubeletExpired() {
			since := hc.Now.Sub(hc.KubeletClient.NotAfter)
			kubelets = append(kubelets, CertRecovery{Host: h.Name, Kind: RecoverKubelet, Expired: []HostCert{*hc.KubeletClient},
				ExpiredSeconds: int64(since.Seconds()),
				Note:           fmt.Sprintf("kubelet client certificate of %s expired %s ago: re-bootstraps", h.Name, ago(since))})
		}
	}
	for _, k := range kubelets {
		if workerJoined(o, k.Host) || !o.Cluster && len(r.ControlPlanes) > 0 {
			r.Kubelets = append(r.Kubelets, k)
		}
	}
	if len(caErrs) > 0 {
		return Recovery{}, fmt.Errorf("%w:\n  %s\nNothing was changed. kforge never makes a new CA on its own: every kubeconfig, "+
			"every joined node and the cluster-info ConfigMap trust the old one, so a new CA would cut them all off. "+
			"Either put back a CA certificate for the same key with a later expiry on every control-plane host (all kubeconfigs "+
			"embed the CA certificate and need it too), or rebuild the cluster: kforge reset on every host, then kforge up",
			ErrCAExpired, strings.Join(caErrs, "\n  "))
	}
	return r, nil
}

// workerJoined reports whether the cluster answered and has the host's Node, and the host
// was not reset since: only such a kubelet is re-bootstrapped. One that is not in the
// cluster joins instead; one behind control planes that renew first is planned again once
// the cluster answers.
func workerJoined(o Observed, name string) bool {
	_, ok := o.Nodes[name]
	return o.Cluster && ok && !o.Stale[name]
}

// recoveryPlan is the plan of a run that must renew control planes first: those hosts
// renew; every other host's action is decided once the cluster answers again.
func recoveryPlan(c *config.Cluster, r Recovery) Plan {
	p := Plan{Recovery: r}
	for _, rec := range r.ControlPlanes {
		h, _ := c.HostByName(rec.Host)
		p.Steps = append(p.Steps, Step{Host: rec.Host, Role: roleOf(h), Action: ActionRenewCerts, Note: rec.Note})
	}
	return p
}

// ago writes a duration as "3h", "2d", "5m" or "40s": how long ago something expired.
func ago(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	case d >= time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	case d >= time.Minute:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	}
	return fmt.Sprintf("%ds", int(d/time.Second))
}

// showRecovery prints the kubelet re-bootstraps of a plan (the control planes' renewals are
// steps of their own) and keeps the recovery for the report; a later plan of the same run
// adds to it.
func (f *Fleet) showRecovery(r Recovery) {
	for _, k := range r.Kubelets {
		f.out().Phase(k.Host, "%s", k.Note)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	have := map[string]bool{}
	for _, l := range [][]CertRecovery{f.recovery.ControlPlanes, f.recovery.Kubelets} {
		for _, x := range l {
			have[x.Kind+"/"+x.Host] = true
		}
	}
	for _, x := range r.ControlPlanes {
		if !have[x.Kind+"/"+x.Host] {
			f.recovery.ControlPlanes = append(f.recovery.ControlPlanes, x)
		}
	}
	for _, x := range r.Kubelets {
		if !have[x.Kind+"/"+x.Host] {
			f.recovery.Kubelets = append(f.recovery.Kubelets, x)
		}
	}
}

// RenewControlPlanes recovers the control-plane hosts whose certificates expired, one at
// a time in plan order: it installs this kforge and the file there, runs `kforge certs
// renew all` (offline, from the CA on disk; it restarts the kubelet if its certificate
// expired, then the static pods whose files changed), and waits for that host's apiserver
// to answer /readyz with the renewed admin.conf before the next. Where etcd cannot have a
// quorum yet (renewedBeforeQuorum), the first hosts renew without waiting (`--skip-phases
// wait-control-plane`) and are waited for with the host that makes the quorum. A failure
// stops there: the hosts after it are not touched. Then it reads the renewed admin.conf,
// which becomes the run's admin kubeconfig (and the operator's, which up writes from the
// report).
func (f *Fleet) RenewControlPlanes(ctx context.Context, recs []CertRecovery) error {
	noWait := renewedBeforeQuorum(f.c, len(recs))
	var renewed, waiting []string // waiting: renewed, their apiserver not yet waited for
	fail := func(name string, err error) error {
		f.Fail(name, err)
		for _, rest := range recs {
			why := "not renewed: the renewal on " + name + " failed first; fix it and run kforge up again"
			if slices.Contains(renewed, rest.Host) {
				why = "renewed, but its apiserver was not waited for: " + name + " failed first; run kforge up again"
			}
			f.Skip(rest.Host, why)
		}
		return fmt.Errorf("%s: %w; the control planes after it were left alone. Fix it (see the output above; "+
			"kforge certs renew all on the host does the same) and run kforge up again", name, err)
	}
	for i, rec := range recs {
		name := rec.Host
		if f.conn(name) == nil {
			continue
		}
		wait := i >= noWait
		err := f.timed(name, func() error {
			if _, err := f.ensureKforge(ctx, name); err != nil {
				return err
			}
			args := []string{"certs", "renew", "all", "-f", RemoteConfig, "--node", name}
			if wait {
				f.out().Phase(name, "renewing its certificates offline (kforge certs renew all)")
			} else {
				args = append(args, "--skip-phases", "wait-control-plane")
				f.out().Phase(name, "renewing its certificates offline (kforge certs renew all); its apiserver is waited for "+
					"once etcd has a quorum of members with renewed certificates")
			}
			if err := f.kforge(ctx, name, args, nil); err != nil {
				return fmt.Errorf("renewing the expired certificates: %w", err)
			}
			return nil
		})
		if err != nil {
			return fail(name, err)
		}
		renewed, waiting = append(renewed, name), append(waiting, name)
		if !wait && i < len(recs)-1 {
			continue
		}
		for _, n := range waiting {
			if err := f.timed(n, func() error { return f.waitReadyz(ctx, n) }); err != nil {
				return fail(n, err)
			}
			f.done(n, "certificates renewed offline, static pods restarted, apiserver ready")
		}
		waiting = nil
	}
	if len(renewed) == 0 {
		return nil
	}
	last := renewed[len(renewed)-1]
	if err := f.readAdmin(ctx, last); err != nil {
		return fmt.Errorf("reaching the cluster with the renewed admin.conf of %s: %w", last, err)
	}
	return nil
}

// renewedBeforeQuorum is how many of the expired control planes, taken in order, renew
// without waiting for their apiserver: with a local etcd, an apiserver is ready only once
// etcd has a quorum of members whose peer certificates are valid, so with n control planes
// of which expired have expired certificates, the first quorum-(n-expired)-1 renewals
// cannot be ready on their own; the one that makes the quorum can, and the ones before it
// are waited for then. Zero with an external etcd.
func renewedBeforeQuorum(c *config.Cluster, expired int) int {
	if c.Etcd.Local == nil {
		return 0
	}
	n := len(c.ControlPlaneHosts())
	return max(0, n/2+1-(n-expired)-1)
}

// readyzTimeout bounds the wait for a renewed apiserver.
const readyzTimeout = 3 * time.Minute

// waitReadyz reads admin.conf from a control-plane host and waits until the apiserver on
// that very host (its node address, not the control_plane_endpoint) answers /readyz.
func (f *Fleet) waitReadyz(ctx context.Context, name string) error {
	res, err := f.conn(name).Run(ctx, host.Cmd{Script: "cat " + host.ShellQuote(adminConf), Display: "read admin.conf"})
	if err != nil {
		return fmt.Errorf("reading the renewed admin.conf: %w", err)
	}
	h, _ := f.c.HostByName(name)
	admin, err := withServer(res.Stdout, "https://"+net.JoinHostPort(h.NodeIP(), strconv.Itoa(apiserverPort(f.c))))
	if err != nil {
		return err
	}
	f.out().Phase(name, "waiting up to %s for its apiserver's /readyz", readyzTimeout)
	err = wait.Poll(ctx, f.o.PollInterval, readyzTimeout, func(ctx context.Context) error {
		return f.o.Readyz(ctx, admin)
	})
	if err != nil {
		return fmt.Errorf("waiting for the apiserver on %s to be ready after the renewal: %w (check crictl ps -a and journalctl -u kubelet there)", name, err)
	}
	return nil
}

// AdminReadyz asks the apiserver of an admin kubeconfig for /readyz, with its credentials.
func AdminReadyz(ctx context.Context, kc []byte) error {
	rc, err := clientcmd.RESTConfigFromKubeConfig(kc)
	if err != nil {
		return fmt.Errorf("reading admin.conf: %w", err)
	}
	rc.Timeout = 10 * time.Second
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	_, err = cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	return err
}

// apiserverPort is the port each apiserver listens on.
func apiserverPort(c *config.Cluster) int {
	if n, err := strconv.Atoi(c.APIServer.ExtraArgs["secure-port"]); err == nil {
		return n
	}
	return config.DefaultAPIServerPort
}

// withServer points every cluster of a kubeconfig at server.
func withServer(kc []byte, server string) ([]byte, error) {
	cfg, err := clientcmd.Load(kc)
	if err != nil {
		return nil, fmt.Errorf("reading admin.conf: %w", err)
	}
	for _, cl := range cfg.Clusters {
		cl.Server = server
	}
	return clientcmd.Write(*cfg)
}

// kubeletBootstrapTTL is how long the token of a kubelet's re-bootstrap lives; it is
// deleted as soon as the node is Ready.
const kubeletBootstrapTTL = 15 * time.Minute

// nodeReadyTimeout bounds the wait for a re-bootstrapped kubelet's Node.
const nodeReadyTimeout = 5 * time.Minute

// RebootstrapKubelets gives each named host whose kubelet client certificate expired a
// new one through the kubelet's TLS bootstrap, as a join does: a bootstrap token of its
// own that lives kubeletBootstrapTTL, in bootstrap-kubelet.conf (mode 0600, sent as a file,
// never on a command line); the kubelet, restarted, finds its certificate expired, asks
// for a new one with the token, and the cluster approves it (the auto-approval bindings
// init made). Its new key never leaves the host. It waits for the Node to be Ready, then
// deletes the token and the file. Hosts go in parallel; a failure fails that host only.
func (f *Fleet) RebootstrapKubelets(ctx context.Context, recs []CertRecovery) {
	if !f.HasCluster() || len(recs) == 0 {
		return
	}
	caPEM, err := f.adminCA()
	if err != nil {
		for _, r := range recs {
			f.Fail(r.Host, err)
		}
		return
	}
	var conns []host.Host
	for _, r := range recs {
		if c := f.conn(r.Host); c != nil {
			conns = append(conns, c)
		}
	}
	bootPath := manifests.DefaultKubeconfigDir + "/" + kubelet.BootstrapConfigName
	err = host.ForEach(ctx, conns, f.o.Concurrency, func(ctx context.Context, conn host.Host) error {
		name := conn.Name()
		return f.timed(name, func() error {
			t, err := tokens.Generate()
			if err != nil {
				return err
			}
			f.addSecret(t.Secret, t.Reveal())
			if err := f.createToken(ctx, t, kubeletBootstrapTTL, "kubelet re-bootstrap of "+name); err != nil {
				return err
			}
			defer f.deleteToken(context.WithoutCancel(ctx), t.ID)
			data, err := kubeconfig.BuildWithToken(f.c.Name, f.c.EndpointURL(), caPEM, kubeconfig.BootstrapUser, t.Reveal())
			if err != nil {
				return err
			}
			if _, err := conn.Upload(ctx, host.BytesFile(bootPath, data, 0o600)); err != nil {
				return fmt.Errorf("writing %s: %w", bootPath, err)
			}
			defer func() {
				_, _ = conn.Run(context.WithoutCancel(ctx), host.Cmd{Script: "rm -f " + host.ShellQuote(bootPath), Display: "remove " + bootPath})
			}()
			if _, err := conn.Run(ctx, host.Cmd{Script: restartKubeletScript, Display: "restart the kubelet"}); err != nil {
				return fmt.Errorf("restarting the kubelet for its TLS bootstrap: %w", err)
			}
			f.out().Phase(name, "kubelet restarted with a bootstrap token; waiting up to %s for Node %s to be Ready", nodeReadyTimeout, name)
			return f.waitNodeReady(ctx, name)
		})
	})
	f.failEach(err)
	for _, r := range recs {
		f.mu.Lock()
		rep := f.reports[r.Host]
		failed := rep != nil && rep.Result == ResultFailed
		f.mu.Unlock()
		if !failed && f.conn(r.Host) != nil {
			f.out().Phase(r.Host, "kubelet re-bootstrapped: it has a new client certificate and its Node is Ready")
		}
	}
}

// restartKubeletScript restarts the kubelet under systemd, or, where there is no systemd,
// asks kforge's supervisor of the kubelet to restart it (SIGHUP, as service.Supervisor does).
var restartKubeletScript = "if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then systemctl restart kubelet\n" +
	"elif [ -f " + supervisorPid + " ] && kill -HUP \"$(cat " + supervisorPid + ")\"; then :\n" +
	"else echo 'neither systemd nor a kforge supervisor runs the kubelet here: start it' >&2; exit 1; fi\n"

var supervisorPid = path.Join(service.DefaultStateDir, "kubelet.pid")

// adminCA is the cluster CA of the run's admin kubeconfig.
func (f *Fleet) adminCA() ([]byte, error) {
	f.mu.Lock()
	admin := f.admin
	f.mu.Unlock()
	cfg, err := clientcmd.Load(admin)
	if err != nil {
		return nil, fmt.Errorf("reading admin.conf: %w", err)
	}
	for _, cl := range cfg.Clusters {
		if len(cl.CertificateAuthorityData) > 0 {
			return cl.CertificateAuthorityData, nil
		}
	}
	return nil, errors.New("admin.conf holds no cluster CA to write bootstrap-kubelet.conf with")
}

// waitNodeReady waits until the Node of name is Ready.
func (f *Fleet) waitNodeReady(ctx context.Context, name string) error {
	err := wait.Poll(ctx, f.o.PollInterval, nodeReadyTimeout, func(ctx context.Context) error {
		n, err := f.cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !nodeReady(n) {
			return fmt.Errorf("Node %s is not Ready yet", name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("waiting for Node %s to be Ready after the kubelet's re-bootstrap: %w (check journalctl -u kubelet there, "+
			"and kubectl get csr for a request left pending)", name, err)
	}
	return nil
}
