//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kforge/kforge/e2e/testbed"
)

// signingDuration is the controller-manager's --cluster-signing-duration in the 3-control-
// plane cluster of TestCertLifecycle: the kubelets rotate their client certificates at 70
// to 90% of it, so twice within the scenario's renewal phase.
const signingDuration = "3m0s"

// TestCertLifecycle is issue 12 on real hosts, two clusters side by side:
//   - h5 (control plane) and h6 (worker): certificates expire while both are powered off,
//     and one kforge up brings the cluster back (testExpiredClusterComesBack); while the
//     hosts are off, the other cluster runs.
//   - h1, h2, h3 (control planes) and h4 (worker), made by kforge up with the
//     controller-manager signing kubelet certificates for signingDuration: automatic
//     renewal replaces every leaf and kubeconfig client certificate on every control plane
//     one apiserver at a time under an apiWatch, and up renews them when due
//     (certsAutoRenewal); meanwhile every kubelet rotates its client certificate at least
//     twice and its node stays Ready (watchKubeletRotations); then serving certificates
//     (servingCertsOnUp), with the controller-manager back on its default signing duration.
func TestCertLifecycle(t *testing.T) {
	ctx := t.Context()
	l := newLab(t, ctx, 6)
	hs := map[string]testbed.Host{}
	for _, h := range l.TB.Hosts() {
		hs[h.Name] = h
	}
	dir := t.TempDir()
	known, err := os.ReadFile(l.TB.KnownHosts())
	if err != nil {
		t.Fatal(err)
	}
	knownHosts := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(knownHosts, known, 0o600); err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		timings []string
	)
	timed := func(lines ...string) {
		mu.Lock()
		defer mu.Unlock()
		timings = append(timings, lines...)
	}
	defer func() {
		for _, line := range timings {
			t.Log(line)
		}
	}()

	t.Run("certificates", func(t *testing.T) {
		t.Run("an expired cluster comes back with one up", func(t *testing.T) {
			t.Parallel()
			timed(testExpiredClusterComesBack(t, ctx, l, hs["h5"], hs["h6"], dir, knownHosts)...)
		})
		t.Run("renewal on 3 control planes, kubelet rotation, serving certificates", func(t *testing.T) {
			t.Parallel()
			sub := filepath.Join(dir, "ha")
			if err := os.MkdirAll(sub, 0o700); err != nil {
				t.Fatal(err)
			}
			cps := []testbed.Host{hs["h1"], hs["h2"], hs["h3"]}
			nodes := map[string]*node{}
			for _, name := range []string{"h1", "h2", "h3", "h4"} {
				nodes[name] = &node{t: t, h: hs[name], lab: l}
			}
			base := l.UpConfig("certs", hs["h1"].Address.String()+":6443", 3, hs["h1"], hs["h2"], hs["h3"], hs["h4"])
			cfg := filepath.Join(sub, "ha.toml")
			shortSigning := base + "\n[controller_manager.extra_args]\ncluster-signing-duration = \"" + signingDuration + "\"\n"
			if err := os.WriteFile(cfg, []byte(shortSigning), 0o600); err != nil {
				t.Fatal(err)
			}
			admin := filepath.Join(sub, "admin.conf")
			start := time.Now()
			made := kforgeUp(t, ctx, l, cfg, knownHosts, nil)
			if made.err != nil {
				t.Fatalf("kforge up of 3 control planes and a worker: %v\n%s", made.err, made.stderr)
			}
			cs := clientFromFile(t, admin)
			all := []*node{nodes["h1"], nodes["h2"], nodes["h3"], nodes["h4"]}
			for _, n := range all {
				waitFor(t, ctx, n.h.Name+" Ready", 3*time.Minute, func() error { return nodeReady(ctx, cs, n.h.Name) })
			}
			timed("3 control planes and a worker Ready " + time.Since(start).Round(100*time.Millisecond).String() + " after up started")

			timed(certsAutoRenewal(t, ctx, l, cfg, knownHosts, admin, cps))
			// The kubelets have rotated all along; wait for the second rotation where it
			// has not come yet.
			timed("kubelet client certificate rotation under --cluster-signing-duration=" + signingDuration + ": " +
				watchKubeletRotations(t, ctx, clientFromFile(t, admin), all, 2, 6*time.Minute))

			// Serving certificates are signed for the default duration: the file without
			// the short signing duration.
			basePath := filepath.Join(sub, "base.toml")
			if err := os.WriteFile(basePath, []byte(base), 0o600); err != nil {
				t.Fatal(err)
			}
			servingCertsOnUp(t, ctx, l, knownHosts, admin, base, basePath, []string{"h1", "h2", "h3"}, nodes)
		})
	})
}
