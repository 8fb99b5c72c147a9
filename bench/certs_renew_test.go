package bench

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kforge/kforge/e2e/lab"
	"github.com/kforge/kforge/e2e/testbed"
)

// phaseDone matches the runner's line for a finished top-level phase: "[certs] done in 41ms".
var phaseDone = regexp.MustCompile(`(?m)^\[([a-z-]+)\] done in (\S+)$`)

// renewFilePhases are the phases of `certs renew` that sign and write files; the others
// (etcd, control-plane, wait-control-plane) write the manifests and wait for the restarts.
var renewFilePhases = map[string]bool{"certs": true, "kubeconfig": true}

// BenchmarkCertsRenew times `kforge certs renew all` on one real control plane (a
// single-node cluster on one test host): the whole command, the part that signs and
// writes the certificates and kubeconfigs, and the part spent restarting the four static
// pods and waiting for them to be healthy. Side by side on the same host, in alternating
// rounds, it times stock `kubeadm certs renew all` (the bundle's kubeadm), which renews the
// same eleven files and restarts nothing: its time compares with kforge's file part.
func BenchmarkCertsRenew(b *testing.B) {
	ctx := context.Background()
	root, bun := testbedBench(b, ctx, "creates a test host from namespaces and runs a real control plane", "one round of three renewals each (a few minutes)")
	tb, err := testbed.Up(ctx, testbed.Options{Hosts: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tb.Down(context.Background()) })
	l, err := lab.Stage(tb, bun.Dir, root)
	if err != nil {
		b.Fatal(err)
	}
	h, _ := tb.Host("h1")
	if err := l.WriteConfig(ctx, h, l.ClusterConfig(h)); err != nil {
		b.Fatal(err)
	}
	fileArgs := []string{"-f", lab.ConfigPath, "--node", h.Name}
	if _, err := l.Run(ctx, h, nil, append([]string{"init"}, fileArgs...)...); err != nil {
		b.Fatal(err)
	}

	const rounds = 3
	var kforgeTotal, kforgeFiles, kforgeRestarts, kubeadmTotal time.Duration
	b.ResetTimer()
	for range rounds {
		start := time.Now()
		out, err := l.Run(ctx, h, nil, append([]string{"certs", "renew", "all"}, fileArgs...)...)
		took := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		files, restarts, err := splitRenewPhases(out)
		if err != nil {
			b.Fatal(err)
		}
		kforgeTotal += took
		kforgeFiles += files
		kforgeRestarts += restarts

		start = time.Now()
		if out, errOut, err := h.Exec(ctx, nil, "kubeadm", "certs", "renew", "all"); err != nil {
			b.Fatalf("kubeadm certs renew all: %v\n%s%s", err, out, errOut)
		}
		kubeadmTotal += time.Since(start)
	}
	b.StopTimer()
	per := func(d time.Duration) float64 { return d.Seconds() / rounds }
	b.ReportMetric(per(kforgeTotal), "s/kforge-renew")
	b.ReportMetric(per(kforgeFiles), "s/kforge-files")
	b.ReportMetric(per(kforgeRestarts), "s/kforge-restarts")
	b.ReportMetric(kforgeRestarts.Seconds()/kforgeTotal.Seconds(), "restart-share")
	b.ReportMetric(per(kubeadmTotal), "s/kubeadm-renew")
	b.ReportMetric(kforgeFiles.Seconds()/kubeadmTotal.Seconds(), "files-ratio-vs-kubeadm")
}

// splitRenewPhases sums the phase durations `certs renew` printed into the part that
// writes files and the part that restarts and waits.
func splitRenewPhases(out string) (files, restarts time.Duration, err error) {
	matches := phaseDone.FindAllStringSubmatch(out, -1)
	if len(matches) == 0 {
		return 0, 0, fmt.Errorf("certs renew printed no phase durations:\n%s", out)
	}
	for _, m := range matches {
		d, err := time.ParseDuration(m[2])
		if err != nil {
			return 0, 0, fmt.Errorf("phase %s: %w", m[1], err)
		}
		if renewFilePhases[m[1]] {
			files += d
		} else {
			restarts += d
		}
	}
	if !strings.Contains(out, "[wait-control-plane] done in") {
		return 0, 0, fmt.Errorf("certs renew did not wait for the control plane:\n%s", out)
	}
	return files, restarts, nil
}
