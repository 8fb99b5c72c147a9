// Package images writes the container images of kforge's test bundle without Docker or a
// registry: each image is one linux/amd64 layer holding files copied from this machine,
// written as a docker-archive tarball that `ctr -n k8s.io images import` (and kforge's
// bundle install) loads. The output depends only on the spec and the files' content:
// every timestamp is fixed, owners are root and entries are sorted.
//
// Plan lists the images a kforge cluster runs, under the references its manifests use.
package images

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// DefaultPath is the PATH an image gets when its spec sets none. It covers every
// directory the iptables tools are installed in.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Platform of every image.
const (
	OS           = "linux"
	Architecture = "amd64"
)

// epoch is the time of every layer entry, of the config and of the history.
var epoch = time.Unix(0, 0).UTC()

// File is a file copied into an image.
type File struct {
	// Src is the file on this machine. Symlinks are followed: the image gets the content.
	Src string
	// Dst is the absolute path in the image.
	Dst string
	// Mode holds the permission bits in the image; 0 keeps Src's.
	Mode fs.FileMode
}

// Spec describes one image.
type Spec struct {
	// Ref is the reference the archive holds: "registry.k8s.io/pause:3.10.1". It must name
	// a registry and a tag.
	Ref string
	// Files are copied into the layer. Parent directories are created with mode 0755.
	Files []File
	// Symlinks maps an absolute path in the image to the link's target.
	Symlinks map[string]string
	// Entrypoint and Cmd are the image's ENTRYPOINT and CMD.
	Entrypoint, Cmd []string
	// Env holds "KEY=value" entries. PATH is DefaultPath unless Env sets it.
	Env []string
}

// entry is one layer entry.
type entry struct {
	typ    byte // tar.TypeDir, tar.TypeReg or tar.TypeSymlink
	src    string
	mode   int64
	size   int64
	target string
	// implicit directories are created for their children; a listed entry may replace
	// nothing else.
	implicit bool
}

// Write writes spec's image as a docker-archive tarball at outTar, replacing it atomically.
func Write(spec Spec, outTar string) error {
	if err := write(spec, outTar); err != nil {
		return fmt.Errorf("writing image %s to %s: %w", spec.Ref, outTar, err)
	}
	return nil
}

func write(spec Spec, outTar string) error {
	tag, err := name.NewTag(spec.Ref, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("the reference must name a registry, a repository and a tag: %w", err)
	}
	entries, err := layout(spec)
	if err != nil {
		return err
	}
	dir := filepath.Dir(outTar)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}

	// The layer goes through a compressed temporary file, compressed only once: the
	// archive holds it as is and the diff ID is hashed from its decompressed stream.
	layerFile, err := os.CreateTemp(dir, ".layer-*.tar.gz")
	if err != nil {
		return err
	}
	defer os.Remove(layerFile.Name())
	defer layerFile.Close()
	if err := writeLayer(layerFile, entries); err != nil {
		return err
	}
	if err := layerFile.Close(); err != nil {
		return err
	}
	layer, err := tarball.LayerFromFile(layerFile.Name())
	if err != nil {
		return err
	}

	env := slices.Clone(spec.Env)
	if !slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "PATH=") }) {
		env = append([]string{"PATH=" + DefaultPath}, env...)
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: Architecture,
		OS:           OS,
		Created:      v1.Time{Time: epoch},
		Config: v1.Config{
			Entrypoint: slices.Clone(spec.Entrypoint),
			Cmd:        slices.Clone(spec.Cmd),
			Env:        env,
			WorkingDir: "/",
		},
	})
	if err != nil {
		return err
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: epoch},
			CreatedBy: "kforge e2e/images",
		},
	})
	if err != nil {
		return err
	}

	tmp, err := os.CreateTemp(dir, ".image-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := tarball.Write(tag, img, tmp); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), outTar)
}

// layout checks the spec's paths and returns every layer entry by its path in the image
// (absolute), parents included.
func layout(spec Spec) (map[string]*entry, error) {
	entries := map[string]*entry{}
	var errs []error
	// add records e at p after its parent directories.
	add := func(p string, e *entry) {
		if p != path.Clean(p) || !path.IsAbs(p) || p == "/" {
			errs = append(errs, fmt.Errorf("%q is not a clean absolute path below /", p))
			return
		}
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			switch old, ok := entries[d]; {
			case !ok:
				entries[d] = &entry{typ: tar.TypeDir, mode: 0o755, implicit: true}
			case old.typ != tar.TypeDir:
				errs = append(errs, fmt.Errorf("%s needs %s to be a directory, but the spec puts a file there", p, d))
				return
			}
		}
		if old, ok := entries[p]; ok {
			if old.typ == tar.TypeDir {
				errs = append(errs, fmt.Errorf("%s is a directory of other paths in the spec", p))
			} else {
				errs = append(errs, fmt.Errorf("%s is listed twice", p))
			}
			return
		}
		entries[p] = e
	}
	for _, f := range spec.Files {
		st, err := os.Stat(f.Src)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !st.Mode().IsRegular() {
			errs = append(errs, fmt.Errorf("%s (for %s) is not a regular file", f.Src, f.Dst))
			continue
		}
		mode := f.Mode.Perm()
		if mode == 0 {
			mode = st.Mode().Perm()
		}
		add(f.Dst, &entry{typ: tar.TypeReg, src: f.Src, mode: int64(mode), size: st.Size()})
	}
	for p, target := range spec.Symlinks {
		if target == "" {
			errs = append(errs, fmt.Errorf("symlink %s has no target", p))
			continue
		}
		add(p, &entry{typ: tar.TypeSymlink, mode: 0o777, target: target})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return entries, nil
}

// writeLayer writes the entries as a gzip-compressed tar, sorted by path so that every
// directory comes before what it holds.
func writeLayer(w io.Writer, entries map[string]*entry) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	paths := make([]string, 0, len(entries))
	for p := range entries {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		e := entries[p]
		hdr := &tar.Header{
			Typeflag: e.typ,
			Name:     strings.TrimPrefix(p, "/"),
			Mode:     e.mode,
			ModTime:  epoch,
			Format:   tar.FormatPAX,
		}
		switch e.typ {
		case tar.TypeDir:
			hdr.Name += "/"
		case tar.TypeSymlink:
			hdr.Linkname = e.target
		case tar.TypeReg:
			hdr.Size = e.size
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if e.typ == tar.TypeReg {
			if err := copyFile(tw, e.src, e.size); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// copyFile copies src, which must still be size bytes long: a file that changed since it
// was listed fails the write instead of making a broken layer.
func copyFile(w io.Writer, src string, size int64) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, size))
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if n != size {
		return fmt.Errorf("copying %s: it shrank from %d to %d bytes while the image was written", src, size, n)
	}
	if m, _ := f.Read(make([]byte, 1)); m > 0 {
		return fmt.Errorf("copying %s: it grew beyond %d bytes while the image was written", src, size)
	}
	return nil
}
