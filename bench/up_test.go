package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/kforge/kforge/config"
	ebundle "github.com/kforge/kforge/e2e/bundle"
	"github.com/kforge/kforge/e2e/testbed"
	"github.com/kforge/kforge/fleet"
	"github.com/kforge/kforge/host"
	"github.com/kforge/kforge/phases"
)

// fanoutHosts is how many light hosts the fan-out benchmark prepares at once.
const fanoutHosts = 30

// BenchmarkUpFanout times what `kforge up` does on a host before it joins (connect over
// SSH, install kforge and cluster.toml, run preflight, upload the worker's part of the
// bundle) on one test host, then on 30 at once, then again on the 30 with everything in
// place (the no-op re-run). The hosts are light: sshd and containerd, no kubelet.
func BenchmarkUpFanout(b *testing.B) {
	ctx := context.Background()
	root, bun := testbedBench(b, ctx, "creates 31 test hosts from namespaces", "one round (about a minute)")
	tb, err := testbed.Up(ctx, testbed.Options{Hosts: fanoutHosts + 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tb.Down(context.Background()) })
	kforge := filepath.Join(tb.Dir(), "bench-kforge")
	cmd := exec.Command("go", "build", "-o", kforge, ".")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building kforge: %v\n%s", err, out)
	}

	hosts := tb.Hosts()
	prepare := func(hs []testbed.Host) (time.Duration, *fleet.Report) {
		c := &config.Cluster{Bundle: bun.Dir}
		for i, h := range hs {
			role := config.RoleWorker
			if i == 0 {
				role = config.RoleControlPlane
			}
			c.Hosts = append(c.Hosts, config.Host{Name: h.Name, Address: h.Address.String(), Roles: []string{role}})
		}
		config.SetDefaults(c)
		if err := c.Validate(); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		// The prepare-hosts phase of kforge up alone: it connects, detects (no cluster),
		// plans and prepares every host.
		d := phases.NewData(phases.DataSpec{Cluster: c, Out: phases.NewPrinter(io.Discard), Log: slog.New(slog.DiscardHandler), Fleet: fleet.Options{
			Cluster: c,
			Kforge:  kforge,
			Connect: func(ctx context.Context, h *config.Host) (host.Host, error) {
				return host.Dial(ctx, host.SSHConfig{Name: h.Name, Address: h.Address, KeyFiles: []string{tb.SSHKey()}, KnownHostsPath: tb.KnownHosts()})
			},
		}}, phases.Deps{Now: time.Now})
		err := phases.UpWorkflow().Run(ctx, d, "prepare-hosts", nil)
		rep := d.CloseFleet(ctx)
		took := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if err := rep.Failed(); err != nil {
			b.Fatal(err)
		}
		return took, rep
	}
	uploaded := func(r *fleet.Report) int64 {
		var n int64
		for _, h := range r.Hosts {
			n += h.Uploaded
		}
		return n
	}

	b.ResetTimer()
	one, r1 := prepare(hosts[:1])
	many, rN := prepare(hosts[1 : fanoutHosts+1])
	again, rAgain := prepare(hosts[1 : fanoutHosts+1])
	b.StopTimer()
	if uploaded(rAgain) != 0 {
		b.Errorf("the re-run uploaded %d bytes, want none", uploaded(rAgain))
	}
	b.ReportMetric(one.Seconds(), "s/1-host")
	b.ReportMetric(many.Seconds(), fmt.Sprintf("s/%d-hosts", fanoutHosts))
	b.ReportMetric(many.Seconds()/one.Seconds(), "ratio")
	b.ReportMetric(again.Seconds(), fmt.Sprintf("s/%d-hosts-rerun", fanoutHosts))
	b.ReportMetric(float64(uploaded(r1))/(1<<20), "MiB/host")
	b.ReportMetric(float64(uploaded(rN))/(1<<20)/many.Seconds(), "MiB/s-aggregate")
}

// testbedBench skips a benchmark that runs on the testbed unless it runs as root (what it
// needs root for: why) and in its first round (one round, what: the measurement), then
// builds or reuses the test bundle. It returns the repository's root and the bundle.
func testbedBench(b *testing.B, ctx context.Context, why, round string) (root string, bun *ebundle.Bundle) {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skipf("this benchmark %s and needs root: sudo make bench", why)
	}
	if b.N > 1 {
		b.Skipf("%s is the measurement; the first round already ran", round)
	}
	root, err := ebundle.RepoRoot(".")
	if err != nil {
		b.Fatal(err)
	}
	bun, err = ebundle.Build(ctx, ebundle.Options{RepoRoot: root, Log: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	return root, bun
}
