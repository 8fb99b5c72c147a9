package fleet

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/manifests"
)

// Whether a host matches the file, in a Status.
const (
	MatchYes     = "yes"
	MatchNo      = "no"
	MatchUnknown = "unknown"
)

// NoteOtherBuild is the MatchNote of a host whose kforge is not this build: status does not
// install kforge, so it cannot ask the host for its plan.
const NoteOtherBuild = "kforge on the host is another build; run kforge up"

// Status is what `kforge status -o json` prints: the cluster, one entry per host (the
// file's in file order, then the Nodes the file does not list, by name), and what is wrong.
type Status struct {
	Cluster ClusterStatus `json:"cluster"`
	Hosts   []HostStatus  `json:"hosts"`
	// OK is true when the API answers and every host of the file is reachable, in the
	// cluster, Ready (with its static pods), holds no expired certificate and matches the
	// file, and the cluster has no Node the file does not list; `kforge status` exits 0
	// exactly then.
	OK bool `json:"ok"`
	// Problems say what is wrong, one line each with what to do next, "<host>: ..." for a
	// host's; empty when OK.
	Problems []string `json:"problems"`
}

// ClusterStatus is the cluster's line of a Status.
type ClusterStatus struct {
	Name string `json:"name"`
	// Endpoint is the API endpoint the file gives (control_plane_endpoint, else the first
	// control-plane host's address).
	Endpoint string `json:"endpoint"`
	// APIReachable is true when the admin.conf of a control-plane host (Via) reached the
	// API; APIError says why none did.
	APIReachable bool   `json:"api_reachable"`
	Via          string `json:"via,omitempty"`
	APIError     string `json:"api_error,omitempty"`
	// Nodes counts the cluster's Nodes.
	Nodes int `json:"nodes"`
}

// HostStatus is one host's line of a Status.
type HostStatus struct {
	Host string `json:"host"`
	// Role is "control-plane" or "worker": the file's, or for a Node the file does not
	// list, the Node's role label.
	Role string `json:"role"`
	// InFile is false for a Node of the cluster that the file does not list.
	InFile bool `json:"in_file"`
	// InCluster is true when the cluster has the host's Node and the host was not reset
	// since it joined; false too when the API does not answer (Cluster.APIReachable).
	InCluster bool `json:"in_cluster"`
	// Reachable is true when the host answered over SSH; SSHError says why not.
	Reachable bool   `json:"reachable"`
	SSHError  string `json:"ssh_error,omitempty"`
	// KubeletVersion and Ready are the Node's (from the API).
	KubeletVersion string `json:"kubelet_version,omitempty"`
	Ready          bool   `json:"ready"`
	// StaticPods are a control-plane host's static pods, as their mirror pods say.
	StaticPods []PodHealth `json:"static_pods,omitempty"`
	// CertExpiry is a control-plane host's certificate that expires first; CertError says
	// why it could not be read.
	CertExpiry *CertExpiry `json:"cert_expiry,omitempty"`
	CertError  string      `json:"cert_error,omitempty"`
	// ExpiredCerts are the host's certificates that have expired by its own clock: a
	// control-plane host's leaves and kubeconfig client certificates, and every host's
	// kubelet client certificate (Observed.Certs); read over SSH, so known even when the
	// API refuses everyone.
	ExpiredCerts []HostCert `json:"expired_certificates,omitempty"`
	// SameKforge says whether the host's kforge is this build; absent when not asked.
	SameKforge *bool `json:"same_kforge,omitempty"`
	// Match is MatchYes, MatchNo or MatchUnknown; MatchNote says why for the last two.
	Match     string `json:"match"`
	MatchNote string `json:"match_note,omitempty"`
	// Changes counts the files `kforge up` would create or change on the host, and
	// Restarts what that would restart (from the host's `kforge reconfigure --dry-run`).
	Changes  int      `json:"changes"`
	Restarts []string `json:"restarts,omitempty"`
}

// PodHealth is one static pod of a control-plane host.
type PodHealth struct {
	// Name is the component: "etcd", "kube-apiserver".
	Name  string `json:"name"`
	Ready bool   `json:"ready"`
	// Missing is true when the API has no mirror pod of it on the host.
	Missing bool `json:"missing,omitempty"`
}

// CertExpiry is the certificate of a host that expires first.
type CertExpiry struct {
	// Name is the certificate's name in the table: "apiserver".
	Name     string    `json:"name"`
	NotAfter time.Time `json:"not_after"`
	// DaysLeft is the whole days left (negative once expired).
	DaysLeft int  `json:"days_left"`
	Expired  bool `json:"expired"`
}

// StaticPods are the control-plane static pods the API reports, by node and component:
// whether each is Ready.
type StaticPods map[string]map[string]bool

// HostFacts are what a host in the cluster told status about itself.
type HostFacts struct {
	// SameKforge is true when its kforge is this build; the rest is asked only then.
	SameKforge bool
	// Plan is what `kforge reconfigure --dry-run` there would change; PlanError says why
	// it could not be asked.
	Plan      *HostPlan
	PlanError string
	// Certs are a control-plane host's certificates (`kforge certs check-expiration`);
	// CertsError says why they could not be read.
	Certs      []certs.ExpiryRow
	CertsError string
}

// StatusFacts are what a status run gathered; Summarize turns them into a Status.
type StatusFacts struct {
	Cluster  *config.Cluster
	Observed Observed
	// Failed is the error of each host of the file that could not be reached or asked
	// over SSH (its report line's).
	Failed map[string]string
	// Pods are the static pods the API reports; PodsError says why they could not be read.
	Pods      StaticPods
	PodsError string
	// Hosts are what each reachable host in the cluster said.
	Hosts map[string]HostFacts
	// Now is when the certificates' days left are counted from.
	Now time.Time
}

// Summarize says, from what a status run gathered, how each host stands and what is wrong.
func Summarize(in StatusFacts) Status {
	o := in.Observed
	s := Status{Cluster: ClusterStatus{
		Name:         in.Cluster.Name,
		Endpoint:     in.Cluster.EndpointURL(),
		APIReachable: o.Cluster,
		Via:          o.Via,
		Nodes:        len(o.Nodes),
	}}
	if !o.Cluster && expiredControlPlanes(in.Cluster, o) {
		s.Cluster.APIError = "certificates expired on control-plane hosts (listed below); the API was not asked"
		s.Problems = append(s.Problems, "the cluster's certificates have expired: run kforge up, which renews them offline on each "+
			"control-plane host, restarts the control plane and re-bootstraps kubelets (or kforge certs renew all on each control-plane host)")
	} else if !o.Cluster {
		s.Cluster.APIError = apiError(o)
		s.Problems = append(s.Problems, "the cluster's API does not answer through any control-plane host's admin.conf ("+s.Cluster.APIError+
			"): check the control-plane hosts (kubelet, etcd, kube-apiserver); if there is no cluster yet, run kforge up")
	} else if in.PodsError != "" {
		s.Problems = append(s.Problems, "the control-plane static pods could not be read: "+in.PodsError)
	}
	for i := range in.Cluster.Hosts {
		h := &in.Cluster.Hosts[i]
		hs, problems := summarizeHost(in, h)
		s.Hosts = append(s.Hosts, hs)
		for _, p := range problems {
			s.Problems = append(s.Problems, h.Name+": "+p)
		}
	}
	var extra []string
	for name := range o.Nodes {
		if _, ok := in.Cluster.HostByName(name); !ok {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	for _, name := range extra {
		n := o.Nodes[name]
		role := config.RoleWorker
		if n.ControlPlane {
			role = config.RoleControlPlane
		}
		s.Hosts = append(s.Hosts, HostStatus{Host: name, Role: role, InCluster: true, KubeletVersion: n.KubeletVersion, Ready: n.Ready,
			Match: MatchNo, MatchNote: "not in the file"})
		s.Problems = append(s.Problems, name+": in the cluster but not in the file: add it to the file, or take it out of the cluster (a worker's Node: kforge up --prune)")
	}
	s.OK = len(s.Problems) == 0
	if s.Problems == nil {
		s.Problems = []string{}
	}
	return s
}

// apiError says why no admin.conf reached the cluster.
func apiError(o Observed) string {
	if r := o.Rejected; r != nil {
		return "the API refused " + r.Host + "'s admin.conf: " + r.Err
	}
	if len(o.Silent) > 0 {
		names := make([]string, 0, len(o.Silent))
		for n := range o.Silent {
			names = append(names, n)
		}
		sort.Strings(names)
		var parts []string
		for _, n := range names {
			parts = append(parts, n+": "+o.Silent[n])
		}
		return strings.Join(parts, "; ")
	}
	return "no reachable control-plane host holds an admin.conf"
}

// summarizeHost is the line of a host of the file, and its problems.
func summarizeHost(in StatusFacts, h *config.Host) (HostStatus, []string) {
	o := in.Observed
	hs := HostStatus{Host: h.Name, Role: roleOf(h), InFile: true, Reachable: !o.Unreachable[h.Name]}
	var problems []string
	if !hs.Reachable {
		hs.SSHError = in.Failed[h.Name]
		if hs.SSHError == "" {
			hs.SSHError = "not reached"
		}
		problems = append(problems, hs.SSHError+" (check the host's address, SSH key, known_hosts entry and sudo)")
	}
	node, hasNode := o.Nodes[h.Name]
	hs.InCluster = hasNode && !o.Stale[h.Name]
	if hasNode {
		hs.KubeletVersion, hs.Ready = node.KubeletVersion, node.Ready
		if !node.Ready {
			problems = append(problems, "its Node is not Ready: check the kubelet on the host (journalctl -u kubelet) and the network add-on")
		}
	}
	if h.IsControlPlane() && hasNode && in.PodsError == "" {
		var bad []string
		for _, name := range staticPodNames(in.Cluster) {
			ready, ok := in.Pods[h.Name][name]
			hs.StaticPods = append(hs.StaticPods, PodHealth{Name: name, Ready: ready, Missing: !ok})
			switch {
			case !ok:
				bad = append(bad, name+" (no mirror pod)")
			case !ready:
				bad = append(bad, name)
			}
		}
		if len(bad) > 0 {
			problems = append(problems, "static pods not Ready: "+strings.Join(bad, ", ")+": check them on the host (crictl ps -a, the kubelet's log)")
		}
	}
	if hc, ok := o.Certs[h.Name]; ok {
		all := append(append([]HostCert{}, hc.Leaves...), hc.CAs...)
		if hc.KubeletClient != nil {
			all = append(all, *hc.KubeletClient)
		}
		hs.ExpiredCerts = Expired(all, hc.Now)
		if len(hs.ExpiredCerts) > 0 {
			first := hs.ExpiredCerts[0]
			hs.CertExpiry = &CertExpiry{Name: first.Name, NotAfter: first.NotAfter, DaysLeft: int(first.NotAfter.Sub(hc.Now).Hours() / 24), Expired: true}
			var names []string
			for _, c := range hs.ExpiredCerts {
				names = append(names, fmt.Sprintf("%s (%s ago)", c.Name, ago(hc.Now.Sub(c.NotAfter))))
			}
			problems = append(problems, "certificates EXPIRED: "+strings.Join(names, ", ")+": run kforge up, which renews them")
		}
	}
	facts, asked := in.Hosts[h.Name]
	if asked {
		same := facts.SameKforge
		hs.SameKforge = &same
		hs.CertError = facts.CertsError
		if first, ok := certs.Earliest(facts.Certs); ok && len(hs.ExpiredCerts) == 0 {
			left := first.NotAfter.Sub(in.Now)
			hs.CertExpiry = &CertExpiry{Name: first.Name, NotAfter: first.NotAfter, DaysLeft: int(left.Hours() / 24), Expired: left <= 0}
			if hs.CertExpiry.Expired {
				problems = append(problems, fmt.Sprintf("certificate %s expired on %s: renew it", first.Name, first.NotAfter.UTC().Format(time.DateOnly)))
			}
		}
	}
	switch {
	case !hs.Reachable:
		hs.Match, hs.MatchNote = MatchUnknown, "not reachable"
	case !o.Cluster:
		hs.Match, hs.MatchNote = MatchUnknown, "the cluster's API does not answer"
	case !hs.InCluster:
		hs.Match, hs.MatchNote = MatchNo, "not in the cluster"
		what := "not in the cluster"
		if hasNode {
			what = "reset since it joined (its Node is left)"
		}
		problems = append(problems, what+": run kforge up to join it")
	case !asked:
		hs.Match, hs.MatchNote = MatchUnknown, "not asked"
		problems = append(problems, "not compared with the file: run kforge status again")
	case !facts.SameKforge:
		hs.Match, hs.MatchNote = MatchUnknown, NoteOtherBuild
		problems = append(problems, "cannot be compared with the file: "+NoteOtherBuild+" --dry-run to see what differs, then kforge up")
	case facts.Plan == nil:
		hs.Match, hs.MatchNote = MatchUnknown, facts.PlanError
		problems = append(problems, "cannot be compared with the file: "+facts.PlanError)
	case facts.Plan.Empty():
		hs.Match = MatchYes
	default:
		hs.Match = MatchNo
		hs.Changes, hs.Restarts = len(facts.Plan.Changes), facts.Plan.Restarts
		hs.MatchNote = changesNote(hs.Changes, hs.Restarts)
		problems = append(problems, "differs from the file: "+hs.MatchNote+": run kforge up --dry-run to see the changes, then kforge up to apply them")
	}
	return hs, problems
}

// changesNote says how many files differ and what changing them restarts.
func changesNote(n int, restarts []string) string {
	s := fmt.Sprintf("%d files differ", n)
	if n == 1 {
		s = "1 file differs"
	}
	if len(restarts) > 0 {
		return s + ", restarts " + strings.Join(restarts, ", ")
	}
	return s
}

// staticPodNames are the static pods of a control-plane host of c: etcd's only with a
// local etcd.
func staticPodNames(c *config.Cluster) []string {
	var names []string
	if c.Etcd.Local != nil {
		names = append(names, manifests.NameEtcd)
	}
	return append(names, manifests.NameAPIServer, manifests.NameControllerManager, manifests.NameScheduler)
}
