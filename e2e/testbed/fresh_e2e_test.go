//go:build e2e

package testbed_test

import (
	"bytes"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kforge/kforge/e2e/testbed"
)

// TestFreshMachine proves that `testbedctl prereqs`, the first step of `make cluster`,
// turns a bare Debian 12 (debootstrap's minbase, nothing added: a machine as it is
// before anything is installed, with Go brought by the operator) into one where every
// command of testbed.MachineCommands resolves and make runs. It runs a static testbedctl
// inside a copy of that Debian under systemd-nspawn, on the machine's network so that apt
// reaches Debian's mirror. Then, with make's program deleted behind dpkg's back, prereqs
// must fail and name it.
func TestFreshMachine(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("this test needs root: it builds a Debian root file system with debootstrap and runs a program in it with systemd-nspawn (run `sudo make e2e`)")
	}
	ctx := t.Context()
	dir := t.TempDir()
	var log bytes.Buffer
	start := time.Now()
	root := filepath.Join(dir, "root")
	if err := testbed.BareDebian(ctx, root, func(s string) { t.Log(s) }, &log); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	t.Logf("a fresh Debian %s root in %s", testbed.Release, time.Since(start).Round(time.Second))

	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "testbedctl")
	build := osexec.CommandContext(ctx, "go", "build", "-o", bin, "./e2e/testbedctl")
	build.Dir = repo
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building testbedctl: %v\n%s", err, out)
	}

	// nspawn runs args in the copy, with testbedctl on its PATH: --register=no --keep-unit
	// because the machine may have no systemd to register with or to ask for a scope; no
	// network option, so the copy shares the machine's network and resolv.conf.
	nspawn := func(args ...string) (string, error) {
		full := append([]string{"--quiet", "--register=no", "--keep-unit", "-D", root, "--bind-ro=" + bin + ":/usr/local/bin/testbedctl", "--"}, args...)
		out, err := osexec.CommandContext(ctx, "systemd-nspawn", full...).CombinedOutput()
		return string(out), err
	}

	start = time.Now()
	out, err := nspawn("testbedctl", "prereqs")
	if err != nil {
		t.Fatalf("testbedctl prereqs on a fresh Debian: %v\n%s", err, out)
	}
	t.Logf("testbedctl prereqs in %s", time.Since(start).Round(time.Second))
	if !strings.Contains(out, "installing Debian packages:") {
		t.Errorf("testbedctl prereqs did not say it installed packages on a bare Debian:\n%s", out)
	}

	// Every command of the table resolves in the copy, as a shell finds it.
	var script strings.Builder
	for _, c := range testbed.MachineCommands {
		if c.Package == "" {
			continue // Go: the operator's, not in the copy
		}
		fmt.Fprintf(&script, "printf '%%s ' %s; command -v %s || echo missing\n", c.Name, c.Name)
	}
	script.WriteString("if make --version >/dev/null; then echo make-runs; fi\n")
	out, err = nspawn("/bin/sh", "-c", script.String())
	if err != nil {
		t.Fatalf("looking for the commands in the copy: %v\n%s", err, out)
	}
	paths := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if name, p, ok := strings.Cut(strings.TrimSpace(line), " "); ok {
			paths[name] = p
		}
	}
	for _, c := range testbed.MachineCommands {
		if c.Package != "" && !strings.HasPrefix(paths[c.Name], "/") {
			t.Errorf("after testbedctl prereqs, %s (from %s) is not found in the copy: %q", c.Name, c.Package, paths[c.Name])
		}
	}
	if !strings.Contains(out, "make-runs") {
		t.Errorf("make --version failed in the copy:\n%s", out)
	}
	if t.Failed() {
		t.FailNow()
	}

	// dpkg still says make is installed, so nothing is installed again: the check after
	// installing must find the program gone and name it with its package.
	if err := os.Remove(filepath.Join(root, paths["make"])); err != nil {
		t.Fatal(err)
	}
	out, err = nspawn("testbedctl", "prereqs")
	if err == nil {
		t.Fatalf("testbedctl prereqs passed with %s deleted:\n%s", paths["make"], out)
	}
	for _, want := range []string{"make is not installed", "Debian's make package"} {
		if !strings.Contains(out, want) {
			t.Errorf("with make deleted, testbedctl prereqs does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "installing Debian packages:") {
		t.Errorf("the second testbedctl prereqs installed packages again:\n%s", out)
	}
}
