// Package bundle reads and installs air-gap bundles: a directory with bin/ (kubelet,
// kubectl, kforge, CNI plugins, ...), images/ (image archives) and manifest.json, which
// lists the versions and the sha256 of every file. kforge installs the binaries onto a host
// and imports the images into containerd, so a cluster needs no registry at all.
package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kforge/kforge/internal/fileutil"
)

// FormatVersion is the manifest format this build reads and writes.
const FormatVersion = 1

// ManifestName is the manifest's file name inside a bundle.
const ManifestName = "manifest.json"

// File kinds.
const (
	// KindBinary is an executable kforge installs on every host (kubelet, kubectl, CNI
	// plugins, kforge itself).
	KindBinary = "binary"
	// KindImage is an image archive kforge imports into containerd.
	KindImage = "image"
	// KindFile travels with the bundle and is verified, but not installed: the
	// control-plane binaries its images were made from, for example.
	KindFile = "file"
)

// Manifest is manifest.json.
type Manifest struct {
	Format int `json:"format"`
	// Versions names the release of each component: kubernetes, etcd, coredns, flannel...
	Versions map[string]string `json:"versions"`
	Files    []File            `json:"files"`
}

// File is one file of a bundle.
type File struct {
	// Path is relative to the bundle directory, with forward slashes.
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Kind   string `json:"kind"`
	// Install is the absolute path a binary is installed to.
	Install string `json:"install,omitempty"`
	// Images are the references an image archive holds.
	Images []string `json:"images,omitempty"`
}

// Bundle is a loaded bundle.
type Bundle struct {
	Dir      string
	Manifest Manifest
}

// Load reads and checks dir/manifest.json. It does not hash the files: Verify does.
func Load(dir string) (*Bundle, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return nil, fmt.Errorf("reading the bundle manifest: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("bundle %s: %s is not a valid manifest: %w", dir, ManifestName, err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	return &Bundle{Dir: dir, Manifest: m}, nil
}

// Validate checks the manifest's shape: format, kinds, safe relative paths, absolute
// install paths, hex digests.
func (m *Manifest) Validate() error {
	var errs []error
	if m.Format != FormatVersion {
		errs = append(errs, fmt.Errorf("format %d is not supported; this kforge reads format %d", m.Format, FormatVersion))
	}
	seen := map[string]bool{}
	for i, f := range m.Files {
		where := fmt.Sprintf("files[%d] (%s)", i, f.Path)
		clean := path.Clean(f.Path)
		if f.Path == "" || clean != f.Path || path.IsAbs(f.Path) || strings.HasPrefix(clean, "../") || clean == ".." {
			errs = append(errs, fmt.Errorf("%s: path must be relative and inside the bundle", where))
		}
		if seen[f.Path] {
			errs = append(errs, fmt.Errorf("%s: listed twice", where))
		}
		seen[f.Path] = true
		if b, err := hex.DecodeString(f.SHA256); err != nil || len(b) != sha256.Size {
			errs = append(errs, fmt.Errorf("%s: sha256 must be 64 hex digits", where))
		}
		switch f.Kind {
		case KindBinary:
			if !filepath.IsAbs(f.Install) {
				errs = append(errs, fmt.Errorf("%s: a binary needs an absolute install path", where))
			}
		case KindImage:
			if len(f.Images) == 0 {
				errs = append(errs, fmt.Errorf("%s: an image archive needs at least one image reference", where))
			}
		case KindFile:
		default:
			errs = append(errs, fmt.Errorf("%s: kind %q is not %q, %q or %q", where, f.Kind, KindBinary, KindImage, KindFile))
		}
	}
	return errors.Join(errs...)
}

// HashFile returns the hex sha256 and size of a file.
func HashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hashing %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Verify hashes every file and reports every one that is missing or differs.
func (b *Bundle) Verify() error {
	var errs []error
	for _, f := range b.Manifest.Files {
		sum, size, err := HashFile(filepath.Join(b.Dir, filepath.FromSlash(f.Path)))
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", f.Path, err))
		case sum != f.SHA256 || size != f.Size:
			errs = append(errs, fmt.Errorf("%s: checksum mismatch (sha256 %s, %d bytes; the manifest says %s, %d bytes): the bundle is damaged, copy it again", f.Path, sum, size, f.SHA256, f.Size))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("bundle %s failed verification: %w", b.Dir, errors.Join(errs...))
	}
	return nil
}

// Files returns the bundle's files of one kind.
func (b *Bundle) Files(kind string) []File {
	var out []File
	for _, f := range b.Manifest.Files {
		if f.Kind == kind {
			out = append(out, f)
		}
	}
	return out
}

// BinaryNames are the base names of the binaries the bundle installs ("kubelet").
func (b *Bundle) BinaryNames() []string {
	var out []string
	for _, f := range b.Files(KindBinary) {
		out = append(out, path.Base(f.Install))
	}
	return out
}

// InstallResult says what InstallBinary did.
type InstallResult struct {
	File      File
	Installed bool // false: the same file was already there
}

// InstallBinaries copies every binary to root+Install with mode 0755, atomically, and
// leaves binaries that already have the right content alone. The bundle must have been
// verified.
func (b *Bundle) InstallBinaries(root string) ([]InstallResult, error) {
	var out []InstallResult
	for _, f := range b.Files(KindBinary) {
		dst := filepath.Join(root, f.Install)
		if sum, _, err := HashFile(dst); err == nil && sum == f.SHA256 {
			if st, err := os.Stat(dst); err == nil && st.Mode().Perm() == 0o755 {
				out = append(out, InstallResult{File: f})
				continue
			}
		}
		data, err := os.ReadFile(filepath.Join(b.Dir, filepath.FromSlash(f.Path)))
		if err != nil {
			return out, fmt.Errorf("reading %s from the bundle: %w", f.Path, err)
		}
		if _, err := fileutil.WriteAtomic(dst, data, 0o755, 0o755); err != nil {
			return out, fmt.Errorf("installing %s: %w", f.Install, err)
		}
		out = append(out, InstallResult{File: f, Installed: true})
	}
	return out, nil
}

// Ctr runs containerd's ctr client; tests swap it.
type Ctr func(ctx context.Context, args ...string) ([]byte, error)

// CtrCommand runs the ctr binary against the containerd socket at address.
func CtrCommand(address string) Ctr {
	return func(ctx context.Context, args ...string) ([]byte, error) {
		full := append([]string{"--address", address, "--namespace", "k8s.io"}, args...)
		out, err := exec.CommandContext(ctx, "ctr", full...).CombinedOutput()
		if err != nil {
			if errors.Is(err, exec.ErrNotFound) {
				return out, fmt.Errorf("ctr (containerd's client) is not installed; it comes with containerd: %w", err)
			}
			return out, fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
		return out, nil
	}
}

// ImportResult says what ImportImages did with one archive.
type ImportResult struct {
	File     File
	Imported bool // false: every image it holds was already present
}

// ImportImages imports every image archive whose images containerd does not have yet into
// its k8s.io namespace, where the kubelet finds them.
func (b *Bundle) ImportImages(ctx context.Context, ctr Ctr) ([]ImportResult, error) {
	out, err := ctr(ctx, "images", "ls", "-q")
	if err != nil {
		return nil, fmt.Errorf("listing containerd's images: %w", err)
	}
	present := strings.Fields(string(out))
	var res []ImportResult
	for _, f := range b.Files(KindImage) {
		missing := slices.ContainsFunc(f.Images, func(ref string) bool { return !slices.Contains(present, ref) })
		if !missing {
			res = append(res, ImportResult{File: f})
			continue
		}
		p := filepath.Join(b.Dir, filepath.FromSlash(f.Path))
		if _, err := ctr(ctx, "images", "import", p); err != nil {
			return res, fmt.Errorf("importing %s (%s): %w", f.Path, strings.Join(f.Images, ", "), err)
		}
		res = append(res, ImportResult{File: f, Imported: true})
	}
	return res, nil
}

// Write hashes every file under dir that the entries name and writes manifest.json. The
// entries' Size and SHA256 are filled in. Builders use it.
func Write(dir string, versions map[string]string, files []File) (*Manifest, error) {
	m := &Manifest{Format: FormatVersion, Versions: versions}
	for _, f := range files {
		sum, size, err := HashFile(filepath.Join(dir, filepath.FromSlash(f.Path)))
		if err != nil {
			return nil, fmt.Errorf("hashing %s: %w", f.Path, err)
		}
		f.SHA256, f.Size = sum, size
		m.Files = append(m.Files, f)
	}
	slices.SortFunc(m.Files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := m.JSON()
	if err != nil {
		return nil, err
	}
	if _, err := fileutil.WriteAtomic(filepath.Join(dir, ManifestName), b, 0o644, 0o755); err != nil {
		return nil, err
	}
	return m, nil
}

// JSON is the manifest as manifest.json holds it.
func (m *Manifest) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding the bundle manifest: %w", err)
	}
	return append(b, '\n'), nil
}
