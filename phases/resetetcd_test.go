package phases

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/etcd"
	"github.com/kforge/kforge/manifests"
)

// downPeers is a dry-run etcd whose members other than the first do not answer.
type downPeers struct{ *etcd.DryRun }

func (f downPeers) HealthyMembers(ctx context.Context, ms []etcd.Member) ([]etcd.Member, []error) {
	healthy, _ := f.DryRun.HealthyMembers(ctx, ms)
	var errs []error
	for _, m := range healthy[1:] {
		errs = append(errs, fmt.Errorf("etcd member %s does not answer", m.Name))
	}
	return healthy[:1], errs
}

func TestRemoveEtcdMember(t *testing.T) {
	tests := []struct {
		name     string
		manifest bool
		down     bool
		force    bool
		want     []string
		wantErr  error
	}{
		{name: "no local member", want: []string{"[remove-etcd-member] this host runs no etcd member"}},
		{name: "removed", manifest: true, want: []string{
			"[fake] would remove etcd member 1",
			"[remove-etcd-member] removed etcd member member-1 (1); 2 members remain",
		}},
		{name: "the rest would lose quorum: refused", manifest: true, down: true, wantErr: etcd.ErrQuorum},
		{name: "the rest would lose quorum, --force: a warning, and the member stays", manifest: true, down: true, force: true, want: []string{
			"[remove-etcd-member] WARNING (--force): refusing to remove etcd member member-1: removing the member would lose quorum: " +
				"0 of the 2 other voting members are healthy and 2 are needed (etcd member member-2 does not answer\n" +
				"etcd member member-3 does not answer); bring the other members back first, or pass --force",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := &bytes.Buffer{}
			d := newTestData(t, testCluster(t, nil), "cp1", out, nil)
			d.Force = tc.force
			var endpoints []string
			d.Etcd = func(_ *Data, e []string) (etcd.Cluster, error) {
				endpoints = e
				f := etcd.NewDryRun(func(format string, args ...any) { fmt.Fprintf(out, "[fake] "+format+"\n", args...) }, e)
				if tc.down {
					return downPeers{f}, nil
				}
				return f, nil
			}
			if tc.manifest {
				pod, err := manifests.Etcd(manifests.Params{Cluster: config.Default(), NodeName: "cp1", AdvertiseAddress: "10.0.0.10",
					EtcdInitialCluster: "cp1=https://10.0.0.10:2380,cp2=https://10.0.0.11:2380,cp3=https://10.0.0.12:2380"})
				if err != nil {
					t.Fatal(err)
				}
				b, err := manifests.Render(pod)
				if err != nil {
					t.Fatal(err)
				}
				p := d.Path(filepath.Join(d.ManifestsDir, manifests.FileName(manifests.NameEtcd)))
				if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			d.Out = d.Out.Named("remove-etcd-member") // as the runner names it
			err := runRemoveEtcdMember(t.Context(), d)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("runRemoveEtcdMember error = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil {
				return
			}
			if diff := cmp.Diff(strings.Join(tc.want, "\n")+"\n", out.String()); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
			if tc.manifest {
				want := []string{"https://10.0.0.10:2379", "https://10.0.0.11:2379", "https://10.0.0.12:2379"}
				if diff := cmp.Diff(want, endpoints); diff != "" {
					t.Errorf("endpoints (-want +got):\n%s", diff)
				}
			}
		})
	}
}
