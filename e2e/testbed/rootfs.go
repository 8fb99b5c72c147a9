package testbed

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// A systemd host's root file system is Debian, made by debootstrap from Debian's own
// packages: a minimal image such as a cloud provider's, with systemd as init and
// containerd as the distribution's service.
const (
	// Release is the Debian release of systemd hosts: the machine's own (Debian 12).
	Release = "bookworm"
	// Mirror is where debootstrap gets the packages.
	Mirror = "http://deb.debian.org/debian"
)

// SystemdPackages are installed in a systemd host's root file system on top of Debian's
// minbase variant: systemd as PID 1, sshd, containerd and runc as the distribution ships
// them (enabled services), and the tools the kubelet, kube-proxy and kforge's pre-flight
// checks want on a node.
var SystemdPackages = []string{
	"systemd", "systemd-sysv", "dbus",
	"openssh-server",
	"containerd", "runc",
	"iptables", "iproute2", "conntrack", "ethtool", "socat",
	"util-linux", "mount", "procps", "kmod",
}

// machinePackagesSystemd are what the machine needs to make and boot systemd hosts.
var machinePackagesSystemd = []string{"debootstrap", "systemd-container"}

// masked are units of the Debian image that a test host must not run: networkd and
// resolved would manage eth0 and its routes (the testbed and flannel own them), gettys
// wait on a console nobody reads, and the timers fetch from the internet or scrub disks.
var masked = []string{
	"systemd-networkd.service", "systemd-networkd.socket", "systemd-networkd-wait-online.service",
	"systemd-resolved.service",
	"console-getty.service", "getty@tty1.service",
	"apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "e2scrub_reap.service",
}

// cgroupsUnit makes the container's cgroup v1 hierarchies writable before anything
// starts. systemd-nspawn mounts the controller hierarchies read-only in legacy mode (only
// name=systemd is writable): that would leave a cgroupfs kubelet and runc unable to
// create any cgroup. The hierarchies are the container's own subtree (nspawn gives it a
// cgroup namespace rooted at the host's cgroup), so this reaches nothing outside it.
const cgroupsUnit = `# Written by the kforge testbed: make the cgroup v1 hierarchies that systemd-nspawn
# mounts read-only writable, as on a VM, for the kubelet and runc.
[Unit]
Description=Writable cgroup v1 hierarchies (kforge testbed)
DefaultDependencies=no
Before=sysinit.target containerd.service
ConditionVirtualization=systemd-nspawn

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'for d in /sys/fs/cgroup/*/; do mount -o remount,bind,rw "$d"; done'

[Install]
WantedBy=sysinit.target
`

const cgroupsUnitName = "kforge-testbed-cgroups.service"

// rootfsSpec is everything that decides a cached root file system's content: its hash
// names the cache entry, so that a change to any of it builds a new one. Every root is
// debootstrap's minbase variant of Release with Packages added; customizeRootfs applies
// the rest, each part only where the spec has it.
type rootfsSpec struct {
	Release     string   `json:"release"`
	Mirror      string   `json:"mirror"`
	Packages    []string `json:"packages"`
	Masked      []string `json:"masked"`
	CgroupsUnit string   `json:"cgroupsUnit"`
	Dirs        []string `json:"dirs"`
}

// imageDirs are made in the image: kube-proxy mounts /lib/modules from the node, and a
// minimal Debian without a kernel package has none.
var imageDirs = []string{"/lib/modules"}

// systemdRootfsSpec is the image systemd hosts boot.
func systemdRootfsSpec() rootfsSpec {
	pkgs := slices.Clone(SystemdPackages)
	slices.Sort(pkgs)
	return rootfsSpec{Release: Release, Mirror: Mirror, Packages: pkgs, Masked: masked, CgroupsUnit: cgroupsUnit, Dirs: imageDirs}
}

// bareRootfsSpec is Debian as a fresh machine has it: minbase, nothing added, no change.
func bareRootfsSpec() rootfsSpec {
	return rootfsSpec{Release: Release, Mirror: Mirror}
}

// BareDebian puts at dst (which must not exist) a copy of a bare Debian root file system:
// Release, debootstrap's minbase variant, with nothing added, as a machine is before
// anything is installed on it; for a test of what such a machine needs. The image is built
// once and cached in RootfsCacheDir. It installs what it needs on this machine first:
// debootstrap, and systemd-container for running something in the copy with
// systemd-nspawn. progress is told what it does; log receives apt's and debootstrap's
// output.
func BareDebian(ctx context.Context, dst string, progress func(string), log io.Writer) error {
	if err := EnsurePackages(ctx, machinePackagesSystemd, progress, log); err != nil {
		return fmt.Errorf("installing what building a Debian root needs: %w", err)
	}
	image, err := ensureRootfs(ctx, bareRootfsSpec(), progress, log)
	if err != nil {
		return err
	}
	return copyRootfs(ctx, image, dst)
}

// key names the cache entry: the release and a hash of the whole spec.
func (s rootfsSpec) key() string {
	b, _ := json.Marshal(s)
	sum := sha256.Sum256(b)
	return s.Release + "-" + hex.EncodeToString(sum[:])[:16]
}

// RootfsCacheDir is where built root file systems are kept, one per spec:
// <user cache dir>/kforge/testbed-rootfs (~/.cache/kforge/testbed-rootfs for root).
func RootfsCacheDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding the cache directory for root file systems: %w", err)
	}
	return filepath.Join(dir, "kforge", "testbed-rootfs"), nil
}

// ensureRootfs returns the cached root file system for spec, building it first if there
// is none: debootstrap into a scratch directory (kept, with a marker, if a later step
// fails, so that a retry does not download again), the spec's changes, then a rename into
// place. A cache entry is complete when it has its spec.json, which the build writes last
// before the rename. A lock keeps two builders from racing.
func ensureRootfs(ctx context.Context, spec rootfsSpec, progress func(string), log io.Writer) (string, error) {
	cache, err := RootfsCacheDir()
	if err != nil {
		return "", err
	}
	final := filepath.Join(cache, spec.key())
	if _, err := os.Stat(filepath.Join(final, "spec.json")); err == nil {
		return filepath.Join(final, "rootfs"), nil
	}
	lock, err := lockDir(cache)
	if err != nil {
		return "", err
	}
	defer lock.unlock()
	if _, err := os.Stat(filepath.Join(final, "spec.json")); err == nil {
		return filepath.Join(final, "rootfs"), nil // built by someone else while we waited
	}
	scratch := final + ".build"
	root := filepath.Join(scratch, "rootfs")
	marker := filepath.Join(scratch, "debootstrap.done")
	if _, err := os.Stat(marker); err != nil {
		if err := removeTree(scratch); err != nil {
			return "", err
		}
		if err := os.MkdirAll(scratch, 0o755); err != nil {
			return "", err
		}
		progress(fmt.Sprintf("building a Debian %s root file system with debootstrap (a few minutes, once; cached in %s)", spec.Release, cache))
		args := []string{"--variant=minbase"}
		if len(spec.Packages) > 0 {
			args = append(args, "--include="+strings.Join(spec.Packages, ","))
		}
		args = append(args, spec.Release, root, spec.Mirror)
		cmd := exec.CommandContext(ctx, "debootstrap", args...)
		cmd.Env = baseEnv()
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("running debootstrap %s: %w (its output is in the testbed's log/debootstrap.log)", strings.Join(args, " "), err)
		}
		if err := os.WriteFile(marker, nil, 0o644); err != nil {
			return "", err
		}
	}
	if err := customizeRootfs(root, spec); err != nil {
		return "", fmt.Errorf("preparing the root file system in %s: %w", root, err)
	}
	specJSON, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(scratch, "spec.json"), specJSON, 0o644); err != nil {
		return "", err
	}
	os.Remove(marker)
	if err := os.Rename(scratch, final); err != nil {
		return "", fmt.Errorf("putting the root file system in the cache: %w", err)
	}
	return filepath.Join(final, "rootfs"), nil
}

// customizeRootfs turns a fresh debootstrap into the image the spec describes: the masked
// units and the cgroup unit where the spec has them (a systemd host's image), its
// directories, and no identity (machine-id, SSH host keys, hostname), which each copy gets
// its own of.
func customizeRootfs(root string, spec rootfsSpec) error {
	units := filepath.Join(root, "etc/systemd/system")
	for _, u := range spec.Masked {
		p := filepath.Join(units, u)
		os.Remove(p)
		if err := os.Symlink("/dev/null", p); err != nil {
			return err
		}
	}
	if spec.CgroupsUnit != "" {
		if err := os.WriteFile(filepath.Join(units, cgroupsUnitName), []byte(spec.CgroupsUnit), 0o644); err != nil {
			return err
		}
		wants := filepath.Join(units, "sysinit.target.wants")
		if err := os.MkdirAll(wants, 0o755); err != nil {
			return err
		}
		os.Remove(filepath.Join(wants, cgroupsUnitName))
		if err := os.Symlink("../"+cgroupsUnitName, filepath.Join(wants, cgroupsUnitName)); err != nil {
			return err
		}
	}
	for _, d := range spec.Dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	keys, err := filepath.Glob(filepath.Join(root, "etc/ssh/ssh_host_*"))
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := os.Remove(k); err != nil {
			return err
		}
	}
	for _, f := range []string{"etc/machine-id", "var/lib/dbus/machine-id", "etc/hostname"} {
		if err := os.Remove(filepath.Join(root, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// removeTree removes dir and everything in it, refusing if anything is mounted there
// (a debootstrap killed half-way can leave its /proc mounted).
func removeTree(dir string) error {
	if m := mountsUnder(dir); len(m) > 0 {
		return fmt.Errorf("leaving %s in place: these mounts are under it: %s", dir, strings.Join(m, ", "))
	}
	return os.RemoveAll(dir)
}

// copyRootfs copies the cached image to a host's root, preserving owners, modes, links
// and special files; copy-on-write where the file system can.
func copyRootfs(ctx context.Context, src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp := dst + ".tmp"
	if err := removeTree(tmp); err != nil {
		return err
	}
	if _, err := run(ctx, nil, "cp", "-a", "--reflink=auto", src, tmp); err != nil {
		return fmt.Errorf("copying the root file system: %w", err)
	}
	return os.Rename(tmp, dst)
}
