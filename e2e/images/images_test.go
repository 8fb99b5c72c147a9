package images

import (
	"archive/tar"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// layerEntry is what the test reads back from a layer.
type layerEntry struct {
	Type     byte
	Mode     int64
	Linkname string
	Content  string
}

// readImage loads an archive written by Write the way an importer does: through the
// tarball manifest, by reference. It returns the config and the layer's entries by name.
func readImage(t *testing.T, archive, ref string) (*v1.ConfigFile, map[string]layerEntry, []string) {
	t.Helper()
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(archive) })
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || !slices.Equal(m[0].RepoTags, []string{ref}) {
		t.Fatalf("archive manifest = %+v, want one image tagged %s", m, ref)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(archive, &tag)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 || len(cfg.RootFS.DiffIDs) != 1 {
		t.Fatalf("%d layers, %d diff IDs; want one each", len(layers), len(cfg.RootFS.DiffIDs))
	}
	diffID, err := layers[0].DiffID()
	if err != nil {
		t.Fatal(err)
	}
	if diffID != cfg.RootFS.DiffIDs[0] {
		t.Errorf("layer diff ID %s, config says %s", diffID, cfg.RootFS.DiffIDs[0])
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	entries := map[string]layerEntry{}
	var order []string
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !hdr.ModTime.Equal(time.Unix(0, 0)) || hdr.Uid != 0 || hdr.Gid != 0 {
			t.Errorf("%s: mtime %v, owner %d:%d; want the epoch and root", hdr.Name, hdr.ModTime, hdr.Uid, hdr.Gid)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		entries[hdr.Name] = layerEntry{Type: hdr.Typeflag, Mode: hdr.Mode, Linkname: hdr.Linkname, Content: string(b)}
		order = append(order, hdr.Name)
	}
	return cfg, entries, order
}

func writeFile(t *testing.T, p, content string, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWriteReadBack(t *testing.T) {
	dir := t.TempDir()
	prog := writeFile(t, filepath.Join(dir, "prog"), "#!/bin/sh\necho hi\n", 0o755)
	data := writeFile(t, filepath.Join(dir, "data"), "some data", 0o600)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(data, link); err != nil {
		t.Fatal(err)
	}
	const ref = "registry.example/team/app:v1.2.3"
	spec := Spec{
		Ref: ref,
		Files: []File{
			{Src: prog, Dst: "/usr/local/bin/prog"},
			{Src: link, Dst: "/etc/app/data.conf", Mode: 0o644}, // followed, mode overridden
			{Src: data, Dst: "/data"},
		},
		Symlinks:   map[string]string{"/bin/prog": "/usr/local/bin/prog", "/usr/local/bin/p": "prog"},
		Entrypoint: []string{"/usr/local/bin/prog"},
		Cmd:        []string{"--flag"},
		Env:        []string{"FOO=bar"},
	}
	out := filepath.Join(dir, "out", "app.tar")
	if err := Write(spec, out); err != nil {
		t.Fatal(err)
	}

	cfg, entries, order := readImage(t, out, ref)
	if cfg.OS != "linux" || cfg.Architecture != "amd64" {
		t.Errorf("platform %s/%s, want linux/amd64", cfg.OS, cfg.Architecture)
	}
	if !slices.Equal(cfg.Config.Entrypoint, spec.Entrypoint) || !slices.Equal(cfg.Config.Cmd, spec.Cmd) {
		t.Errorf("entrypoint %q cmd %q", cfg.Config.Entrypoint, cfg.Config.Cmd)
	}
	if want := []string{"PATH=" + DefaultPath, "FOO=bar"}; !slices.Equal(cfg.Config.Env, want) {
		t.Errorf("env %q, want %q", cfg.Config.Env, want)
	}
	if !cfg.Created.Equal(time.Unix(0, 0)) {
		t.Errorf("created %v, want the epoch", cfg.Created)
	}

	want := map[string]layerEntry{
		"bin/":               {Type: tar.TypeDir, Mode: 0o755},
		"bin/prog":           {Type: tar.TypeSymlink, Mode: 0o777, Linkname: "/usr/local/bin/prog"},
		"data":               {Type: tar.TypeReg, Mode: 0o600, Content: "some data"},
		"etc/":               {Type: tar.TypeDir, Mode: 0o755},
		"etc/app/":           {Type: tar.TypeDir, Mode: 0o755},
		"etc/app/data.conf":  {Type: tar.TypeReg, Mode: 0o644, Content: "some data"},
		"usr/":               {Type: tar.TypeDir, Mode: 0o755},
		"usr/local/":         {Type: tar.TypeDir, Mode: 0o755},
		"usr/local/bin/":     {Type: tar.TypeDir, Mode: 0o755},
		"usr/local/bin/p":    {Type: tar.TypeSymlink, Mode: 0o777, Linkname: "prog"},
		"usr/local/bin/prog": {Type: tar.TypeReg, Mode: 0o755, Content: "#!/bin/sh\necho hi\n"},
	}
	if diff := cmp.Diff(want, entries); diff != "" {
		t.Errorf("layer entries (-want +got):\n%s", diff)
	}
	if !slices.IsSorted(order) {
		t.Errorf("layer entries are not sorted: %q", order)
	}
}

func TestWriteIsDeterministic(t *testing.T) {
	dir := t.TempDir()
	prog := writeFile(t, filepath.Join(dir, "prog"), "program", 0o755)
	spec := Spec{
		Ref:      "kforge.test/xx:1",
		Files:    []File{{Src: prog, Dst: "/x"}, {Src: prog, Dst: "/a/b/y"}},
		Symlinks: map[string]string{"/z": "x", "/a/c": "b/y", "/a/d": "/x"},
	}
	sum := func(out string) [32]byte {
		if err := Write(spec, out); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return sha256.Sum256(b)
	}
	first := sum(filepath.Join(dir, "1.tar"))
	if err := os.Chtimes(prog, time.Now(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if second := sum(filepath.Join(dir, "2.tar")); first != second {
		t.Error("two writes of one spec differ")
	}
	// Rewriting in place replaces the archive.
	if third := sum(filepath.Join(dir, "1.tar")); first != third {
		t.Error("rewriting the archive changed it")
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(left) != 0 {
		t.Errorf("temporary files left behind: %q", left)
	}
}

func TestWriteRejectsBadSpecs(t *testing.T) {
	dir := t.TempDir()
	f := writeFile(t, filepath.Join(dir, "f"), "x", 0o644)
	for _, tc := range []struct {
		name string
		spec Spec
		want string
	}{
		{"no tag", Spec{Ref: "registry.example/app"}, "reference"},
		{"no registry", Spec{Ref: "app:1"}, "reference"},
		{"relative", Spec{Ref: "r.example/app:1", Files: []File{{Src: f, Dst: "x"}}}, "clean absolute path"},
		{"unclean", Spec{Ref: "r.example/app:1", Files: []File{{Src: f, Dst: "/a/../x"}}}, "clean absolute path"},
		{"twice", Spec{Ref: "r.example/app:1", Files: []File{{Src: f, Dst: "/x"}}, Symlinks: map[string]string{"/x": "y"}}, "listed twice"},
		{"file as dir", Spec{Ref: "r.example/app:1", Files: []File{{Src: f, Dst: "/x"}, {Src: f, Dst: "/x/y"}}}, "to be a directory"},
		{"dir as file", Spec{Ref: "r.example/app:1", Files: []File{{Src: f, Dst: "/x/y"}, {Src: f, Dst: "/x"}}}, "is a directory"},
		{"missing source", Spec{Ref: "r.example/app:1", Files: []File{{Src: filepath.Join(dir, "none"), Dst: "/x"}}}, "no such file"},
		{"directory source", Spec{Ref: "r.example/app:1", Files: []File{{Src: dir, Dst: "/x"}}}, "not a regular file"},
		{"empty link", Spec{Ref: "r.example/app:1", Symlinks: map[string]string{"/x": ""}}, "no target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, "out.tar")
			err := Write(tc.spec, out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Write = %v, want an error with %q", err, tc.want)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a failed write left %s", out)
			}
		})
	}
}

func TestParseLdd(t *testing.T) {
	out := `/usr/sbin/prog:
	linux-vdso.so.1 (0x00007ffd5a1e6000)
	libxtables.so.12 => /lib/x86_64-linux-gnu/libxtables.so.12 (0x00007f0d965c3000)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0d963a6000)
	/lib64/ld-linux-x86-64.so.2 (0x00007f0d9668b000)
/usr/lib/x86_64-linux-gnu/xtables/libxt_NAT.so:
	libxtables.so.12 => /lib/x86_64-linux-gnu/libxtables.so.12 (0x00007f0d965c3000)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0d963a6000)
	/lib64/ld-linux-x86-64.so.2 (0x00007f0d9668b000)
/bin/static:
	statically linked
`
	got, err := parseLdd([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libxtables.so.12", "/lib64/ld-linux-x86-64.so.2"}
	if !slices.Equal(got, want) {
		t.Errorf("parseLdd = %q, want %q", got, want)
	}
	if _, err := parseLdd([]byte("\tlibmissing.so.1 => not found\n")); err == nil || !strings.Contains(err.Error(), "libmissing.so.1") {
		t.Errorf("a missing library gave %v", err)
	}
}

// needIPTables skips the test unless this machine has what IPTables copies.
func needIPTables(t *testing.T) {
	t.Helper()
	if _, err := hostTool("iptables"); err != nil {
		t.Skipf("this machine has no iptables: %v", err)
	}
	if _, err := hostTool("ldd"); err != nil {
		t.Skip("this machine has no ldd")
	}
}

func TestHostBinaryWithLibs(t *testing.T) {
	needIPTables(t)
	multi, err := filepath.EvalSymlinks("/usr/sbin/iptables")
	if err != nil {
		t.Fatal(err)
	}
	files, err := HostBinaryWithLibs(multi)
	if err != nil {
		t.Fatal(err)
	}
	if files[0].Src != multi || files[0].Dst != multi {
		t.Errorf("first file %+v, want the program itself", files[0])
	}
	interp, err := elfInterpreter(multi)
	if err != nil || interp == "" {
		t.Fatalf("%s has no interpreter (%v)", multi, err)
	}
	var dsts []string
	for _, f := range files {
		dsts = append(dsts, f.Dst)
		if st, err := os.Stat(f.Src); err != nil || !st.Mode().IsRegular() {
			t.Errorf("%s: not a regular file (%v)", f.Src, err)
		}
	}
	for _, want := range []string{interp, "libc.so.6", "libxtables.so.12", "xtables/libxt_conntrack.so", "xtables/libxt_MASQUERADE.so", "xtables/libxt_comment.so", "xtables/libxt_statistic.so"} {
		if !slices.ContainsFunc(dsts, func(d string) bool { return strings.HasSuffix(d, "/"+want) || d == want }) {
			t.Errorf("no %s among %q", want, dsts)
		}
	}
	if len(slices.Compact(slices.Sorted(slices.Values(dsts)))) != len(dsts) {
		t.Errorf("a destination is listed twice: %q", dsts)
	}

	// A static program is itself only.
	if static, err := IsStatic(BusyboxPath); err == nil && static {
		files, err := HostBinaryWithLibs(BusyboxPath)
		if err != nil || len(files) != 1 {
			t.Errorf("HostBinaryWithLibs(%s) = %v, %v; want the program only", BusyboxPath, files, err)
		}
	}
	if _, err := HostBinaryWithLibs("relative/prog"); err == nil {
		t.Error("a relative path was accepted")
	}
}

func TestIPTables(t *testing.T) {
	needIPTables(t)
	files, links, backend, err := IPTables()
	if err != nil {
		t.Fatal(err)
	}
	multi := "xtables-" + backend + "-multi"
	if files[0].Dst != "/usr/sbin/"+multi {
		t.Errorf("program at %s, want /usr/sbin/%s", files[0].Dst, multi)
	}
	for _, tool := range IPTablesTools {
		if links["/usr/sbin/"+tool] != multi || links["/sbin/"+tool] != "/usr/sbin/"+multi {
			t.Errorf("%s: links %q, %q", tool, links["/usr/sbin/"+tool], links["/sbin/"+tool])
		}
	}
	if links["/usr/sbin/iptables-"+backend+"-restore"] != multi {
		t.Errorf("no iptables-%s-restore link", backend)
	}
}

// TestIPTablesRunsInImage unpacks an image with the iptables tools and runs them inside
// it, chrooted, in a network namespace of their own: the rules they write and read back
// are the test's only.
func TestIPTablesRunsInImage(t *testing.T) {
	needIPTables(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root for chroot and a network namespace")
	}
	if _, err := hostTool("unshare"); err != nil {
		t.Skip("needs unshare")
	}
	files, links, _, err := IPTables()
	if err != nil {
		t.Fatal(err)
	}
	const ref = "kforge.test/iptables:1"
	dir := t.TempDir()
	out := filepath.Join(dir, "img.tar")
	if err := Write(Spec{Ref: ref, Files: files, Symlinks: links}, out); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	unpack(t, out, ref, root)

	// The host's shell runs the script in a network namespace of its own; every command
	// is the image's, chrooted.
	script := `set -e
ipt() { chroot "$ROOT" "$@"; }
ipt iptables -w -t nat -N KFORGE-TEST
ipt iptables -w -t nat -A KFORGE-TEST -p tcp -m comment --comment kforge -m tcp --dport 80 -j DNAT --to-destination 10.0.0.1:8080
ipt /sbin/iptables -w -t nat -A POSTROUTING -s 10.244.0.0/16 -m conntrack --ctstate NEW -j MASQUERADE --random-fully
ipt ip6tables -w -t filter -A FORWARD -m statistic --mode random --probability 0.5 -j ACCEPT
ipt iptables-save
ipt ip6tables-save
ipt iptables --version
`
	cmd := osexec.Command("unshare", "--net", "sh", "-c", script)
	cmd.Env = []string{"ROOT=" + root, "PATH=" + DefaultPath}
	outb, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("running iptables in the image: %v\n%s", err, outb)
	}
	got := string(outb)
	for _, want := range []string{
		"-A KFORGE-TEST -p tcp -m comment --comment kforge -m tcp --dport 80 -j DNAT --to-destination 10.0.0.1:8080",
		"-A POSTROUTING -s 10.244.0.0/16 -m conntrack --ctstate NEW -j MASQUERADE --random-fully",
		"-m statistic --mode random --probability 0.50000000000 -j ACCEPT",
		"iptables v",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

// unpack extracts the image's layer under root.
func unpack(t *testing.T, archive, ref, root string) {
	t.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(archive, &tag)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, filepath.FromSlash(hdr.Name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, os.FileMode(hdr.Mode))
		case tar.TypeSymlink:
			err = os.Symlink(hdr.Linkname, p)
		case tar.TypeReg:
			var b []byte
			if b, err = io.ReadAll(tr); err == nil {
				err = os.WriteFile(p, b, os.FileMode(hdr.Mode))
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
