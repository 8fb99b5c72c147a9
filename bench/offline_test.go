// Package bench holds kforge's performance benchmarks. Targets live here, never in timed
// unit tests: `make bench`.
package bench

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"

	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/phases"
	"github.com/kforge/kforge/preflight"
)

func offlineData(b *testing.B, alg string) *phases.Data {
	b.Helper()
	c := config.Default()
	c.Certificates.KeyAlgorithm = alg
	c.Hosts = []config.Host{{Name: "cp1", Address: "192.0.2.10", Roles: []string{config.RoleControlPlane}}}
	config.SetDefaults(c)
	if err := c.Validate(); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	c.Etcd.Local.DataDir = filepath.Join(dir, "etcd")
	s := phases.DataSpec{
		Cluster:          c,
		Node:             &c.Hosts[0],
		AdvertiseAddress: net.ParseIP("192.0.2.10"),
		CertDir:          filepath.Join(dir, "pki"),
		KubeconfigDir:    filepath.Join(dir, "kube"),
		ManifestsDir:     filepath.Join(dir, "kube", "manifests"),
		PreflightSystem:  preflight.LocalSystem(),
		Out:              phases.NewPrinter(io.Discard),
		Log:              slog.New(slog.NewTextHandler(io.Discard, nil)),
		Kubeconfig:       "admin.conf",
	}
	// The offline phases write files only, so the real implementations act on nothing else.
	return phases.NewData(s, phases.RealDeps(s))
}

// offline runs the certs, kubeconfig, etcd and control-plane phases.
var offline = []string{"certs", "kubeconfig", "etcd", "control-plane"}

// BenchmarkOfflinePhases measures a first run: every key, certificate, kubeconfig and
// manifest is created.
func BenchmarkOfflinePhases(b *testing.B) {
	for _, alg := range []string{config.KeyECDSAP256, config.KeyRSA2048} {
		b.Run(alg, func(b *testing.B) {
			wf := phases.InitWorkflow()
			for b.Loop() {
				b.StopTimer()
				d := offlineData(b, alg)
				b.StartTimer()
				for _, p := range offline {
					if err := wf.Run(context.Background(), d, p, nil); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkOfflinePhasesRerun measures the converged case: everything exists and is
// verified, nothing is written.
func BenchmarkOfflinePhasesRerun(b *testing.B) {
	for _, alg := range []string{config.KeyECDSAP256, config.KeyRSA2048} {
		b.Run(alg, func(b *testing.B) {
			wf := phases.InitWorkflow()
			d := offlineData(b, alg)
			for _, p := range offline {
				if err := wf.Run(context.Background(), d, p, nil); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				for _, p := range offline {
					if err := wf.Run(context.Background(), d, p, nil); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
