package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// Packages are the Debian packages the machine needs for hosts: what the testbed itself
// runs (iproute2, iptables, util-linux's nsenter), what a cloud image with containerd
// preinstalled has (containerd, runc, openssh-server), and the tools the kubelet,
// kube-proxy and kforge expect on a node.
var Packages = []string{
	"containerd", "runc",
	"openssh-server", "openssh-sftp-server", "openssh-client",
	"iptables", "iproute2", "util-linux", "mount", "procps", "kmod",
	"conntrack", "ethtool", "socat", "busybox-static", "containernetworking-plugins",
}

// MachinePackages are what the machine itself needs before anything is built: the bundle's
// images carry this machine's static busybox and its iptables (with their libraries), and
// the tests cross-check certificate chains with openssl. kube-proxy's image also carries
// nft and ipset, for its nftables and ipvs modes. `make cluster` and .ci/run install
// them (EnsurePackages) before the bundle is built, so a machine with only Go gets there;
// .ci/run runs make after it, so make is among them. apt, dpkg, coreutils, dash and libc-bin
// are in every Debian: they are listed so that the check after installing covers the
// commands of MachineCommands that come from them.
var MachinePackages = []string{"busybox-static", "iptables", "nftables", "ipset", "openssl", "make", "apt", "dpkg", "coreutils", "dash", "libc-bin"}

// A MachineCommand is a program the machine runs by name, and the Debian package that
// ships it.
type MachineCommand struct {
	// Name is the name it is run by: on PATH, or the base name of the absolute path the
	// code uses (/bin/busybox is busybox).
	Name string
	// Package is the Debian package that ships it; empty for Go, which is what the operator
	// installs before anything else.
	Package string
}

// MachineCommands are every program the machine itself runs by name for `make cluster`,
// the bundle build and the testbed: what e2e's code runs (the testbed's run and lookPath,
// exec.Command and exec.LookPath), what the bundle build copies from the machine into its
// images, and make and openssl. TestMachineCommandsListed parses e2e's code and fails on a
// command that is not here. EnsurePackages checks, after installing, that each command of
// the packages it ensured resolves.
var MachineCommands = []MachineCommand{
	{"go", ""}, // builds kforge, the bundle and testbedctl
	{"make", "make"},
	{"apt-get", "apt"},
	{"dpkg-query", "dpkg"},
	{"sh", "dash"},
	{"cp", "coreutils"},
	{"ldd", "libc-bin"}, // finds the libraries of the programs the images carry
	// The bundle's images carry the machine's static busybox and iptables tools.
	{"busybox", "busybox-static"},
	{"iptables", "iptables"},
	{"iptables-save", "iptables"},
	{"iptables-restore", "iptables"},
	{"ip6tables", "iptables"},
	{"ip6tables-save", "iptables"},
	{"ip6tables-restore", "iptables"},
	{"nft", "nftables"},    // kube-proxy's nftables mode
	{"ipset", "ipset"},     // kube-proxy's ipvs mode
	{"openssl", "openssl"}, // the tests cross-check certificate chains
	// The testbed: hosts' namespaces, network and services, and logging in to them.
	{"nsenter", "util-linux"},
	{"ip", "iproute2"},
	{"sshd", "openssh-server"},
	{"ssh", "openssh-client"},
	{"containerd", "containerd"},
	{"ctr", "containerd"},
	{"runc", "runc"},
}

// machineCommandsSystemd are what the machine runs only to make and boot systemd hosts,
// from machinePackagesSystemd.
var machineCommandsSystemd = []MachineCommand{
	{"debootstrap", "debootstrap"},
	{"systemd-nspawn", "systemd-container"},
}

// checkCommands returns an error naming each command of MachineCommands and
// machineCommandsSystemd that one of pkgs ships and that is not in path's directories,
// with its package.
func checkCommands(pkgs []string, path string) error {
	var errs []error
	for _, c := range slices.Concat(MachineCommands, machineCommandsSystemd) {
		if c.Package == "" || !slices.Contains(pkgs, c.Package) {
			continue
		}
		if _, err := lookPathIn(c.Name, path); err != nil {
			errs = append(errs, fmt.Errorf("%w: Debian's %s package ships it, and dpkg says it is installed (apt-get install --reinstall %s)", err, c.Package, c.Package))
		}
	}
	return errors.Join(errs...)
}

// missingPackages asks dpkg which of pkgs are not installed.
func missingPackages(ctx context.Context, pkgs []string) ([]string, error) {
	args := append([]string{"-W", "-f=${Package} ${db:Status-Status}\n"}, pkgs...)
	cmd := exec.CommandContext(ctx, "dpkg-query", args...)
	cmd.Env = baseEnv()
	out, _ := cmd.Output() // exits 1 when a package is unknown; the output still lists the rest
	installed := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[1] == "installed" {
			installed[strings.SplitN(f[0], ":", 2)[0]] = true
		}
	}
	var missing []string
	for _, p := range pkgs {
		if !installed[p] {
			missing = append(missing, p)
		}
	}
	return missing, nil
}

const policyRCD = "/usr/sbin/policy-rc.d"

// EnsurePackages installs whatever of pkgs is missing with apt-get. While it runs, a
// policy-rc.d that denies every start keeps the packages' scripts from starting sshd or
// containerd in the machine itself. Then every command of MachineCommands (and of the
// systemd hosts' commands) that pkgs ship must resolve: an error names each that does not,
// with its package. progress is told which packages it installs; log
// receives apt's output.
func EnsurePackages(ctx context.Context, pkgs []string, progress func(string), log io.Writer) error {
	missing, err := missingPackages(ctx, pkgs)
	if err != nil {
		return err
	}
	if len(missing) == 0 {
		return checkCommands(pkgs, sysPath)
	}
	progress("installing Debian packages: " + strings.Join(missing, " "))
	if _, err := os.Lstat(policyRCD); errors.Is(err, fs.ErrNotExist) {
		if err := os.WriteFile(policyRCD, []byte("#!/bin/sh\n# kforge testbed: no service starts while it installs packages\nexit 101\n"), 0o755); err != nil {
			return fmt.Errorf("writing %s: %w", policyRCD, err)
		}
		defer os.Remove(policyRCD)
	}
	apt := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(baseEnv(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("running apt-get %s: %w (its output is above or in the testbed's apt log)", strings.Join(args, " "), err)
		}
		return nil
	}
	if err := apt("update", "-q"); err != nil {
		return err
	}
	install := append([]string{"install", "-y", "-q", "--no-install-recommends",
		"-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"}, missing...)
	if err := apt(install...); err != nil {
		return err
	}
	if still, _ := missingPackages(ctx, missing); len(still) > 0 {
		return fmt.Errorf("apt-get did not install %s", strings.Join(still, " "))
	}
	return checkCommands(pkgs, sysPath)
}
