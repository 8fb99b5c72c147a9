package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
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
// the tests cross-check certificate chains with openssl. `make cluster` and .ci/run install
// them (EnsurePackages) before the bundle is built, so a machine with only Go gets there;
// .ci/run runs make after it, so make is among them.
var MachinePackages = []string{"busybox-static", "iptables", "openssl", "make"}

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
// containerd in the machine itself. progress is told which packages it installs; log
// receives apt's output.
func EnsurePackages(ctx context.Context, pkgs []string, progress func(string), log io.Writer) error {
	missing, err := missingPackages(ctx, pkgs)
	if err != nil {
		return err
	}
	if len(missing) == 0 {
		return nil
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
	return nil
}
