package overlay

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
)

// Actions of a FileChange.
const (
	Create = "create"
	Update = "update"
	// Mode is a change of the file's permissions alone.
	Mode = "mode"
)

// FileChange is a file a dry run would create or change on the host.
type FileChange struct {
	Path    string `json:"path"`
	Action  string `json:"action"`
	OldMode string `json:"oldMode,omitempty"`
	NewMode string `json:"newMode"`
	// OldSHA256 and NewSHA256 are the contents' hashes (hex); OldSHA256 is empty for a
	// new file.
	OldSHA256 string `json:"oldSHA256,omitempty"`
	NewSHA256 string `json:"newSHA256"`
	// Diff is a unified diff of the contents, old to new; empty for binary files, files
	// larger than MaxDiffSize, and secrets.
	Diff string `json:"diff,omitempty"`
	// Secret is true when the contents hold a key or a credential: the diff is left out.
	Secret bool `json:"secret,omitempty"`
}

// DiffLines are the lines of the change's diff to show under it: those of an update's
// diff; none for a new file (its content is the whole file), a mode change or a secret.
func (c FileChange) DiffLines() []string {
	if c.Action != Update {
		return nil
	}
	var out []string
	for _, line := range strings.Split(c.Diff, "\n") {
		if line != "" {
			out = append(out, line)
		}
	}
	return out
}

// MaxDiffSize is the largest file a FileChange shows a diff of.
const MaxDiffSize = 256 << 10

// Changes lists what the run wrote that differs from the host, in path order: new files,
// files whose content or mode changed, and changed symlinks (as updates with no diff).
func (o *Overlay) Changes() ([]FileChange, error) {
	var out []FileChange
	err := filepath.WalkDir(o.Scratch, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, err := filepath.Rel(o.Scratch, path)
		if err != nil {
			return err
		}
		host := "/" + filepath.ToSlash(rel)
		c, changed, err := compare(path, filepath.Join(o.Base, host))
		if err != nil {
			return fmt.Errorf("comparing %s with the host's: %w", host, err)
		}
		if changed {
			c.Path = host
			out = append(out, c)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, o.Err()
}

// compare describes how the file at dst (what the run wrote) differs from src (the
// host's), and whether it does.
func compare(dst, src string) (FileChange, bool, error) {
	newData, newMode, err := read(dst)
	if err != nil {
		return FileChange{}, false, err
	}
	c := FileChange{NewMode: modeString(newMode), NewSHA256: sum(newData)}
	oldData, oldMode, err := read(src)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		c.Action = Create
		c.Secret = secret(newData)
		c.Diff = diff("", "", nil, newData, c.Secret)
		return c, true, nil
	case err != nil:
		return c, false, err
	}
	c.OldMode, c.OldSHA256 = modeString(oldMode), sum(oldData)
	switch {
	case !bytes.Equal(oldData, newData):
		c.Action = Update
	case oldMode != newMode:
		c.Action = Mode
		return c, true, nil
	default:
		return c, false, nil
	}
	c.Secret = secret(oldData) || secret(newData)
	c.Diff = diff("host", "planned", oldData, newData, c.Secret)
	return c, true, nil
}

// read returns a file's content and mode; for a symlink, its target and ModeSymlink.
func read(p string) ([]byte, fs.FileMode, error) {
	st, err := os.Lstat(p)
	if err != nil {
		return nil, 0, err
	}
	if st.Mode()&fs.ModeSymlink != 0 {
		t, err := os.Readlink(p)
		return []byte(t), fs.ModeSymlink | 0o777, err
	}
	if !st.Mode().IsRegular() {
		return nil, st.Mode(), nil
	}
	b, err := os.ReadFile(p)
	return b, st.Mode().Perm(), err
}

func modeString(m fs.FileMode) string {
	if m&fs.ModeSymlink != 0 {
		return "symlink"
	}
	return fmt.Sprintf("%04o", m.Perm())
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// secretMarkers are what marks content as a key or a credential: PEM private keys,
// kubeconfig credentials, bootstrap tokens, and encryption keys.
var secretMarkers = []string{"PRIVATE KEY", "client-key-data", "token:", "secret:", "password"}

func secret(b []byte) bool {
	for _, m := range secretMarkers {
		if bytes.Contains(b, []byte(m)) {
			return true
		}
	}
	return false
}

// diff is a unified diff of old to new (of certificates, of what they say: describeCerts),
// or "" when it would not be readable or safe to show: a secret, a binary file, a file
// larger than MaxDiffSize.
func diff(from, to string, old, new []byte, secret bool) string {
	if secret || len(old) > MaxDiffSize || len(new) > MaxDiffSize || bytes.IndexByte(old, 0) >= 0 || bytes.IndexByte(new, 0) >= 0 {
		return ""
	}
	if from == "" {
		from, to = "/dev/null", "planned"
	}
	// Certificates differ in base64 that tells a reader nothing: diff what they say.
	newText, newCert := describeCerts(new)
	if oldText, oldCert := describeCerts(old); newCert && (oldCert || len(old) == 0) {
		old, new = oldText, newText
	}
	s, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: lines(old), B: lines(new), FromFile: from, ToFile: to, Context: 3,
	})
	if err != nil {
		return ""
	}
	return s
}

func lines(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	return difflib.SplitLines(strings.TrimSuffix(string(b), "\n"))
}
