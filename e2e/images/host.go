package images

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// HostBinaryWithLibs returns the files that run a program of this machine inside an
// image: the program at its own path, and for a dynamically linked one every shared
// library ldd resolves (at the path ldd reports), the dynamic loader and, when it links
// libxtables, the iptables extensions with their own libraries. A static program gives
// itself only. Symlinks are followed: the image gets regular files.
//
// The libraries go where the host keeps them, e.g. /lib/x86_64-linux-gnu, which the
// loader searches by default, so the image needs no ld.so.cache.
func HostBinaryWithLibs(p string) ([]File, error) {
	p = filepath.Clean(p)
	if !filepath.IsAbs(p) {
		return nil, fmt.Errorf("%s: not an absolute path", p)
	}
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return nil, fmt.Errorf("%s is not an executable file", p)
	}
	files := []File{{Src: p, Dst: p}}
	interp, err := elfInterpreter(p)
	if err != nil {
		return nil, err
	}
	if interp == "" {
		return files, nil // static
	}

	libs, err := ldd(p)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{p: true}
	addLibs := func(ls []string) {
		for _, l := range ls {
			if !seen[l] {
				seen[l] = true
				files = append(files, File{Src: l, Dst: l})
			}
		}
	}
	addLibs(append([]string{interp}, libs...))

	if i := slices.IndexFunc(libs, func(l string) bool { return strings.HasPrefix(path.Base(l), "libxtables.so") }); i >= 0 {
		ext, err := xtablesExtensions(libs[i])
		if err != nil {
			return nil, err
		}
		var srcs []string
		for _, f := range ext {
			srcs = append(srcs, f.Src)
			seen[f.Dst] = true
		}
		files = append(files, ext...)
		extLibs, err := ldd(srcs...)
		if err != nil {
			return nil, err
		}
		addLibs(extLibs)
	}
	slices.SortFunc(files[1:], func(a, b File) int { return strings.Compare(a.Dst, b.Dst) })
	return files, nil
}

// elfInterpreter returns the dynamic loader an ELF program names, or "" for a static one.
func elfInterpreter(p string) (string, error) {
	f, err := elf.Open(p)
	if err != nil {
		return "", fmt.Errorf("%s: not an ELF program: %w", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, prog.Filesz)
		if _, err := prog.ReadAt(b, 0); err != nil {
			return "", fmt.Errorf("%s: reading its interpreter: %w", p, err)
		}
		return string(bytes.TrimRight(b, "\x00")), nil
	}
	return "", nil
}

// IsStatic reports whether p is an ELF program that needs no dynamic loader.
func IsStatic(p string) (bool, error) {
	interp, err := elfInterpreter(p)
	return err == nil && interp == "", err
}

// ldd returns the shared libraries (the loader included) that the objects load, each
// once, sorted, as the absolute paths ldd resolves them to.
func ldd(objects ...string) ([]string, error) {
	out, err := exec.Command("ldd", objects...).Output()
	if err != nil {
		msg := ""
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			msg = strings.TrimSpace(string(ee.Stderr))
		}
		return nil, fmt.Errorf("ldd %s: %w %s", strings.Join(objects, " "), err, msg)
	}
	return parseLdd(out)
}

// parseLdd reads ldd's output, for one object or several (with "object:" headers).
func parseLdd(out []byte) ([]string, error) {
	var libs []string
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "\t") {
			continue // "object:" header
		}
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "statically linked") {
			continue
		}
		var lib string
		if name, res, ok := strings.Cut(line, " => "); ok {
			if strings.HasPrefix(res, "not found") {
				errs = append(errs, fmt.Errorf("ldd: %s is not found", name))
				continue
			}
			lib, _, _ = strings.Cut(res, " (")
		} else {
			lib, _, _ = strings.Cut(line, " (") // the loader, or the vDSO
		}
		if path.IsAbs(lib) && !slices.Contains(libs, lib) {
			libs = append(libs, lib)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.Sort(libs)
	return libs, nil
}

// xtablesDirRE finds the extension directory compiled into libxtables.
var xtablesDirRE = regexp.MustCompile(`/[A-Za-z0-9_.+/-]*/xtables\x00`)

// xtablesExtensions returns the iptables extensions (libxt_*.so and the like) that
// libxtables loads at run time, at the directory compiled into it.
func xtablesExtensions(libxtables string) ([]File, error) {
	b, err := os.ReadFile(libxtables)
	if err != nil {
		return nil, err
	}
	var dir string
	for _, m := range xtablesDirRE.FindAll(b, -1) {
		d := string(bytes.TrimSuffix(m, []byte{0}))
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			dir = d
			break
		}
	}
	if dir == "" {
		return nil, fmt.Errorf("%s names no iptables extension directory that exists here", libxtables)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []File
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".so") {
			p := path.Join(dir, e.Name())
			files = append(files, File{Src: p, Dst: p})
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s holds no iptables extensions", dir)
	}
	return files, nil
}

// IPTablesTools are the iptables commands kube-proxy and flanneld run, as the addons
// package lists them.
var IPTablesTools = []string{
	"iptables", "iptables-save", "iptables-restore",
	"ip6tables", "ip6tables-save", "ip6tables-restore",
}

// IPTables returns what gives an image this machine's iptables, with the same backend
// (nft or legacy) as the host's own iptables command: the xtables multi-call program in
// /usr/sbin with its libraries and extensions, /etc/protocols, and every tool name (plain,
// and suffixed with the backend: iptables-nft...) as a symlink to the program in /usr/sbin
// and in /sbin. It returns the backend too.
func IPTables() (files []File, symlinks map[string]string, backend string, err error) {
	r := hostIPTables()
	return slices.Clone(r.files), maps.Clone(r.symlinks), r.backend, r.err
}

type iptablesResult struct {
	files    []File
	symlinks map[string]string
	backend  string
	err      error
}

// hostIPTables runs ldd over the program and its extensions, which takes seconds, once.
var hostIPTables = sync.OnceValue(func() iptablesResult {
	var r iptablesResult
	r.files, r.symlinks, r.backend, r.err = findIPTables()
	return r
})

func findIPTables() (files []File, symlinks map[string]string, backend string, err error) {
	tool, err := hostTool("iptables")
	if err != nil {
		return nil, nil, "", err
	}
	real, err := filepath.EvalSymlinks(tool)
	if err != nil {
		return nil, nil, "", err
	}
	multi := filepath.Base(real)
	switch multi {
	case "xtables-nft-multi":
		backend = "nft"
	case "xtables-legacy-multi":
		backend = "legacy"
	default:
		return nil, nil, "", fmt.Errorf("%s resolves to %s, not an xtables-nft-multi or xtables-legacy-multi program", tool, real)
	}
	files, err = HostBinaryWithLibs(real)
	if err != nil {
		return nil, nil, "", err
	}
	files[0].Dst = "/usr/sbin/" + multi
	if _, err := os.Stat("/etc/protocols"); err == nil {
		// iptables names protocols through it; it knows tcp, udp and a few others without.
		files = append(files, File{Src: "/etc/protocols", Dst: "/etc/protocols", Mode: 0o644})
	}
	symlinks = map[string]string{}
	for _, t := range IPTablesTools {
		suffixed := strings.Replace(t, "tables", "tables-"+backend, 1) // iptables-nft-save
		for _, name := range []string{t, suffixed} {
			symlinks["/usr/sbin/"+name] = multi
			symlinks["/sbin/"+name] = "/usr/sbin/" + multi
		}
	}
	return files, symlinks, backend, nil
}

// hostTool finds a system program of this machine in the sbin and bin directories.
func hostTool(name string) (string, error) {
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed on this machine (looked in /usr/sbin, /sbin, /usr/bin and /bin)", name)
}
