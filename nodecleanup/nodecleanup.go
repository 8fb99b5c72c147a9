// Package nodecleanup undoes what init and join did to a host: it removes the pods through
// the container runtime, takes down the kubelet's mounts, removes the cluster's files, and
// deletes the network links and iptables chains of kube-proxy and flannel. It yields each
// destructive step as a value, so that its caller decides whether to do it or only report
// it (a dry run); it knows nothing of the terminal.
package nodecleanup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kforge/kforge/fleet"
	"github.com/kforge/kforge/internal/wait"

	"github.com/kforge/kforge/addons"
	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/cri"
	"github.com/kforge/kforge/kubeconfig"
	"github.com/kforge/kforge/manifests"
	"github.com/kforge/kforge/service"
)

// KubeletDir is the kubelet's root directory: its pods' volumes are mounted below it.
const KubeletDir = "/var/lib/kubelet"

// Step is one destructive step of a cleanup.
type Step struct {
	// Desc says what the step does, in the imperative: "unmount /var/lib/kubelet/pods/x".
	Desc string
	// Do does it.
	Do func() error
}

// Dirs are where init and join wrote the cluster's files.
type Dirs struct {
	ManifestsDir, KubeconfigDir, CertDir string
	// EtcdDataDir is the local etcd member's data directory; empty when etcd is external.
	EtcdDataDir string
}

// Node is the host to clean up.
type Node struct {
	Dirs
	// RuntimeEndpoint is the container runtime's CRI socket.
	RuntimeEndpoint string
	// At maps a path to where it is on this host: the path itself, or the path under a dry
	// run's temporary root.
	At func(path string) string
	// Warn reports a problem that leaves something in place without failing the cleanup.
	Warn func(err error)
}

// Steps yields the steps that clean up n, in order: remove every pod, unmount what is
// mounted below KubeletDir, remove the Paths that exist (refusing any with a mount left
// in it), delete the network
// links of the CNI plugins and kube-proxy, and remove the iptables rules and chains of
// kube-proxy and flannel. Each step is worked out when its turn comes, after the steps
// before it have been done.
func Steps(ctx context.Context, n Node) iter.Seq[Step] {
	return func(yield func(Step) bool) {
		for _, steps := range []iter.Seq[Step]{
			sandboxSteps(ctx, n.RuntimeEndpoint, n.Warn),
			unmountSteps(n.At(KubeletDir)),
			removeSteps(Paths(n.Dirs), n.At, readMountinfo, StatFSID),
			linkSteps(ctx),
			iptablesSteps(ctx),
		} {
			for s := range steps {
				if !yield(s) {
					return
				}
			}
		}
	}
}

// Names kforge, the kubelet and the CNI plugins create, by directory. Reset removes these
// and nothing else there: never "everything under" a directory, which a mistyped setting
// could point at /var/lib.
var (
	// KubeletNames are what the kubelet and kforge create in KubeletDir.
	KubeletNames = []string{"config.yaml", "kubeadm-flags.env", "instance-config.yaml", "pki", "pods", "plugins",
		"plugins_registry", "pod-resources", "device-plugins", "checkpoints", "cpu_manager_state",
		"memory_manager_state", "dra_manager_state"}
	// EtcdDataNames are what etcd creates in its data directory: the member's WAL and snapshots.
	EtcdDataNames = []string{"member"}
	// CNIStateNames are the CNI plugins' state in /var/lib/cni: host-local IPAM, libcni's
	// cache, flannel's.
	CNIStateNames = []string{"networks", "results", "cache", "flannel"}
)

// Target is a file or directory reset removes.
type Target struct {
	Path string
	// IfEmpty removes a directory only once it is empty (the etcd certificates' directory,
	// in which an operator may keep files of their own).
	IfEmpty bool
}

// Paths lists what reset removes, by name: the control plane's static pod manifests, the
// kubeconfig files, the certificates and keys of kforge's table, the kubelet's, CNI's and
// flannel's state, the local etcd member's data, kforge's pending restarts and its record
// of an init under way. Anything
// else in those directories stays.
func Paths(d Dirs) []Target {
	var paths []Target
	add := func(dir string, names ...string) {
		for _, n := range names {
			paths = append(paths, Target{Path: filepath.Join(dir, n)})
		}
	}
	for _, c := range []string{manifests.NameEtcd, manifests.NameAPIServer, manifests.NameControllerManager, manifests.NameScheduler} {
		add(d.ManifestsDir, manifests.FileName(c))
	}
	add(d.KubeconfigDir, kubeconfig.AdminFileName, kubeconfig.SuperAdminFileName, kubeconfig.KubeletFileName,
		kubeconfig.ControllerManagerFileName, kubeconfig.SchedulerFileName, kubeconfig.BootstrapKubeletFileName)
	add("", certs.Files(d.CertDir)...)
	add("", manifests.EncryptionConfigPath(d.CertDir))
	paths = append(paths, Target{Path: filepath.Join(d.CertDir, "etcd"), IfEmpty: true})
	apiserverDir := filepath.Join(d.KubeconfigDir, manifests.APIServerConfigDir)
	add(apiserverDir, manifests.AuditPolicyFile, manifests.AdmissionConfigFile, manifests.AuthenticationConfigFile)
	paths = append(paths, Target{Path: apiserverDir, IfEmpty: true})
	add(KubeletDir, KubeletNames...)
	add("/var/lib/cni", CNIStateNames...)
	add("", addons.FlannelHostFiles()...)
	if d.EtcdDataDir != "" {
		add(d.EtcdDataDir, EtcdDataNames...)
	}
	add("", service.PendingDir, fleet.InitMarker)
	return paths
}

// sandboxSteps removes every pod sandbox the runtime at endpoint has. A runtime that does
// not answer is reported through warn, and its pods are left alone.
func sandboxSteps(ctx context.Context, endpoint string, warn func(error)) iter.Seq[Step] {
	return func(yield func(Step) bool) {
		c, err := cri.Dial(endpoint)
		if err != nil {
			return
		}
		defer c.Close()
		sandboxes, err := c.Sandboxes(ctx)
		if err != nil {
			warn(fmt.Errorf("cannot list pods (%w); is containerd running? Pods were left alone", err))
			return
		}
		for _, s := range sandboxes {
			if !yield(Step{Desc: fmt.Sprintf("remove pod %s/%s (sandbox %.12s)", s.Namespace, s.Name, s.ID),
				Do: func() error { return removeSandbox(ctx, c, s.ID) }}) {
				return
			}
		}
	}
}

// sandboxRemoveBackoff bounds the retries of a sandbox removal: a
// container the kubelet had just asked for may still be starting, and containerd refuses
// to remove it until it has started.
var sandboxRemoveBackoff = wait.Backoff{Steps: 20, Initial: 500 * time.Millisecond, Max: 500 * time.Millisecond}

// sandboxRemover is the part of *cri.Client that removes a sandbox.
type sandboxRemover interface {
	RemoveSandbox(ctx context.Context, id string) error
}

func removeSandbox(ctx context.Context, c sandboxRemover, id string) error {
	always := func(error) bool { return true }
	return wait.Retry(ctx, sandboxRemoveBackoff, always, func(ctx context.Context) error { return c.RemoveSandbox(ctx, id) })
}

// unmountSteps unmounts what mountsUnder lists for dir.
func unmountSteps(dir string) iter.Seq[Step] {
	return func(yield func(Step) bool) {
		for _, m := range mountsUnder(dir) {
			if !yield(Step{Desc: "unmount " + m, Do: func() error { return syscall.Unmount(m, syscall.MNT_DETACH) }}) {
				return
			}
		}
	}
}

// removeSteps removes each of targets that exists (at maps it to where it is on this
// host). Each removal first reads the mount table (mountinfo) afresh and refuses a target
// with anything mounted at or below it, then removes it without crossing into another
// filesystem or mount (fsID tells them apart).
func removeSteps(targets []Target, at func(string) string, mountinfo func() (string, error), fsID func(string) (FSID, error)) iter.Seq[Step] {
	return func(yield func(Step) bool) {
		for _, t := range targets {
			if _, err := os.Lstat(at(t.Path)); errors.Is(err, fs.ErrNotExist) {
				continue
			}
			desc := "remove " + t.Path
			if t.IfEmpty {
				desc += " if it is empty"
			}
			if !yield(Step{Desc: desc, Do: func() error { return remove(at(t.Path), t.IfEmpty, mountinfo, fsID) }}) {
				return
			}
		}
	}
}

// MountedError is a refusal to remove a path with something mounted at or below it.
type MountedError struct {
	Path  string
	Mount Mount
}

func (e *MountedError) Error() string {
	return fmt.Sprintf("refusing to remove %s: %s is mounted there; unmount it (umount %s) and run reset again",
		e.Path, e.Mount, e.Mount.Point)
}

func remove(p string, ifEmpty bool, mountinfo func() (string, error), fsID func(string) (FSID, error)) error {
	info, err := mountinfo()
	if err != nil {
		return fmt.Errorf("reading the mount table before removing %s: %w", p, err)
	}
	if m := AtOrBelow(ParseMountinfo(info), p); len(m) > 0 {
		return &MountedError{Path: p, Mount: m[0]}
	}
	if ifEmpty {
		if err := os.Remove(p); err != nil && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
			return err
		}
		return nil
	}
	return removeTree(p, fsID)
}

// linkSteps deletes the network links of flannel, the bridge CNI plugin and kube-proxy's
// IPVS mode that exist.
func linkSteps(ctx context.Context) iter.Seq[Step] {
	return func(yield func(Step) bool) {
		for _, link := range []string{"cni0", "flannel.1", "kube-ipvs0"} {
			if _, err := net.InterfaceByName(link); err != nil {
				continue
			}
			if !yield(Step{Desc: "delete network link " + link, Do: func() error { return run(ctx, "ip", "link", "delete", link) }}) {
				return
			}
		}
	}
}

func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// iptablesSteps removes the rules and chains of kube-proxy and flannel (ownedChain) from
// the IPv4 and the IPv6 tables, each with one iptables-restore of what iptables-save
// printed without them. A table whose tools are missing or fail to save is left alone.
func iptablesSteps(ctx context.Context) iter.Seq[Step] {
	return func(yield func(Step) bool) {
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
			if !yield(Step{Desc: fmt.Sprintf("remove %d %s rules and chains of kube-proxy and flannel", removed, tool), Do: func() error {
				cmd := exec.CommandContext(ctx, tool+"-restore")
				cmd.Stdin = bytes.NewReader(kept)
				if out, err := cmd.CombinedOutput(); err != nil {
					return fmt.Errorf("%s-restore: %w: %s", tool, err, out)
				}
				return nil
			}}) {
				return
			}
		}
	}
}
