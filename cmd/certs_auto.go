package cmd

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/phases"
)

// newRenewLoopCommand is `kforge certs renew-loop`, the automatic renewal check on hosts
// without systemd: kforge's supervisor runs it, and it runs `certs renew all --if-due`'s
// check on the timer's schedule.
func newRenewLoopCommand(root *rootOptions) *cobra.Command {
	o := &renewOptions{root: root}
	c := &cobra.Command{
		Use:   "renew-loop -f " + phases.CertsRenewalConfig,
		Short: "Run the automatic certificate renewal check on its schedule (kforge's supervisor runs it where there is no systemd)",
		Long: `Run, again and again, the check 'kforge certs renew all --if-due' runs: a minute after it
starts, then every interval after the last check, plus a random delay, as the
kforge-certs-renew timer does on systemd hosts. init, join and reconfigure start it with
--every a quarter of certificates.renew_before (at least a minute, at most a day) and
--random-delay an eighth of that, and restart it when those change. cluster.toml is read
again before each check. A failed check is logged and
recorded, and the loop goes on. init, control-plane join and reconfigure start it under
kforge's supervisor on hosts without systemd; its log is /var/log/kforge/` + phases.CertsRenewalName + `.log.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.loop(cmd.Context()) },
	}
	c.Flags().StringVarP(&o.configPath, "config", "f", phases.CertsRenewalConfig, "path of cluster.toml")
	c.Flags().StringVar(&o.node, "node", "", "which host of the file this is (default: the host with one of this machine's addresses)")
	c.Flags().DurationVar(&o.wait, "timeout", phases.DefaultWait, "how long to wait for each restarted component to be healthy")
	o.hostFlags.addDirFlags(c.Flags(), "")
	_ = c.Flags().MarkHidden("dry-run") // the loop always acts
	c.Flags().DurationVar(&o.every, "every", 24*time.Hour, "time between two checks")
	c.Flags().DurationVar(&o.randomDelay, "random-delay", 3*time.Hour, "random delay added to each check, up to this")
	return c
}

// loop runs the check until ctx ends.
func (o *renewOptions) loop(ctx context.Context) error {
	wait := time.Minute
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = o.checkOnce(ctx)
	}
}

// checkOnce runs one check and returns how long to wait for the next.
func (o *renewOptions) checkOnce(ctx context.Context) time.Duration {
	retry := 10 * time.Minute
	d, cleanup, err := o.root.fileHostData(o.configPath, o.node, o.hostFlags, o.wait, false)
	if err != nil {
		o.root.streams.Err.Write(fmt.Appendf(nil, "%s certs renew-loop: %v; trying again in %s\n", time.Now().UTC().Format(time.RFC3339), err, retry))
		return retry
	}
	defer cleanup()
	every := max(o.every, time.Minute)
	st, err := phases.RenewIfDue(ctx, d, every)
	if err != nil {
		d.Out.Plain("%s certs renew-loop: %v", time.Now().UTC().Format(time.RFC3339), err)
	}
	d.Out.Plain("%s certs renew-loop: %s: %s; next check in %s", st.LastRun.UTC().Format(time.RFC3339), st.Outcome, st.Message, every)
	return every + rand.N(max(o.randomDelay, 0)+1)
}

func newCertsStatusCommand(root *rootOptions) *cobra.Command {
	var configPath, node, output string
	var h hostFlags
	c := &cobra.Command{
		Use:   "status",
		Short: "Show the automatic certificate renewal of this control-plane host",
		Long: `Show, on a control-plane host, the automatic certificate renewal: certificates.renew_before,
whether the check (the kforge-certs-renew timer, or the supervised renew-loop) is installed
and active, its last run (time, outcome, what it renewed), its next run, and the
certificate that expires first.

With -o json it prints one object (phases.CertsStatus): node, renew_before,
renew_before_seconds, check, installed, active, last_run (last_run, outcome, message,
renewed, earliest, earliest_not_after, next_check), next_run, earliest,
earliest_not_after, earliest_residual_seconds.`,
		Example: `  kforge certs status
  kforge certs status -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output %q: want text or json", output)
			}
			if _, err := os.Stat(configPath); err != nil && configPath == phases.CertsRenewalConfig {
				return fmt.Errorf("no %s on this host: the automatic renewal check is not installed here (it is on control planes set up by init, join or reconfigure with certificates.renew_before above 0s); pass -f cluster.toml to see the rest", phases.CertsRenewalConfig)
			}
			d, cleanup, err := root.fileHostData(configPath, node, h, phases.DefaultWait, output == "json")
			if err != nil {
				return err
			}
			defer cleanup()
			s, err := phases.CertsRenewalStatus(cmd.Context(), d)
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(root.streams.Out, s)
			}
			return printCertsStatus(root.streams.Out, s, time.Now())
		},
	}
	c.Flags().StringVarP(&configPath, "config", "f", phases.CertsRenewalConfig, "path of cluster.toml")
	c.Flags().StringVar(&node, "node", "", "which host of the file this is (default: the host with one of this machine's addresses)")
	h.addDirFlags(c.Flags(), "")
	_ = c.Flags().MarkHidden("dry-run")
	c.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return c
}

// printCertsStatus prints s for people, as of now.
func printCertsStatus(out interface{ Write([]byte) (int, error) }, s phases.CertsStatus, now time.Time) error {
	state := "not installed"
	switch {
	case s.Installed && s.Active:
		state = "installed, active"
	case s.Installed:
		state = "installed, NOT active"
	}
	p := func(k, v string) { fmt.Fprintf(out, "%-14s %s\n", k+":", v) }
	p("node", s.Node)
	p("renew_before", s.RenewBefore)
	p("check", s.Check+" ("+state+")")
	if s.LastRun == nil {
		p("last run", "never")
	} else {
		r := s.LastRun
		p("last run", fmt.Sprintf("%s (%s ago): %s", r.LastRun.UTC().Format(time.RFC3339), certs.RoundDuration(now.Sub(r.LastRun)), r.Outcome))
		p("message", r.Message)
		if len(r.Renewed) > 0 {
			p("renewed", fmt.Sprint(r.Renewed))
		}
	}
	if s.NextRun.IsZero() {
		p("next run", "unknown")
	} else {
		p("next run", s.NextRun.UTC().Format(time.RFC3339)+" (plus a random delay)")
	}
	if s.Earliest != "" {
		p("earliest", fmt.Sprintf("%s %s (%s)", s.Earliest, certs.ExpiresIn(time.Duration(s.EarliestResidualSeconds)*time.Second), s.EarliestNotAfter.UTC().Format(time.RFC3339)))
	}
	return nil
}
