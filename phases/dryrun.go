package phases

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kforge/kforge/etcd"
	"github.com/kforge/kforge/internal/overlay"
	"github.com/kforge/kforge/kubelet"
	"github.com/kforge/kforge/preflight"
	"github.com/kforge/kforge/service"
)

// DryRunClient is a fake clientset that reports every write it receives, for the plan of a
// dry run. Reads see what earlier writes of the same run created.
// The node itself is there, as the kubelet would have registered it.
func DryRunClient(say func(format string, args ...any), nodeName string) kubernetes.Interface {
	c := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}})
	c.PrependReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		switch a.GetVerb() {
		case "create", "update", "patch", "delete":
			ns := a.GetNamespace()
			if ns != "" {
				ns += "/"
			}
			name := ""
			switch act := a.(type) {
			case interface{ GetName() string }:
				name = act.GetName()
			case interface{ GetObject() runtime.Object }:
				if m, err := meta.Accessor(act.GetObject()); err == nil {
					name = m.GetName()
				}
			}
			say("would %s %s %s%s", a.GetVerb(), a.GetResource().Resource, ns, name)
		}
		return false, nil, nil
	})
	return c
}

// DryRunEtcd connects to an etcd.DryRun with one healthy started member per endpoint,
// which reports membership changes through say instead of making them.
func DryRunEtcd(say func(format string, args ...any)) func(d *Data, endpoints []string) (etcd.Cluster, error) {
	return func(_ *Data, endpoints []string) (etcd.Cluster, error) {
		return etcd.NewDryRun(say, endpoints), nil
	}
}

// DryRunDeps are the implementations of a dry run: each reports through s.Out, with a
// "[dry-run]" prefix, what a real run would do, and does nothing. Writes go under root: a
// ScratchRoot for init and join, which write files; "" for reset, which writes nothing and
// reads the host as it is to say what it would remove.
func DryRunDeps(s DataSpec, root string) Deps {
	say := func(format string, args ...any) { s.Out.Plain("[dry-run] "+format, args...) }
	fake := DryRunClient(say, s.Node.Name)
	client := func() (kubernetes.Interface, error) { return fake, nil }
	d := Deps{
		Root:     root,
		DryRun:   true,
		Facts:    preflight.DetectHostFacts(s.PreflightSystem),
		Now:      time.Now,
		Services: &service.DryRun{Say: say},
		Kforge:   kforgeBinary(),
		Ctr: func(_ context.Context, args ...string) ([]byte, error) {
			say("would run: ctr --namespace k8s.io %s", strings.Join(args, " "))
			return nil, nil
		},
		Waiter: DryRunWaiter{},
		Etcd:   DryRunEtcd(say),
		Client: client,
		Act:    DryRunAct,
	}
	if s.SuperAdmin {
		d.SuperAdminClient = client
	}
	return d
}

// ScratchRoot makes the directory a dry run of init or join writes under, and says so;
// cleanup removes it.
func ScratchRoot(out *Printer) (root string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "kforge-dry-run-")
	if err != nil {
		return "", func() {}, fmt.Errorf("creating the dry-run directory: %w", err)
	}
	out.Plain("[dry-run] writing nothing outside %s", dir)
	return dir, func() { os.RemoveAll(dir) }, nil
}

// PlannedChanges lists the files a dry run of init or join would create or change on the
// host, with diffs; nil on a real run.
func (d *Data) PlannedChanges() ([]overlay.FileChange, error) {
	if d.overlay == nil {
		return nil, nil
	}
	return d.overlay.Changes()
}

// PlannedRestarts names what the planned changes would restart on this host: each static
// pod whose manifest changes, the kubelet when its configuration or flags change, and
// containerd when its configuration changes.
func (d *Data) PlannedRestarts(changes []overlay.FileChange) []string {
	var out []string
	add := func(s string) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, c := range changes {
		switch {
		case filepath.Dir(c.Path) == filepath.Clean(d.ManifestsDir):
			add(strings.TrimSuffix(filepath.Base(c.Path), ".yaml"))
		case c.Path == kubelet.ConfigPath || c.Path == kubelet.FlagsEnvPath:
			add("kubelet")
		case c.Path == kubelet.ContainerdConfigPath:
			add("containerd")
		}
	}
	return out
}
