package fleet

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/config"
)

// Actions of a host in an up run.
const (
	ActionInit             = "init"
	ActionJoinControlPlane = "join control-plane"
	ActionJoinWorker       = "join worker"
	ActionUnchanged        = "unchanged"
	ActionRemove           = "remove"
	ActionReset            = "reset"
)

// Observed is what connecting to the hosts and asking the cluster found. Observe gathers
// it; MakePlan turns it into actions.
type Observed struct {
	// Unreachable names the hosts that could not be reached, or whose cluster state could
	// not be read (an SSH or sudo failure); they get no action.
	Unreachable map[string]bool
	// Cluster is true when a control-plane host's admin.conf reached a running cluster.
	Cluster bool
	// Via is the control-plane host whose admin.conf reached it.
	Via string
	// Nodes are the cluster's Nodes by name (empty without a cluster).
	Nodes map[string]Node
	// Stale names the hosts that have a Node but no kubelet.conf: they were reset.
	Stale map[string]bool
	// State lists, for each control-plane host that was reached, the cluster state found
	// on it (the paths of a CA, etcd data, kubelet.conf, admin.conf, static pod manifests);
	// a host that holds none has no entry.
	State map[string][]string
	// InitInProgress names the control-plane hosts that hold InitMarker: a kforge init
	// began there and has not finished.
	InitInProgress map[string]bool
	// Silent says, for each control-plane host whose admin.conf did not reach the cluster
	// (a timeout, a refused connection, a server error), what the API client said.
	Silent map[string]string
	// Rejected, when set, is an admin.conf the API refused outright: an authentication or
	// TLS failure, which no retry and no init fixes.
	Rejected *Rejection
	// Certs are the certificates' expiry on each host that answered (readCerts): up's
	// recovery of expired certificates plans from them (planRecovery).
	Certs map[string]HostCerts
	// Stored is the configuration the cluster stores (kube-system/kubeadm-config: kforge's
	// kforge.toml, or one derived from kubeadm's ClusterConfiguration); nil without a
	// cluster, or when the cluster stores none.
	Stored *bootstrap.StoredCluster
}

// Rejection is an admin.conf of a control-plane host that the API refused.
type Rejection struct {
	// Host is the control-plane host the admin.conf was read from.
	Host string
	// TLS is true for a certificate failure (x509: unknown authority, a name mismatch);
	// false for 401 Unauthorized or 403 Forbidden.
	TLS bool
	// Err is what the API client said.
	Err string
	// Expired is true when the certificate failure is an expired certificate.
	Expired bool
}

// Why MakePlan refuses to plan; branch on them with errors.Is.
var (
	// ErrControlPlaneUnreachable: no cluster was found, but not every control-plane host
	// could be checked, so up cannot tell that there is none.
	ErrControlPlaneUnreachable = errors.New("cannot tell whether a cluster exists: control-plane hosts unreachable")
	// ErrClusterNotAnswering: a control-plane host holds cluster state, but no admin.conf
	// reaches a running cluster.
	ErrClusterNotAnswering = errors.New("a control-plane host holds cluster state but the cluster does not answer")
	// ErrAPIRejected: the API refused a control-plane host's admin.conf (authentication or
	// TLS).
	ErrAPIRejected = errors.New("the cluster's API refused admin.conf")
	// ErrUnsafeChange: the file changes a setting that a running cluster cannot change
	// (see unsafeChanges).
	ErrUnsafeChange = errors.New("the file changes settings a running cluster cannot change")
)

// Node is what the plan needs to know of one of the cluster's Nodes.
type Node struct {
	// ControlPlane is true when the Node has the control-plane role label.
	ControlPlane bool
	// Ready is the Node's Ready condition.
	Ready bool
	// KubeletVersion is the version its kubelet reports ("v1.31.2").
	KubeletVersion string
}

// Step is the plan for one host of the file.
type Step struct {
	Host   string
	Role   string
	Action string
	// Note says why the action differs from the plain one ("it was reset"), or why there
	// is nothing to do; empty when the action speaks for itself.
	Note string
}

// Extra is a Node of the cluster that the file does not name.
type Extra struct {
	Name string
	Role string
}

// Plan is what an up run does: which host inits, and each reachable host's action.
type Plan struct {
	// Init names the host that runs init; empty when a cluster exists (or the file has no
	// control-plane host).
	Init string
	// Steps are the reachable hosts of the file, in file order.
	Steps []Step
	// NotInFile are the cluster's Nodes that the file does not name, by name.
	NotInFile []Extra
	// Recovery is what the run does first about expired certificates (planRecovery). When
	// it renews control planes, Steps hold only those: the rest is planned again once the
	// cluster answers.
	Recovery Recovery
}

// PlanOptions are the operator's intent, beyond the file.
type PlanOptions struct {
	// InitNewCluster lets the plan init when up cannot prove that there is no cluster:
	// control-plane hosts are unreachable, or hold cluster state while no apiserver
	// answers (up --init-new-cluster).
	InitNewCluster bool
}

// MakePlan decides every host's action from the file and what was observed. It has no
// side effects. It plans init only when no cluster answered and either every
// control-plane host was checked and none holds cluster state, or the only state is that
// of kforge's own unfinished init on the first control-plane host (which init completes),
// or o.InitNewCluster says to; otherwise, and whenever the API refused an admin.conf, it returns an error that says
// what to check. With a cluster, it refuses a file that changes a setting the cluster
// cannot change (ErrUnsafeChange), before any host or object is touched.
func MakePlan(c *config.Cluster, o Observed, opts PlanOptions) (Plan, error) {
	var p Plan
	rec, err := planRecovery(c, o)
	if err != nil {
		return Plan{}, err
	}
	if len(rec.ControlPlanes) > 0 {
		return recoveryPlan(c, rec), nil
	}
	p.Recovery = rec
	if o.Rejected != nil {
		return Plan{}, rejected(o.Rejected)
	}
	if o.Cluster && o.Stored != nil {
		if err := unsafeChanges(c, o.Stored); err != nil {
			return Plan{}, err
		}
	}
	var initNote string
	if !o.Cluster {
		init, note, err := initHost(c, o, opts)
		if err != nil {
			return Plan{}, err
		}
		p.Init, initNote = init, note
	}
	for _, h := range c.Hosts {
		if o.Unreachable[h.Name] {
			continue
		}
		s := Step{Host: h.Name, Role: roleOf(&h)}
		n, inCluster := o.Nodes[h.Name]
		switch {
		case inCluster && h.IsControlPlane() && !n.ControlPlane && !o.Stale[h.Name]:
			// The kubelet registered, but the join stopped before the node was marked: run
			// the join again, which picks up where it stopped.
			s.Action = ActionJoinControlPlane
			s.Note = "its Node is not marked as a control-plane node yet: its join did not finish"
		case inCluster && o.Stale[h.Name]:
			s.Action = joinAction(&h)
			s.Note = "has a Node in the cluster but no kubelet.conf (it was reset): its Node will be replaced"
		case inCluster:
			s.Action = ActionUnchanged
			state := "NotReady"
			if n.Ready {
				state = "Ready"
			}
			s.Note = "in the cluster (" + state + "): reconfigured only where it differs from the file"
		case h.Name == p.Init:
			s.Action = ActionInit
			s.Note = initNote
		default:
			s.Action = joinAction(&h)
		}
		p.Steps = append(p.Steps, s)
	}
	for name, n := range o.Nodes {
		if _, ok := c.HostByName(name); ok {
			continue
		}
		role := config.RoleWorker
		if n.ControlPlane {
			role = config.RoleControlPlane
		}
		p.NotInFile = append(p.NotInFile, Extra{Name: name, Role: role})
	}
	sort.Slice(p.NotInFile, func(i, j int) bool { return p.NotInFile[i].Name < p.NotInFile[j].Name })
	return p, nil
}

// Hosts names the hosts whose action is one of actions, in file order.
func (p Plan) Hosts(actions ...string) []string {
	var out []string
	for _, s := range p.Steps {
		for _, a := range actions {
			if s.Action == a {
				out = append(out, s.Host)
				break
			}
		}
	}
	return out
}

// ControlPlaneJoins reports whether the plan joins a control-plane host.
func (p Plan) ControlPlaneJoins() bool { return len(p.Hosts(ActionJoinControlPlane)) > 0 }

func joinAction(h *config.Host) string {
	if h.IsControlPlane() {
		return ActionJoinControlPlane
	}
	return ActionJoinWorker
}

func roleOf(h *config.Host) string {
	if h.IsControlPlane() {
		return config.RoleControlPlane
	}
	return config.RoleWorker
}

// initHost is the host that inits a cluster when none answered: the file's first
// control-plane host, once it is safe to say that there is no cluster, or that the only
// cluster state is that of kforge's own unfinished init on that host (see resumeInit). The
// note, when set, says the init resumes one.
func initHost(c *config.Cluster, o Observed, opts PlanOptions) (init, note string, err error) {
	cps := c.ControlPlaneHosts()
	if len(cps) == 0 {
		return "", "", nil
	}
	var unreachable, holding []string
	for _, h := range cps {
		if o.Unreachable[h.Name] {
			unreachable = append(unreachable, h.Name)
		}
		if len(o.State[h.Name]) > 0 {
			holding = append(holding, h.Name)
		}
	}
	first := cps[0].Name
	resume, whyNot := resumeInit(first, holding, unreachable, o)
	switch {
	case opts.InitNewCluster && o.Unreachable[first]:
		return "", "", fmt.Errorf("cannot init a new cluster: the first control-plane host %s, which runs init, is unreachable", first)
	case resume:
		return first, fmt.Sprintf("resuming kforge's unfinished init on %s (it holds %s)", first, InitMarker), nil
	case opts.InitNewCluster:
		return first, "", nil
	case len(holding) > 0:
		var b strings.Builder
		for _, h := range holding {
			fmt.Fprintf(&b, "\n  %s holds %s", h, strings.Join(o.State[h], ", "))
			if why := o.Silent[h]; why != "" {
				fmt.Fprintf(&b, "; its admin.conf does not reach the cluster: %s", why)
			}
		}
		if whyNot != "" {
			fmt.Fprintf(&b, "\n  (%s)", whyNot)
		}
		return "", "", fmt.Errorf("%w: not running init, which would make a second cluster:%s\n"+
			"Check the apiserver and etcd on %s (crictl ps -a, journalctl -u kubelet, the control_plane_endpoint); "+
			"if you really want a fresh cluster, run kforge reset on %s first, or pass --init-new-cluster",
			ErrClusterNotAnswering, b.String(), strings.Join(holding, ", "), strings.Join(holding, ", "))
	case len(unreachable) > 0:
		return "", "", fmt.Errorf("%w: %s; not running init, which would make a second cluster if one of them is in one.\n"+
			"Check that they are up and reachable over SSH as the file says (address, port, user, bastion, sudo); "+
			"their errors are listed above. To start a new cluster anyway, pass --init-new-cluster",
			ErrControlPlaneUnreachable, strings.Join(unreachable, ", "))
	}
	return first, "", nil
}

// resumeInit reports whether the cluster state the control-plane hosts hold is only that
// of a kforge init that began on the first of them (first) and did not finish: every
// control-plane host was checked, first holds InitMarker, and no other holds any state.
// Running init there again then completes that init. When state is found but it is not
// such an init, whyNot says why, for the refusal.
func resumeInit(first string, holding, unreachable []string, o Observed) (resume bool, whyNot string) {
	if len(holding) == 0 {
		return false, ""
	}
	var marked, others []string
	for _, h := range holding {
		if o.InitInProgress[h] {
			marked = append(marked, h)
		}
		if h != first {
			others = append(others, h)
		}
	}
	switch {
	case !o.InitInProgress[first] && len(marked) > 0:
		return false, fmt.Sprintf("not resuming the unfinished init on %s: only the first control-plane host, %s, inits",
			strings.Join(marked, ", "), first)
	case !o.InitInProgress[first] && slices.Contains(holding, first):
		return false, fmt.Sprintf("not kforge's unfinished init: %s holds no %s", first, InitMarker)
	case !o.InitInProgress[first]:
		return false, ""
	case len(others) > 0:
		return false, fmt.Sprintf("not resuming the unfinished init on %s: %s holds cluster state too", first, strings.Join(others, ", "))
	case len(unreachable) > 0:
		return false, fmt.Sprintf("not resuming the unfinished init on %s: %s could not be checked", first, strings.Join(unreachable, ", "))
	}
	return true, ""
}

// rejected explains an admin.conf the API refused.
func rejected(r *Rejection) error {
	check := "The apiserver behind the server URL of admin.conf on " + r.Host + " (the control_plane_endpoint) does not " +
		"accept its credentials: check that the endpoint reaches this cluster and not another, and that the admin " +
		"certificate is valid (kforge certs check-expiration on " + r.Host + ")"
	if r.Expired {
		check = "A certificate has expired (the apiserver's, or admin.conf's client certificate). kforge up renews expired " +
			"certificates when it finds them on the control-plane hosts; it found none expired by the hosts' clocks, so check " +
			"the clocks of " + r.Host + " and of this machine, and kforge certs check-expiration on " + r.Host
	} else if r.TLS {
		check = "The apiserver behind the server URL of admin.conf on " + r.Host + " (the control_plane_endpoint) " +
			"presents a certificate that the CA in that admin.conf does not vouch for: check that the endpoint reaches " +
			"this cluster's apiservers and not another cluster's, or a proxy"
	}
	return fmt.Errorf("%w: %s: %s\nNot going on, so as not to act on the wrong cluster. %s",
		ErrAPIRejected, r.Host, r.Err, check)
}

// unsafeChanges compares the file with the configuration the cluster stores and lists, all
// at once, the settings that a running cluster cannot change in place, each with both
// values and why; nil when there are none.
func unsafeChanges(c *config.Cluster, stored *bootstrap.StoredCluster) error {
	s := stored.Cluster
	etcdKind := func(c *config.Cluster) string {
		if c.Etcd.External != nil {
			return "external"
		}
		return "local"
	}
	checks := []struct {
		setting, old, new, why string
	}{
		{"name", s.Name, c.Name,
			"the cluster's certificates, kubeconfigs and stored configuration carry its name"},
		{"networking.pod_cidr", s.Networking.PodCIDR, c.Networking.PodCIDR,
			"every Node's pod range was allocated from it, and running pods have addresses in it"},
		{"networking.service_cidr", s.Networking.ServiceCIDR, c.Networking.ServiceCIDR,
			"every Service's cluster IP, the kubernetes Service and the DNS address were given from it, and the apiserver's certificate holds its first address"},
		{"networking.dns_domain", s.Networking.DNSDomain, c.Networking.DNSDomain,
			"every kubelet's cluster domain and the apiserver's certificate hold it, and pods resolve Service names with it"},
		{"etcd", etcdKind(s), etcdKind(c),
			"the cluster's data lives in the etcd it has; switching between a local and an external etcd would start from an empty one"},
	}
	var b strings.Builder
	for _, ch := range checks {
		if ch.old != ch.new {
			fmt.Fprintf(&b, "\n  %s: %q in the cluster, %q in the file: %s", ch.setting, ch.old, ch.new, ch.why)
		}
	}
	if b.Len() == 0 {
		return nil
	}
	where := "kube-system/kubeadm-config"
	if stored.FromKubeadm {
		where += ", from kubeadm's ClusterConfiguration"
	}
	return fmt.Errorf("%w (the cluster's values are those stored in %s):%s\n"+
		"Nothing was changed. Put the cluster's values back in the file; to change these settings, rebuild the cluster "+
		"(kforge reset on every host, then kforge up)", ErrUnsafeChange, where, b.String())
}
