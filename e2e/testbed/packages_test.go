package testbed

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kforge/kforge/e2e/images"
)

// commandCall is a program e2e's code runs by a literal name, and where.
type commandCall struct {
	name string // the base name
	pos  token.Position
}

// commandCalls lists the literal command names in a Go file's calls of run(ctx, stdin,
// NAME, ...), lookPath(NAME), hostTool(NAME) (the images package's lookPath),
// exec.Command(NAME, ...), exec.CommandContext(ctx, NAME, ...) and exec.LookPath(NAME).
// A name that is not a string literal is skipped: the table cannot know it.
func commandCalls(fset *token.FileSet, f *ast.File) []commandCall {
	execName := ""
	for _, im := range f.Imports {
		if p, _ := strconv.Unquote(im.Path.Value); p == "os/exec" {
			execName = "exec"
			if im.Name != nil {
				execName = im.Name.Name
			}
		}
	}
	var out []commandCall
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		arg := -1
		switch fn := call.Fun.(type) {
		case *ast.Ident:
			switch fn.Name {
			case "run":
				if len(call.Args) >= 3 {
					arg = 2
				}
			case "lookPath", "hostTool":
				arg = 0
			}
		case *ast.SelectorExpr:
			if x, ok := fn.X.(*ast.Ident); ok && execName != "" && x.Name == execName {
				switch fn.Sel.Name {
				case "Command", "LookPath":
					arg = 0
				case "CommandContext":
					arg = 1
				}
			}
		}
		if arg < 0 || arg >= len(call.Args) {
			return true
		}
		lit, ok := call.Args[arg].(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return true
		}
		s, err := strconv.Unquote(lit.Value)
		if err != nil {
			return true
		}
		out = append(out, commandCall{name: path.Base(s), pos: fset.Position(lit.Pos())})
		return true
	})
	return out
}

func tableNames() map[string]bool {
	names := map[string]bool{}
	for _, c := range slices.Concat(MachineCommands, machineCommandsSystemd) {
		names[c.Name] = true
	}
	return names
}

// TestMachineCommandsListed parses every non-test Go file under e2e/ (the testbed,
// testbedctl, the bundle build, the images, the lab) and requires each command it runs by
// a literal name to be in MachineCommands or machineCommandsSystemd, so that the check
// after installing the machine's packages covers it.
func TestMachineCommandsListed(t *testing.T) {
	root := ".." // e2e/
	fset := token.NewFileSet()
	names := tableNames()
	found := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, c := range commandCalls(fset, f) {
			found++
			if !names[c.name] {
				t.Errorf("%s runs %q, which is not in testbed.MachineCommands (e2e/testbed/packages.go): add it there with the Debian package that ships it", c.pos, c.name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The parser must be finding the calls at all: the testbed alone runs ip, iptables,
	// nsenter and more.
	if found < 10 {
		t.Fatalf("found only %d commands run by name under e2e/: the search is broken", found)
	}
}

// TestCommandCalls checks the search on a file with each kind of call.
func TestCommandCalls(t *testing.T) {
	src := `package p

import osexec "os/exec"

func f() {
	run(ctx, nil, "ip", "link")
	run(ctx, nil, name)
	lookPath("/usr/sbin/sshd")
	hostTool("iptables")
	osexec.Command("/bin/sh", "-c", "true")
	osexec.CommandContext(ctx, "apt-get", "update")
	osexec.LookPath("ssh")
	osexec.Command(bin)
	exec.Command("not-os-exec")
	t.run(ctx, nil, "a-method")
}
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range commandCalls(fset, f) {
		got = append(got, c.name)
	}
	want := []string{"ip", "sshd", "iptables", "sh", "apt-get", "ssh"}
	if !slices.Equal(got, want) {
		t.Errorf("found %q, want %q", got, want)
	}
}

// TestMachineCommandsPackages keeps the table consistent with what is installed: each
// command's package is one that testbedctl prereqs (MachinePackages and Packages) or, for
// the systemd hosts' commands, prepareMachine (machinePackagesSystemd) installs, or the
// check after installing would never see it. The programs the bundle's images copy from
// the machine are in it too.
func TestMachineCommandsPackages(t *testing.T) {
	machine := slices.Concat(MachinePackages, Packages)
	seen := map[string]bool{}
	for _, c := range MachineCommands {
		if seen[c.Name] {
			t.Errorf("%s is in the table twice", c.Name)
		}
		seen[c.Name] = true
		if c.Package == "" {
			if c.Name != "go" {
				t.Errorf("%s has no package: only Go is not installed from Debian", c.Name)
			}
			continue
		}
		if !slices.Contains(machine, c.Package) {
			t.Errorf("%s comes from %s, which is in neither MachinePackages nor Packages", c.Name, c.Package)
		}
	}
	for _, c := range machineCommandsSystemd {
		if seen[c.Name] {
			t.Errorf("%s is in the table twice", c.Name)
		}
		seen[c.Name] = true
		if !slices.Contains(machinePackagesSystemd, c.Package) {
			t.Errorf("%s comes from %s, which is not in machinePackagesSystemd", c.Name, c.Package)
		}
	}
	copied := append([]string{path.Base(images.BusyboxPath), "make", "openssl"}, images.IPTablesTools...)
	for _, name := range copied {
		if !seen[name] {
			t.Errorf("%s is not in MachineCommands", name)
		}
	}
}

// TestCheckCommands runs the check after installing against a directory standing in for
// PATH: a command missing, or there but not executable, is named with its package; a
// command of a package that was not asked for is not checked.
func TestCheckCommands(t *testing.T) {
	dir := t.TempDir()
	pkgs := []string{"iproute2", "util-linux", "containerd"}
	for _, c := range MachineCommands {
		if !slices.Contains(pkgs, c.Package) || c.Name == "ctr" {
			continue
		}
		mode := os.FileMode(0o755)
		if c.Name == "nsenter" {
			mode = 0o644
		}
		if err := os.WriteFile(filepath.Join(dir, c.Name), []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	err := checkCommands(pkgs, dir)
	if err == nil {
		t.Fatal("no error with ctr missing and nsenter not executable")
	}
	msg := err.Error()
	for _, want := range []string{"ctr is not installed", "containerd package", "nsenter is not installed", "util-linux package"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error does not say %q:\n%s", want, msg)
		}
	}
	for _, not := range []string{"ip is not", "make", "iptables"} {
		if strings.Contains(msg, not) {
			t.Errorf("the error says %q:\n%s", not, msg)
		}
	}

	if err := os.Chmod(filepath.Join(dir, "nsenter"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ctr"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkCommands(pkgs, dir); err != nil {
		t.Errorf("every command is there: %v", err)
	}
}
