package phases

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/kforge/kforge/cri"
	"github.com/kforge/kforge/kubeconfig"
	"github.com/kforge/kforge/manifests"
)

// ResetWorkflow is `kforge reset`: it undoes init and join on this host, so that the host
// is ready for another init or join.
func ResetWorkflow() *Workflow {
	return &Workflow{
		Name: "reset",
		Phases: []Phase{
			{
				Name:  "preflight",
				Short: "Check that reset can run here",
				Run: func(_ context.Context, d *Data) error {
					if d.PreflightSystem != nil && d.PreflightSystem.Euid() != 0 && !d.IgnorePreflight.Has("IsPrivilegedUser") && !d.IgnorePreflight.All() {
						return errors.New("reset must run as root (or pass --ignore-preflight-errors=IsPrivilegedUser to try anyway)")
					}
					d.Out.Phase("preflight", "resetting host %q: the kubelet, its pods and every file init or join wrote will be removed", d.Node.Name)
					return nil
				},
			},
			removeEtcdMemberPhase(),
			removeNodePhase(),
			{
				Name:  "cleanup-node",
				Short: "Stop the kubelet and every pod, and remove the cluster's files, mounts, network links and iptables chains",
				Run:   cleanupNode,
			},
		},
	}
}

// sandboxRemoveTries and sandboxRemoveDelay bound the retries of a sandbox removal: a
// container the kubelet had just asked for may still be starting, and containerd refuses
// to remove it until it has started.
const (
	sandboxRemoveTries = 20
	sandboxRemoveDelay = 500 * time.Millisecond
)

func removeSandbox(ctx context.Context, c *cri.Client, id string) error {
	var err error
	for i := 0; i < sandboxRemoveTries; i++ {
		if err = c.RemoveSandbox(ctx, id); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(sandboxRemoveDelay):
		}
	}
	return err
}

// Act carries out one step of a destructive workflow: a real run does it, a dry run
// prints it.
type Act func(desc string, do func() error) error

// RealAct does the step and reports it.
func RealAct(p *Printer, phase string) Act {
	return func(desc string, do func() error) error {
		p.Phase(phase, "%s", desc)
		return do()
	}
}

// DryRunAct reports the step as a plan and does nothing.
func DryRunAct(p *Printer, phase string) Act {
	return func(desc string, _ func() error) error {
		p.Phase(phase, "would %s", desc)
		return nil
	}
}

func cleanupNode(ctx context.Context, d *Data) error {
	act := d.Act
	var errs []error
	step := func(desc string, do func() error) {
		if err := act(desc, do); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", desc, err))
		}
	}

	step("stop the kubelet", func() error { return d.Services.Stop(ctx, "kubelet") })

	if c, err := cri.Dial(d.Cluster.Kubelet.ContainerRuntimeEndpoint); err == nil {
		defer c.Close()
		if sandboxes, err := c.Sandboxes(ctx); err == nil {
			for _, s := range sandboxes {
				step(fmt.Sprintf("remove pod %s/%s (sandbox %.12s)", s.Namespace, s.Name, s.ID), func() error {
					return removeSandbox(ctx, c, s.ID)
				})
			}
		} else {
			d.Out.Phase("cleanup-node", "WARNING: cannot list pods (%v); is containerd running? Pods were left alone", err)
		}
	}

	for _, m := range mountsUnder(d.Path("/var/lib/kubelet")) {
		step("unmount "+m, func() error { return syscall.Unmount(m, syscall.MNT_DETACH) })
	}

	var paths []string
	for _, c := range []string{manifests.NameEtcd, manifests.NameAPIServer, manifests.NameControllerManager, manifests.NameScheduler} {
		paths = append(paths, filepath.Join(d.ManifestsDir, manifests.FileName(c)))
	}
	for _, f := range []string{kubeconfig.AdminFileName, kubeconfig.SuperAdminFileName, kubeconfig.KubeletFileName,
		kubeconfig.ControllerManagerFileName, kubeconfig.SchedulerFileName, kubeconfig.BootstrapKubeletFileName} {
		paths = append(paths, filepath.Join(d.KubeconfigDir, f))
	}
	paths = append(paths, d.CertDir, "/var/lib/kubelet", "/var/lib/cni", "/etc/cni/net.d", "/run/flannel", "/var/lib/kube-proxy")
	if d.Cluster.Etcd.Local != nil {
		paths = append(paths, d.Cluster.Etcd.Local.DataDir)
	}
	for _, p := range paths {
		if _, err := os.Lstat(d.Path(p)); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		step("remove "+p, func() error { return removeContents(d.Path(p)) })
	}

	for _, link := range []string{"cni0", "flannel.1", "kube-ipvs0"} {
		if _, err := net.InterfaceByName(link); err == nil {
			step("delete network link "+link, func() error { return run(ctx, "ip", "link", "delete", link) })
		}
	}
	for _, tool := range []string{"iptables", "ip6tables"} {
		if _, err := exec.LookPath(tool + "-save"); err != nil {
			continue
		}
		save, err := exec.CommandContext(ctx, tool+"-save").Output()
		if err != nil {
			continue
		}
		kept, removed := dropChains(save, ownedChain)
		if removed == 0 {
			continue
		}
		step(fmt.Sprintf("remove %d %s rules and chains of kube-proxy and flannel", removed, tool), func() error {
			cmd := exec.CommandContext(ctx, tool+"-restore")
			cmd.Stdin = bytes.NewReader(kept)
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("%s-restore: %w: %s", tool, err, out)
			}
			return nil
		})
	}
	return errors.Join(errs...)
}

// removeContents removes a file, or everything inside a directory but the directory
// itself: a directory may be a mount point (a dedicated etcd disk, a bind mount), which
// cannot be removed and must stay for the next init.
func removeContents(p string) error {
	st, err := os.Lstat(p)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return os.Remove(p)
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(p, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// ownedChain matches the iptables chains kube-proxy, the kubelet and flannel create.
func ownedChain(name string) bool {
	return strings.HasPrefix(name, "KUBE-") || strings.HasPrefix(name, "FLANNEL-")
}

// dropChains removes from iptables-save output every chain that owned matches, every rule
// in such a chain and every rule that jumps to one. It returns the rest and how many lines
// it dropped.
func dropChains(save []byte, owned func(string) bool) ([]byte, int) {
	var out bytes.Buffer
	removed := 0
	s := bufio.NewScanner(bytes.NewReader(save))
	s.Buffer(make([]byte, 1<<20), 1<<24)
	for s.Scan() {
		line := s.Text()
		fields := strings.Fields(line)
		drop := false
		switch {
		case strings.HasPrefix(line, ":") && len(fields) > 0:
			drop = owned(strings.TrimPrefix(fields[0], ":"))
		case strings.HasPrefix(line, "-A ") && len(fields) > 1:
			drop = owned(fields[1])
			for i := 2; i+1 < len(fields) && !drop; i++ {
				if (fields[i] == "-j" || fields[i] == "-g" || fields[i] == "--jump" || fields[i] == "--goto") && owned(fields[i+1]) {
					drop = true
				}
			}
		}
		if drop {
			removed++
			continue
		}
		out.WriteString(line + "\n")
	}
	return out.Bytes(), removed
}

// mountsUnder lists what reset unmounts for dir, deepest first: every mount strictly
// below it (pod volumes), and the mounts stacked on dir itself except the lowest (the
// kubelet bind-mounts its root dir onto itself). The lowest mount at dir is never
// touched: it may be a dedicated disk or a bind mount the host depends on.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	return mountsToUnmount(string(b), dir)
}

func mountsToUnmount(mountinfo, dir string) []string {
	var below []string
	atDir := 0
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		switch mp := unescapeMount(f[4]); {
		case mp == dir:
			atDir++
		case strings.HasPrefix(mp, dir+"/"):
			below = append(below, mp)
		}
	}
	slices.SortFunc(below, func(a, b string) int { return len(b) - len(a) })
	out := slices.Compact(below)
	for i := 1; i < atDir; i++ {
		out = append(out, dir)
	}
	return out
}

// unescapeMount decodes the octal escapes (\040 for a space) of /proc/self/mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
