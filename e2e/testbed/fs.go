package testbed

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// PrivatePath is a path that each host has its own copy of: the host's PID 1 bind-mounts
// <state>/hosts/<name>/fs<Path> over it. Everything else is the machine's, shared.
type PrivatePath struct {
	Path string
	// File is true for a single file; false for a directory.
	File bool
	// Mode of the directory or file in a new host.
	Mode fs.FileMode
	// Seed is a directory of the machine whose files a new host starts with: the
	// machine's own /etc/default, say, so that the host has Debian's files yet can change
	// them alone.
	Seed string
}

// PrivatePaths are the paths each host has its own copy of: what kforge, the kubelet,
// containerd and the CNI plugins write, the host's identity, and what a test looks at.
var PrivatePaths = []PrivatePath{
	{Path: "/etc/kubernetes", Mode: 0o755},
	{Path: "/etc/containerd", Mode: 0o755},
	{Path: "/etc/cni/net.d", Mode: 0o755},
	{Path: "/etc/ssh", Mode: 0o755},
	{Path: "/etc/default", Mode: 0o755, Seed: "/etc/default"},               // /etc/default/kubelet
	{Path: "/etc/sysctl.d", Mode: 0o755, Seed: "/etc/sysctl.d"},             // kernel settings kforge persists
	{Path: "/etc/modules-load.d", Mode: 0o755, Seed: "/etc/modules-load.d"}, // modules kforge persists
	{Path: "/var/lib/kubelet", Mode: 0o755},
	{Path: "/var/lib/containerd", Mode: 0o711},
	{Path: "/var/lib/etcd", Mode: 0o700},
	{Path: "/var/lib/cni", Mode: 0o755},
	{Path: "/var/log", Mode: 0o755}, // /var/log/pods, /var/log/containers, /var/log/kforge
	{Path: "/opt/cni/bin", Mode: 0o755},
	{Path: "/opt/containerd", Mode: 0o711}, // containerd's "opt" plugin
	{Path: "/usr/local/bin", Mode: 0o755},
	{Path: "/etc/kforge", Mode: 0o755},             // kforge up's cluster.toml
	{Path: "/var/lib/kforge", Mode: 0o755},         // kforge up's copy of the bundle
	{Path: "/usr/libexec/kubernetes", Mode: 0o755}, // the kubelet's volume plugin dir
	// root's home as a fresh image has it (not the machine's, whose dotfiles and
	// secrets are none of a host's business); authorized_keys in /root/.ssh.
	{Path: "/root", Mode: 0o700, Seed: "/etc/skel"},
	{Path: "/tmp", Mode: fs.ModeSticky | 0o777},
	{Path: "/etc/hosts", File: true, Mode: 0o644},
	{Path: "/etc/hostname", File: true, Mode: 0o644},
	{Path: "/etc/resolv.conf", File: true, Mode: 0o644},
	{Path: "/etc/machine-id", File: true, Mode: 0o444},
}

// ensureMountpoints creates the private paths that the machine lacks, so that a host can
// mount over them, and records each thing it creates in st (before creating it, so that
// a crash leaves nothing unrecorded); save persists st.
func ensureMountpoints(st *state, save func() error) error {
	for _, p := range PrivatePaths {
		// Missing parents, top down.
		var missing []string
		for d := filepath.Dir(p.Path); d != "/"; d = filepath.Dir(d) {
			if _, err := os.Lstat(d); errors.Is(err, fs.ErrNotExist) {
				missing = append([]string{d}, missing...)
			}
		}
		_, err := os.Stat(p.Path)
		if err == nil && len(missing) == 0 {
			continue
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("checking %s: %w", p.Path, err)
		}
		todo := missing
		if err != nil {
			todo = append(todo, p.Path)
		}
		for _, d := range todo {
			if !slices.Contains(st.CreatedPaths, d) {
				st.CreatedPaths = append(st.CreatedPaths, d)
			}
		}
		if err := save(); err != nil {
			return err
		}
		for _, d := range todo {
			if d == p.Path && p.File {
				f, err := os.OpenFile(d, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
				if err != nil {
					return fmt.Errorf("creating the mount point %s: %w", d, err)
				}
				f.Close()
				continue
			}
			if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("creating the mount point %s: %w", d, err)
			}
		}
	}
	return nil
}

// removeMountpoints removes what ensureMountpoints created, children first, if it is
// still empty: anything written there came from elsewhere and stays.
func removeMountpoints(st *state) error {
	var errs []error
	for i := len(st.CreatedPaths) - 1; i >= 0; i-- {
		p := st.CreatedPaths[i]
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !fi.IsDir() && fi.Size() > 0 {
			errs = append(errs, fmt.Errorf("leaving %s in place: the testbed created it empty, but it has content now", p))
			continue
		}
		if err := os.Remove(p); err != nil {
			errs = append(errs, fmt.Errorf("removing the mount point %s the testbed created: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// hostFS is where a host's private paths live in the machine: <state>/hosts/<name>/fs,
// laid out as they appear in the host (fs/etc/kubernetes, fs/etc/hosts, ...).
func (t *Testbed) hostFS(name string) string { return filepath.Join(t.hostDir(name), "fs") }

// createHostFS makes a new host's private paths and identity files. It leaves existing
// content alone: a host re-created over its old state keeps it, as a rebooted VM would.
func (t *Testbed) createHostFS(name string) error {
	root := t.hostFS(name)
	for _, p := range PrivatePaths {
		dst := filepath.Join(root, p.Path)
		if _, err := os.Lstat(dst); err == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", filepath.Dir(dst), err)
		}
		if p.File {
			if err := os.WriteFile(dst, nil, p.Mode); err != nil {
				return fmt.Errorf("creating %s: %w", dst, err)
			}
		} else if err := os.Mkdir(dst, p.Mode); err != nil {
			return fmt.Errorf("creating %s: %w", dst, err)
		} else if p.Seed != "" {
			if err := copyDirShallow(p.Seed, dst); err != nil {
				return err
			}
		}
		if err := os.Chmod(dst, p.Mode); err != nil { // Mkdir's mode is masked by umask
			return fmt.Errorf("creating %s: %w", dst, err)
		}
	}
	files := map[string]string{
		"/etc/hostname":    name + "\n",
		"/etc/resolv.conf": "# Written by the kforge testbed: nothing in a host reaches a real resolver.\nnameserver 127.0.0.1\n",
	}
	if b, _ := os.ReadFile(filepath.Join(root, "/etc/machine-id")); len(b) == 0 {
		id := make([]byte, 16)
		if _, err := io.ReadFull(rand.Reader, id); err != nil {
			return err
		}
		files["/etc/machine-id"] = hex.EncodeToString(id) + "\n"
	}
	for p, content := range files {
		if err := writeInPlace(filepath.Join(root, p), []byte(content)); err != nil {
			return err
		}
	}
	return nil
}

// copyDirShallow copies the regular files and symlinks directly in src to dst.
func copyDirShallow(src, dst string) error {
	entries, err := os.ReadDir(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", src, err)
	}
	for _, e := range entries {
		s, d := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		switch {
		case e.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(s)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, d); err != nil {
				return fmt.Errorf("copying %s: %w", s, err)
			}
		case e.Type().IsRegular():
			fi, err := e.Info()
			if err != nil {
				return err
			}
			b, err := os.ReadFile(s)
			if err != nil {
				return fmt.Errorf("copying %s: %w", s, err)
			}
			if err := os.WriteFile(d, b, fi.Mode().Perm()); err != nil {
				return fmt.Errorf("copying %s: %w", s, err)
			}
		}
	}
	return nil
}

// writeInPlace rewrites a file without replacing its inode, so that a bind mount of it
// in a running host sees the new content.
func writeInPlace(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Truncate(int64(len(data))); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

// etcHosts renders every host's /etc/hosts: localhost and each testbed host by name.
func etcHosts(hosts []Host) []byte {
	var b strings.Builder
	b.WriteString("# Written by the kforge testbed: every host of the testbed, by name.\n")
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	for _, h := range hosts {
		fmt.Fprintf(&b, "%s\t%s\n", h.Address, h.Name)
	}
	return []byte(b.String())
}

// mountsUnder lists the machine's mount points at or under dir.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

// addrPrefix is a host's address with the subnet's length, as eth0 carries it.
func addrPrefix(a netip.Addr, subnet netip.Prefix) netip.Prefix {
	return netip.PrefixFrom(a, subnet.Bits())
}
