package phases

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/kubeconfig"
)

// CertsRenewWorkflow is `kforge certs renew`, on a control-plane host: it signs every
// leaf certificate of the table and the client certificate of every kubeconfig that
// embeds one again, for the key it has, from the CA on disk (the apiserver may be down),
// then writes the static pod manifests again. A manifest's config hash covers the
// certificates and kubeconfigs its component reads (manifests.Params.Inputs), so exactly
// the static pods whose files were renewed change, and the kubelet restarts them; the run
// waits until it has and they are healthy. A run killed at any point converges when run
// again: each file is written whole, and the manifests follow the files on disk.
//
// A CA is never renewed. A certificate whose CA key is absent (external CA mode) is listed
// for the operator to renew, and makes the run fail at its end (phase external-ca), after
// what could be renewed was and has restarted.
func CertsRenewWorkflow() *Workflow {
	return &Workflow{
		Name: "certs-renew",
		Phases: []Phase{
			certsRenewCertsPhase(),
			certsRenewKubeconfigPhase(),
			certsRenewKubeletClientPhase(),
			reconfigureEtcdPhase(),
			controlPlanePhase(),
			waitControlPlanePhase(),
			certsRenewExternalCAPhase(),
		},
	}
}

// RenewData is what the certs-renew workflow renews, renewed and could not renew.
type RenewData struct {
	// Only names what to renew (`certs renew <name>...`, checked by CheckRenewNames); empty
	// or "all" renews everything. Set by the command.
	Only []string
	// Renewed lists each certificate and kubeconfig renewed, with its new expiry (set by
	// the certs and kubeconfig phases of certs-renew).
	Renewed []RenewedFile
	// External lists each certificate whose CA key is not on this host, with its current
	// expiry: the operator renews it (set by the same phases).
	External []RenewedFile
}

// RenewedFile is one certificate or kubeconfig of a renewal.
type RenewedFile struct {
	// Name is the certificate's name ("apiserver") or the kubeconfig's file name
	// ("admin.conf"), as `certs renew` takes it.
	Name string `json:"name"`
	// Path is the certificate or kubeconfig file on the host.
	Path string `json:"path"`
	// NotAfter is when the certificate expires.
	NotAfter time.Time `json:"not_after"`
}

// RenewKubeconfigs are the kubeconfigs `certs renew` renews: those whose client
// certificate is embedded. kubelet.conf is not one: it points at the certificate the
// kubelet rotates itself.
var RenewKubeconfigs = []string{kubeconfig.AdminFileName, kubeconfig.SuperAdminFileName, kubeconfig.ControllerManagerFileName, kubeconfig.SchedulerFileName}

// RenewTarget is a name `certs renew` takes and the phase of CertsRenewWorkflow that
// renews it.
type RenewTarget struct {
	Name, Path, Short string
}

// RenewTargets lists every certificate and kubeconfig `certs renew` can renew, in the
// order the workflow renews them.
func RenewTargets() []RenewTarget {
	var out []RenewTarget
	wf := CertsRenewWorkflow()
	for _, parent := range []string{"certs", "kubeconfig"} {
		f, _ := wf.Lookup(parent)
		for _, p := range f.Phase.Phases {
			out = append(out, RenewTarget{Name: p.Name, Path: parent + "/" + p.Name, Short: p.Short})
		}
	}
	if f, ok := wf.Lookup(KubeletClientTarget); ok {
		out = append(out, RenewTarget{Name: KubeletClientTarget, Path: KubeletClientTarget, Short: f.Phase.Short})
	}
	return out
}

// CheckRenewNames checks the names `certs renew` is given: "all", or names of
// RenewTargets. A CA's name is an error that says why CAs are not renewed; an unknown name
// lists the valid ones.
func CheckRenewNames(names []string) error {
	targets := RenewTargets()
	var bad []string
	for _, n := range names {
		if s, ok := certs.Lookup(config.Default(), n); ok && s.IsCA {
			return fmt.Errorf("%s is a CA: %w; a new CA would not be trusted by what holds the old one (kubeconfigs, "+
				"joined nodes, cluster-info). Renew the certificates it signs instead; `kforge certs check-expiration` shows how long it has left", n, certs.ErrCANotRenewed)
		}
		if n != "all" && !slices.ContainsFunc(targets, func(t RenewTarget) bool { return t.Name == n }) {
			bad = append(bad, n)
		}
	}
	if len(bad) > 0 {
		var valid []string
		for _, t := range targets {
			valid = append(valid, t.Name)
		}
		return fmt.Errorf("%w %s: want all or any of %s", ErrUnknownCertificate, strings.Join(bad, ", "), strings.Join(valid, ", "))
	}
	return nil
}

// notNamed is the skip rule of the renewal of name: a run given names (Data.Renew.Only)
// that do not include it skips it.
func notNamed(name string) func(d *Data) (string, bool) {
	return func(d *Data) (string, bool) {
		only := d.Renew.Only
		return name + " not named", len(only) > 0 && !slices.Contains(only, "all") && !slices.Contains(only, name)
	}
}

// ErrUnknownCertificate is returned for a name `certs renew` does not know.
var ErrUnknownCertificate = fmt.Errorf("unknown certificate")

// RenewReport is what `certs renew -o json` prints: what a run renewed (or, on a dry run,
// would renew), what it left to the operator, and the static pods it restarted (would
// restart).
type RenewReport struct {
	// Node is this host's name in cluster.toml.
	Node string `json:"node"`
	// DryRun says nothing was written.
	DryRun bool `json:"dry_run"`
	// Renewed lists each certificate and kubeconfig renewed, with its new expiry.
	Renewed []RenewedFile `json:"renewed"`
	// External lists each certificate whose CA key is not on this host, with its current
	// expiry: renew it yourself.
	External []RenewedFile `json:"external"`
	// Restarts names the static pods restarted because a file they read was renewed.
	Restarts []string `json:"restarts"`
}

// RenewReport reports the certs-renew run d made.
func (d *Data) RenewReport() (RenewReport, error) {
	r := RenewReport{Node: d.Node.Name, DryRun: d.DryRun, Renewed: d.Renew.Renewed, External: d.Renew.External}
	if d.DryRun {
		changes, err := d.PlannedChanges()
		if err != nil {
			return r, fmt.Errorf("comparing the dry run's files with the host's: %w", err)
		}
		r.Restarts = d.PlannedRestarts(changes)
	} else {
		r.Restarts = slices.Sorted(maps.Keys(d.Rewritten))
	}
	for _, l := range []*[]RenewedFile{&r.Renewed, &r.External} {
		if *l == nil {
			*l = []RenewedFile{}
		}
	}
	if r.Restarts == nil {
		r.Restarts = []string{}
	}
	return r, nil
}
