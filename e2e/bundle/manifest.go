package bundle

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	kbundle "github.com/kforge/kforge/bundle"
)

// ManifestFile is the name of the builder's record of a bundle: cache key, builder
// version, platform and every file. The bundle's own manifest, which kforge reads, is
// ProductManifestFile.
const ManifestFile = "build.json"

// ProductManifestFile is the manifest in kforge's bundle format (package bundle at the
// repository root).
const ProductManifestFile = "manifest.json"

// Manifest is the inventory of a bundle: what it was built from and every file in it.
type Manifest struct {
	// Builder is BuilderVersion of the code that built the bundle.
	Builder int `json:"builder"`
	// Key is the cache key, the last part of the bundle directory's name.
	Key string `json:"key"`
	// Platform is GOOS/GOARCH of the binaries.
	Platform string   `json:"platform"`
	Versions Versions `json:"versions"`
	// Files are every file of the bundle but the manifest, sorted by path.
	Files []FileEntry `json:"files"`
}

// FileEntry is one file of a bundle.
type FileEntry struct {
	// Path is slash-separated and relative to the bundle directory: "bin/kubelet".
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// scanFiles hashes every regular file under dir except the manifest.
func scanFiles(dir string) ([]FileEntry, error) {
	var files []FileEntry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir() || rel == ManifestFile || rel == ProductManifestFile:
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%s is not a regular file", p)
		}
		sum, size, err := kbundle.HashFile(p)
		if err != nil {
			return err
		}
		files = append(files, FileEntry{Path: rel, Size: size, SHA256: sum})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("hashing the files of %s: %w", dir, err)
	}
	slices.SortFunc(files, func(a, b FileEntry) int { return strings.Compare(a.Path, b.Path) })
	return files, nil
}

// writeManifest writes m to dir/build.json and syncs it.
func writeManifest(dir string, m *Manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the bundle manifest: %w", err)
	}
	data = append(data, '\n')
	p := filepath.Join(dir, ManifestFile)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}

// readManifest reads dir/build.json.
func readManifest(dir string) (*Manifest, error) {
	p := filepath.Join(dir, ManifestFile)
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", p, err)
	}
	return &m, nil
}

// checkPresent reports the first file of m that is missing from dir or has another size.
// It does not hash: it is the fast check of a warm cache. Verify hashes.
func (m *Manifest) checkPresent(dir string) error {
	for _, f := range m.Files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if st.Size() != f.Size {
			return fmt.Errorf("%s has %d bytes, the manifest says %d", p, st.Size(), f.Size)
		}
	}
	return nil
}
