package cmd

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/fleet"
	"github.com/kforge/kforge/phases"
)

type statusOptions struct{ fleetFlags }

func newStatusCommand(root *rootOptions) *cobra.Command {
	wf := phases.StatusWorkflow()
	o := &statusOptions{fleetFlags{root: root}}
	c := &cobra.Command{
		Use:   "status -f cluster.toml",
		Short: "Show every host of cluster.toml: role, version, health, certificate expiry, and whether it matches the file",
		Long: `Show every host of cluster.toml and the cluster, read-only, over SSH and through the API.

kforge status connects to every host as up does (host keys checked against known_hosts;
with --accept-new-host-keys a new key is trusted for this run and not recorded), finds
the cluster through a control-plane host's admin.conf, and reports per host: its role,
whether it is in the cluster, whether it answers over SSH (or the SSH error), its kubelet
version and Ready from its Node, on control-plane hosts the health of the static pods
(their mirror pods Ready) and the certificate that expires first, and whether the host
matches the file: the number of files "kforge up" would change there and what that would
restart, as the host's own "kforge reconfigure --dry-run" computes it. A last line gives
the cluster: its name, the API endpoint and whether it answers, and its node count.
Labels, taints and add-ons are not compared: "kforge up --dry-run" shows those.

Nothing changes, on the hosts or in the cluster: the cluster.toml the hosts compare with
goes under /tmp and is removed after. kforge is not installed: on a host whose kforge is
another build than this one, status cannot ask for the plan or the certificates and says
"unknown: kforge on the host is another build; run kforge up"; what the API says of the
host is still reported.

The status workflow runs these phases, in order:

` + wf.Describe() + `
Exit status: 0 when the API answers and every host of the file is reachable, in the
cluster, Ready (its static pods too), holds no expired certificate and matches the file,
and the cluster has no Node the file does not list. Otherwise 1, with each problem and
what to do next (for a host that differs from the file: "run kforge up --dry-run to see
the changes, then kforge up to apply them"). 130 when interrupted.

With -o json the summary goes to stdout as one object (progress to stderr):
  cluster   name, endpoint, api_reachable, via (the control-plane host whose admin.conf
            answered), api_error, nodes
  hosts[]   host, role, in_file, in_cluster, reachable, ssh_error, kubelet_version, ready,
            static_pods[] (name, ready, missing), cert_expiry (name, not_after, days_left,
            expired), cert_error, expired_certificates[] (name, path, not_after: every
            certificate of the host that has expired, read over SSH even when the API lets
            no one in), same_kforge, match ("yes", "no" or "unknown"), match_note,
            changes, restarts[]
  ok        true exactly when the exit status is 0
  problems  one line per problem, with what to do next`,
		Example: `  # every host, as a table
  kforge status -f cluster.toml

  # for scripts: the exit status says whether all is well, the JSON says what is not
  kforge status -f cluster.toml -o json | jq '.hosts[] | select(.match != "yes")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd.Context(), wf) },
	}
	o.addFlags(c.Flags(), "how many hosts are asked at once")
	_ = c.MarkFlagRequired("config")
	return c
}

func (o *statusOptions) run(ctx context.Context, wf *phases.Workflow) error {
	c, out, err := o.load()
	if err != nil {
		return err
	}
	// A status changes nothing: it runs as a dry run, which records no host key either.
	d, err := o.root.fleetData(phases.DataSpec{Cluster: c, Out: out,
		Fleet: fleet.Options{Concurrency: o.concurrency}}, &o.ssh, true)
	if err != nil {
		return err
	}
	runErr := wf.Run(ctx, d, "", nil)
	s := d.StatusReport(ctx)
	if runErr != nil || s == nil {
		return runErr
	}
	if err := printStatus(o.root.streams.Out, s, o.output); err != nil {
		return err
	}
	return statusErr(s)
}

// statusErr is the error kforge status exits with: nil when all is well, else every
// problem with what to do next.
func statusErr(s *fleet.Status) error {
	if s.OK {
		return nil
	}
	return fmt.Errorf("kforge status found %d problems in cluster %q:\n  - %s",
		len(s.Problems), s.Cluster.Name, strings.Join(s.Problems, "\n  - "))
}

// printStatus writes the summary: a table with one row per host and the cluster's line,
// or the Status as JSON.
func printStatus(w io.Writer, s *fleet.Status, format string) error {
	return printSummary(w, format, s, func(tw io.Writer) {
		fmt.Fprintln(tw, "\nHOST\tROLE\tIN CLUSTER\tREADY\tKUBELET\tSTATIC PODS\tFIRST CERT EXPIRY\tMATCHES FILE\tSSH")
		for _, h := range s.Hosts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Host, h.Role, inClusterCell(h, s.Cluster.APIReachable), readyCell(h), dash(h.KubeletVersion),
				podsCell(h.StaticPods), certCell(h), matchCell(h), sshCell(h))
		}
		api := "answers through " + s.Cluster.Via
		if !s.Cluster.APIReachable {
			api = "does not answer"
		}
		fmt.Fprintf(tw, "\ncluster %q: API %s %s; %d nodes\n", s.Cluster.Name, s.Cluster.Endpoint, api, s.Cluster.Nodes)
	})
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// inClusterCell is yes or no, or unknown when the API does not answer.
func inClusterCell(h fleet.HostStatus, api bool) string {
	if !api {
		return "unknown"
	}
	return yesNo(h.InCluster)
}

func readyCell(h fleet.HostStatus) string {
	if h.KubeletVersion == "" && !h.InCluster {
		return "-"
	}
	return yesNo(h.Ready)
}

// podsCell is "4/4 Ready", followed by the pods that are not.
func podsCell(pods []fleet.PodHealth) string {
	if len(pods) == 0 {
		return "-"
	}
	ready := 0
	var bad []string
	for _, p := range pods {
		switch {
		case p.Ready:
			ready++
		case p.Missing:
			bad = append(bad, p.Name+" missing")
		default:
			bad = append(bad, p.Name+" not Ready")
		}
	}
	cell := fmt.Sprintf("%d/%d Ready", ready, len(pods))
	if len(bad) > 0 {
		cell += " (" + strings.Join(bad, ", ") + ")"
	}
	return cell
}

// certCell is "apiserver 2027-12-03 (364d)", or why it is unknown.
func certCell(h fleet.HostStatus) string {
	switch e := h.CertExpiry; {
	case e != nil && e.Expired:
		return fmt.Sprintf("%s %s (EXPIRED)", e.Name, e.NotAfter.UTC().Format(time.DateOnly))
	case e != nil:
		return fmt.Sprintf("%s %s (%dd)", e.Name, e.NotAfter.UTC().Format(time.DateOnly), e.DaysLeft)
	case h.CertError != "":
		return "unknown: " + h.CertError
	case h.SameKforge != nil && !*h.SameKforge && h.Role == config.RoleControlPlane:
		return "unknown"
	}
	return "-"
}

func matchCell(h fleet.HostStatus) string {
	if h.MatchNote == "" {
		return h.Match
	}
	return h.Match + ": " + h.MatchNote
}

func sshCell(h fleet.HostStatus) string {
	switch {
	case !h.InFile:
		return "-"
	case h.Reachable:
		return "ok"
	}
	return h.SSHError
}
