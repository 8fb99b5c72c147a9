package phases

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/internal/fileutil"
	"github.com/kforge/kforge/service"
)

// Where the automatic certificate renewal lives on a control-plane host.
const (
	// CertsRenewalName names the systemd units (kforge-certs-renew.timer and .service) or
	// the supervised renew-loop.
	CertsRenewalName = "kforge-certs-renew"
	// CertsRenewalConfig is the cluster configuration the check reads: the one the host
	// was last set up with (init, join, reconfigure), so that the check renews with the
	// names and lifetimes it had.
	CertsRenewalConfig = "/etc/kforge/certs-renew.toml"
	// CertsRenewalState records the last check (certs.RenewalState).
	CertsRenewalState = "/var/lib/kforge/certs-renew.json"
)

// initCertsRenewalPhase installs the automatic certificate renewal check on the init host
// (installCertsRenewal).
//
// Reads Data.Cluster, Data.Node, Data.Services and Data.Kforge; writes CertsRenewalConfig
// and the timer's units or starts the supervised loop.
func initCertsRenewalPhase() Phase {
	return Phase{
		Name:  "certs-renewal",
		Short: "Install the check that renews this control plane's certificates before they expire",
		Run:   installCertsRenewal,
	}
}

// certsRenewalTimer is the check for this host, as certificates.renew_before schedules it.
func certsRenewalTimer(d *Data) service.Timer {
	rb := d.Cluster.Certificates.AutoRenewBefore()
	every, delay := certs.CheckInterval(rb), certs.CheckRandomDelay(rb)
	args := []string{"-f", CertsRenewalConfig, "--node", d.Node.Name}
	return service.Timer{
		Name:        CertsRenewalName,
		Description: "kforge: renew this control plane's certificates when less than certificates.renew_before is left",
		Command:     append([]string{d.Kforge, "certs", "renew", "all", "--if-due"}, args...),
		// The schedule is in the loop's command line, so that a new one restarts it.
		Loop:        append([]string{d.Kforge, "certs", "renew-loop", "--every", every.String(), "--random-delay", delay.String()}, args...),
		Every:       every,
		RandomDelay: delay,
	}
}

// certsRenewalConfig is the configuration the check reads: the cluster-wide settings and
// each control plane's name, address and roles (config.EncodeShared), with this host among
// them (a join from the cluster's stored configuration may not list it). Only what every
// workflow knows alike goes in, so that init, join and reconfigure write the same file and
// a second run changes nothing; workers are left out, since no certificate or manifest of
// a control plane depends on them, so that adding or removing one changes nothing here.
func certsRenewalConfig(d *Data) ([]byte, error) {
	c := *d.Cluster
	c.Hosts = nil
	for _, h := range d.Cluster.Hosts {
		if h.IsControlPlane() && h.Name != d.Node.Name {
			c.Hosts = append(c.Hosts, h)
		}
	}
	c.Hosts = append(c.Hosts, *d.Node)
	slices.SortStableFunc(c.Hosts, func(a, b config.Host) int { return strings.Compare(a.Name, b.Name) })
	return config.EncodeShared(&c)
}

// installCertsRenewal is the step init, control-plane join and reconfigure share: it
// writes the configuration the check reads and installs the check through the host's
// service manager, a systemd timer with its oneshot service or a supervised
// `kforge certs renew-loop`, scheduled every certs.CheckInterval(renew_before) with a
// random delay. It converges: what is installed as wanted is left alone. With
// certificates.renew_before = "0s" it removes the check and its configuration instead.
func installCertsRenewal(ctx context.Context, d *Data) error {
	sched, ok := d.Services.(service.Scheduler)
	if !ok {
		return fmt.Errorf("the %s service manager cannot run a periodic check; set certificates.renew_before = \"0s\" and renew with `kforge certs renew all` or `kforge up`", d.Services.Kind())
	}
	if d.Cluster.Certificates.AutoRenewBefore() == 0 {
		return removeCertsRenewal(ctx, d, sched, "certificates.renew_before is 0s: automatic renewal is off")
	}
	data, err := certsRenewalConfig(d)
	if err != nil {
		return err
	}
	res, err := fileutil.WriteAtomic(d.Path(CertsRenewalConfig), data, 0o600, 0o755)
	if err != nil {
		return fmt.Errorf("writing the configuration of the renewal check: %w", err)
	}
	if res == fileutil.Unchanged {
		d.Out.Say("using existing %s", CertsRenewalConfig)
	} else {
		d.Out.Say("%s %s", res, CertsRenewalConfig)
	}
	t := certsRenewalTimer(d)
	changed, err := sched.Schedule(ctx, t)
	if err != nil {
		return fmt.Errorf("installing the certificate renewal check %s: %w", t.Name, err)
	}
	how := "systemd timer " + t.Name + ".timer"
	if d.Services.Kind() != "systemd" {
		how = d.Services.Kind() + " loop " + t.Name + " (" + strings.Join(t.Loop[1:3], " ") + ")"
	}
	if changed {
		d.Out.Say("installed the %s: it checks every %s (plus up to %s at random) and renews when less than %s is left",
			how, t.Every, t.RandomDelay, certs.RoundDuration(d.Cluster.Certificates.AutoRenewBefore()))
	} else {
		d.Out.Say("using existing %s", how)
	}
	return nil
}

// removeCertsRenewal removes the check and the configuration it reads, saying why. The
// record of its last run stays, for `kforge certs status`, until reset.
func removeCertsRenewal(ctx context.Context, d *Data, sched service.Scheduler, why string) error {
	removed, err := sched.Unschedule(ctx, CertsRenewalName)
	if err != nil {
		return fmt.Errorf("removing the certificate renewal check %s: %w", CertsRenewalName, err)
	}
	if err := os.Remove(d.Path(CertsRenewalConfig)); err == nil {
		removed = true
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", CertsRenewalConfig, err)
	}
	if removed {
		d.Out.Say("%s; removed %s", why, CertsRenewalName)
	} else {
		d.Out.Say("%s; nothing to remove", why)
	}
	return nil
}
