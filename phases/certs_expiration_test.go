package phases

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kforge/kforge/certs"
)

func TestExpiration(t *testing.T) {
	d := initHost(t)
	now := time.Now().Add(24 * time.Hour)
	type row struct {
		Name, Signer      string
		External, Missing bool
	}
	rows := func() []row {
		t.Helper()
		rs, err := Expiration(d.Path(d.CertDir), d.Path(d.KubeconfigDir), d.Cluster, now)
		if err != nil {
			t.Fatal(err)
		}
		var out []row
		for _, r := range rs {
			out = append(out, row{r.Name, r.Signer, r.External, r.Missing})
			if want := int64(r.NotAfter.Sub(now) / time.Second); !r.Missing && r.ResidualSeconds != want {
				t.Errorf("%s: residual %ds, want %ds", r.Name, r.ResidualSeconds, want)
			}
		}
		return out
	}
	want := []row{
		{"ca", "", false, false}, {"apiserver", "ca", false, false}, {"apiserver-kubelet-client", "ca", false, false},
		{"front-proxy-ca", "", false, false}, {"front-proxy-client", "front-proxy-ca", false, false},
		{"etcd-ca", "", false, false}, {"etcd-server", "etcd-ca", false, false}, {"etcd-peer", "etcd-ca", false, false},
		{"etcd-healthcheck-client", "etcd-ca", false, false}, {"apiserver-etcd-client", "etcd-ca", false, false},
		{"admin.conf", "ca", false, false}, {"super-admin.conf", "ca", false, false},
		{"controller-manager.conf", "ca", false, false}, {"scheduler.conf", "ca", false, false},
	}
	if diff := cmp.Diff(want, rows()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	// External CA, and no super-admin.conf, as on a control plane other than init's.
	for _, f := range []string{filepath.Join(d.CertDir, "ca.key"), filepath.Join(d.KubeconfigDir, "super-admin.conf")} {
		if err := os.Remove(d.Path(f)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range want {
		want[i].External = want[i].Name == certs.NameCA || want[i].Signer == certs.NameCA
	}
	want[11] = row{"super-admin.conf", "ca", false, true}
	if diff := cmp.Diff(want, rows()); diff != "" {
		t.Errorf("with an external CA (-want +got):\n%s", diff)
	}
}
