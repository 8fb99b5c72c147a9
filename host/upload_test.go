package host_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kforge/kforge/host"
)

// The in-process SSH server runs commands on this machine, so uploads can be
// checked on the local file system.

func TestUpload(t *testing.T) {
	owner := fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())
	tests := []struct {
		name     string
		content  string
		mode     fs.FileMode
		owner    string
		wantMode fs.FileMode
	}{
		{name: "mode 0640", content: "hello\n", mode: 0o640, wantMode: 0o640},
		{name: "default mode", content: "x", wantMode: 0o644},
		{name: "executable with owner", content: "#!/bin/sh\n", mode: 0o755, owner: owner, wantMode: 0o755},
		{name: "setuid", content: "suid", mode: 0o755 | fs.ModeSetuid, wantMode: 0o755 | fs.ModeSetuid},
		{name: "empty file", content: "", mode: 0o600, wantMode: 0o600},
	}
	h, _ := newSSHHost(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "new", "dir", "file name")
			f := host.BytesFile(dst, []byte(tc.content), tc.mode)
			f.Owner = tc.owner
			res, err := h.Upload(testContext(t), f)
			if err != nil {
				t.Fatalf("Upload: %v", err)
			}
			if res.Skipped || res.Bytes != int64(len(tc.content)) {
				t.Errorf("result = %+v, want not skipped and %d bytes", res, len(tc.content))
			}
			if got := readFile(t, dst); got != tc.content {
				t.Errorf("content = %q, want %q", got, tc.content)
			}
			fi, err := os.Stat(dst)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky); got != tc.wantMode {
				t.Errorf("mode = %v, want %v", got, tc.wantMode)
			}
			assertNoTempFiles(t, filepath.Dir(dst))
		})
	}
}

func TestUploadSkipsUnchanged(t *testing.T) {
	h, srv := newSSHHost(t)
	dst := filepath.Join(t.TempDir(), "file")
	content := []byte("unchanged content\n")
	if _, err := h.Upload(testContext(t), host.BytesFile(dst, content, 0o600)); err != nil {
		t.Fatalf("first Upload: %v", err)
	}
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(dst, old, old); err != nil {
		t.Fatal(err)
	}
	execsBefore := srv.ExecCount()

	var progress []int64
	f := host.BytesFile(dst, content, 0o600)
	f.Owner = fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())
	f.Progress = func(sent, total int64) { progress = append(progress, sent) }
	res, err := h.Upload(testContext(t), f)
	if err != nil {
		t.Fatalf("second Upload: %v", err)
	}
	if !res.Skipped || res.Bytes != 0 {
		t.Errorf("result = %+v, want skipped with 0 bytes", res)
	}
	if len(progress) != 0 {
		t.Errorf("Progress called %d times for a skipped upload", len(progress))
	}
	fi, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().Equal(old) {
		t.Errorf("mtime changed to %v: the file was rewritten", fi.ModTime())
	}
	if n := srv.ExecCount() - execsBefore; n != 1 {
		t.Errorf("skipped upload ran %d commands, want 1 (the checksum)", n)
	}
}

func TestUploadReplacesDifferent(t *testing.T) {
	tests := []struct {
		name    string
		content string
		mode    fs.FileMode
	}{
		{"different content", "new content\n", 0o600},
		{"different mode", "old content\n", 0o644},
	}
	h, _ := newSSHHost(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "file")
			writeFile(t, dst, "old content\n", 0o600)
			res, err := h.Upload(testContext(t), host.BytesFile(dst, []byte(tc.content), tc.mode))
			if err != nil {
				t.Fatalf("Upload: %v", err)
			}
			if res.Skipped {
				t.Error("upload was skipped, want the file replaced")
			}
			fi, err := os.Stat(dst)
			if err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, dst); got != tc.content || fi.Mode().Perm() != tc.mode {
				t.Errorf("file = %q mode %v, want %q mode %v", got, fi.Mode().Perm(), tc.content, tc.mode)
			}
		})
	}
}

func TestUploadProgressAndLocalPath(t *testing.T) {
	const size = 3<<20 + 17
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	src := filepath.Join(t.TempDir(), "src.bin")
	writeFile(t, src, string(data), 0o644)
	h, _ := newSSHHost(t)
	dst := filepath.Join(t.TempDir(), "dst.bin")
	var mu sync.Mutex
	var calls [][2]int64
	res, err := h.Upload(testContext(t), host.File{
		LocalPath: src,
		Dst:       dst,
		Mode:      0o644,
		Progress: func(sent, total int64) {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, [2]int64{sent, total})
		},
	})
	if err != nil {
		t.Fatalf("Upload: %v", err)
	}
	if res.Bytes != size {
		t.Errorf("Bytes = %d, want %d", res.Bytes, size)
	}
	if !bytes.Equal([]byte(readFile(t, dst)), data) {
		t.Error("uploaded content differs from the source")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) == 0 || calls[len(calls)-1] != [2]int64{size, size} {
		t.Fatalf("Progress calls = %v, want the last to be [%d %d]", calls, size, size)
	}
	for i, c := range calls {
		if c[1] != size || c[0] > size || (i > 0 && c[0] < calls[i-1][0]) {
			t.Errorf("Progress call %d = %v: want total %d and sent non-decreasing", i, c, size)
		}
	}
}

// unstableReaderAt serves other bytes on the second pass, like a source file
// rewritten during the upload.
type unstableReaderAt struct {
	mu     sync.Mutex
	first  []byte
	second []byte
	reads  int
}

func (u *unstableReaderAt) ReadAt(p []byte, off int64) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	data := u.first
	if off == 0 {
		u.reads++
	}
	if u.reads > 1 {
		data = u.second
	}
	if off >= int64(len(data)) {
		return 0, io.EOF
	}
	n := copy(p, data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func TestUploadFailureLeavesDestination(t *testing.T) {
	h, _ := newSSHHost(t)
	t.Run("data changed during transfer", func(t *testing.T) {
		dir := t.TempDir()
		dst := filepath.Join(dir, "file")
		writeFile(t, dst, "old\n", 0o644)
		src := &unstableReaderAt{first: []byte("version one\n"), second: []byte("version two\n")}
		_, err := h.Upload(testContext(t), host.File{Src: src, Size: 12, Dst: dst, Mode: 0o644})
		if err == nil {
			t.Fatal("Upload succeeded although the data changed after its checksum")
		}
		if !strings.Contains(err.Error(), "sha256") {
			t.Errorf("error %q does not explain the checksum mismatch", err)
		}
		if got := readFile(t, dst); got != "old\n" {
			t.Errorf("destination = %q, want it untouched", got)
		}
		assertNoTempFiles(t, dir)
	})
	t.Run("parent is a file", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "notadir"), "", 0o644)
		_, err := h.Upload(testContext(t), host.BytesFile(filepath.Join(dir, "notadir", "file"), []byte("x"), 0o644))
		if err == nil {
			t.Fatal("Upload under a regular file succeeded")
		}
		var exitErr *host.ExitError
		if !errors.As(err, &exitErr) {
			t.Errorf("error = %v, want an *ExitError from the host", err)
		}
	})
	t.Run("destination is a directory", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := h.Upload(testContext(t), host.BytesFile(dir, []byte("x"), 0o644)); err == nil {
			t.Fatal("Upload over a directory succeeded")
		}
	})
}

func TestUploadInvalid(t *testing.T) {
	tests := []struct {
		name string
		file host.File
	}{
		{"relative destination", host.BytesFile("etc/x", nil, 0o644)},
		{"no destination", host.BytesFile("", nil, 0o644)},
		{"no source", host.File{Dst: "/tmp/x"}},
		{"two sources", host.File{Dst: "/tmp/x", LocalPath: "/etc/hostname", Src: strings.NewReader("")}},
		{"missing local file", host.File{Dst: "/tmp/x", LocalPath: "/nonexistent/kforge/file"}},
	}
	h, srv := newSSHHost(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := h.Upload(testContext(t), tc.file); err == nil {
				t.Error("Upload succeeded, want an error")
			}
		})
	}
	if srv.ExecCount() != 0 {
		t.Errorf("server ran %d commands for invalid uploads, want 0", srv.ExecCount())
	}
}

func TestSha256(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	writeFile(t, file, "some content", 0o640)
	sum := sha256.Sum256([]byte("some content"))
	h, _ := newSSHHost(t)
	got, mode, exists, err := host.Sha256(testContext(t), h, file)
	if err != nil {
		t.Fatalf("Sha256: %v", err)
	}
	if !exists || got != hex.EncodeToString(sum[:]) || mode != 0o640 {
		t.Errorf("Sha256 = %s, %v, %v; want %x, 0640, true", got, mode, exists, sum)
	}
	if _, _, exists, err := host.Sha256(testContext(t), h, filepath.Join(dir, "absent")); err != nil || exists {
		t.Errorf("Sha256 of a missing file: exists %v, err %v; want false, nil", exists, err)
	}
	if _, _, _, err := host.Sha256(testContext(t), h, dir); err == nil {
		t.Error("Sha256 of a directory succeeded, want an error")
	}
}

// assertNoTempFiles fails if an upload left a temporary file in dir.
func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".kforge-") {
			t.Errorf("temporary file %s left in %s", e.Name(), dir)
		}
	}
}

// TestUploadKnownChecksum: a checksum given in advance is trusted for the comparison, and
// the host checks the received bytes against it before the destination is replaced.
func TestUploadKnownChecksum(t *testing.T) {
	h, _ := newSSHHost(t)
	dst := filepath.Join(t.TempDir(), "file")
	content := []byte("bundle part\n")
	sum := sha256.Sum256(content)
	f := host.BytesFile(dst, content, 0o644)
	f.SHA256 = hex.EncodeToString(sum[:])
	if _, err := h.Upload(testContext(t), f); err != nil {
		t.Fatalf("Upload with the right checksum: %v", err)
	}
	if got, _ := os.ReadFile(dst); string(got) != string(content) {
		t.Fatalf("content = %q", got)
	}
	bad := host.BytesFile(dst, []byte("other content\n"), 0o644)
	bad.SHA256 = strings.Repeat("0", 64)
	if _, err := h.Upload(testContext(t), bad); err == nil {
		t.Fatal("Upload with a wrong checksum succeeded")
	}
	if got, _ := os.ReadFile(dst); string(got) != string(content) {
		t.Errorf("a failed upload replaced the destination: %q", got)
	}
}
