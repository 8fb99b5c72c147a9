package fleet

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kforge/kforge/bundle"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/host"
)

// Prepare installs kforge and cluster.toml on the named hosts that are still planned, runs
// the preflight checks for each host's planned action there, then uploads the parts of the
// bundle each needs. A host that fails is marked failed; the others go on.
func (f *Fleet) Prepare(ctx context.Context, names []string) {
	f.ForEach(ctx, names, f.prepareHost)
}

func (f *Fleet) prepareHost(ctx context.Context, h *config.Host) error {
	return f.timed(h.Name, func() error {
		start := time.Now()
		sent, err := f.ensureKforge(ctx, h.Name)
		if err != nil {
			return err
		}
		f.mu.Lock()
		action := f.reports[h.Name].Action
		f.mu.Unlock()
		role := config.RoleWorker
		switch {
		case action == ActionInit:
			role = "init"
		case h.IsControlPlane():
			role = config.RoleControlPlane
		}
		args := []string{"preflight", "-f", RemoteConfig, "--node", h.Name, "--role", role}
		if f.bundle != nil {
			if provides := f.bundle.BinaryNames(); len(provides) > 0 {
				args = append(args, "--bundle-provides", strings.Join(provides, ","))
			}
		}
		if len(f.o.IgnorePreflight) > 0 {
			args = append(args, "--ignore-preflight-errors", strings.Join(f.o.IgnorePreflight, ","))
		}
		if err := f.kforge(ctx, h.Name, args, nil); err != nil {
			return fmt.Errorf("preflight: %w", err)
		}
		f.out().Phase(h.Name, "preflight passed")
		n, err := f.uploadBundle(ctx, h)
		sent += n
		f.mu.Lock()
		f.reports[h.Name].Uploaded += sent
		f.mu.Unlock()
		if err != nil {
			return err
		}
		d := time.Since(start)
		f.out().Phase(h.Name, "kforge, cluster.toml and the bundle are in place: %s sent in %s (%s/s)",
			mib(sent), d.Round(10*time.Millisecond), mib(int64(float64(sent)/max(d.Seconds(), 0.001))))
		return nil
	})
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// controlPlaneImages are the images only control-plane hosts need.
var controlPlaneImages = []string{"/kube-apiserver:", "/kube-controller-manager:", "/kube-scheduler:", "/etcd:"}

// BundleFiles are the parts of bundle b that host h needs: the binaries it installs and
// the images it runs; the control-plane images only on control-plane hosts.
func BundleFiles(b *bundle.Bundle, h *config.Host) []bundle.File {
	var out []bundle.File
	for _, f := range b.Manifest.Files {
		switch f.Kind {
		case bundle.KindBinary:
			out = append(out, f)
		case bundle.KindImage:
			cp := slices.ContainsFunc(f.Images, func(ref string) bool {
				return slices.ContainsFunc(controlPlaneImages, func(s string) bool { return strings.Contains(ref, s) })
			})
			if !cp || h.IsControlPlane() {
				out = append(out, f)
			}
		}
	}
	return out
}

// uploadBundle sends the parts of the bundle h needs, then their manifest, and reports
// progress for large files.
func (f *Fleet) uploadBundle(ctx context.Context, h *config.Host) (int64, error) {
	if f.bundle == nil {
		return 0, nil
	}
	conn := f.conn(h.Name)
	files := BundleFiles(f.bundle, h)
	var total, sent, skipped int64
	for _, bf := range files {
		total += bf.Size
	}
	lastSaid := time.Now()
	start := time.Now()
	for _, bf := range files {
		base := sent
		res, err := conn.Upload(ctx, host.File{
			LocalPath: path.Join(f.bundle.Dir, bf.Path),
			Dst:       path.Join(RemoteBundleDir, bf.Path),
			Mode:      0o644,
			SHA256:    bf.SHA256,
			Progress: func(n, _ int64) {
				if time.Since(lastSaid) < 2*time.Second {
					return
				}
				lastSaid = time.Now()
				done := base + n
				f.out().Phase(h.Name, "uploading the bundle: %s of %s (%s/s)", mib(done), mib(total),
					mib(int64(float64(done)/max(time.Since(start).Seconds(), 0.001))))
			},
		})
		if err != nil {
			return sent, err
		}
		if res.Skipped {
			skipped++
		}
		sent += res.Bytes
	}
	m := bundle.Manifest{Format: f.bundle.Manifest.Format, Versions: f.bundle.Manifest.Versions, Files: files}
	data, err := m.JSON()
	if err != nil {
		return sent, err
	}
	res, err := conn.Upload(ctx, host.BytesFile(path.Join(RemoteBundleDir, bundle.ManifestName), data, 0o644))
	if err != nil {
		return sent, err
	}
	sent += res.Bytes
	f.o.Log.Debug("bundle uploaded", "host", h.Name, "files", len(files), "unchanged", skipped, "bytes", sent)
	return sent, nil
}

// hashKforge hashes the kforge binary the hosts get, once per run (f.kforgeSum).
func (f *Fleet) hashKforge() error {
	f.kforgeSumOnce.Do(func() {
		f.kforgeSum, _, f.kforgeSumErr = bundle.HashFile(f.o.Kforge)
	})
	if f.kforgeSumErr != nil {
		return fmt.Errorf("reading the kforge binary to install: %w", f.kforgeSumErr)
	}
	return nil
}

// ensureKforge installs kforge and cluster.toml on a host and returns the bytes it sent;
// unchanged files are not sent.
func (f *Fleet) ensureKforge(ctx context.Context, name string) (int64, error) {
	if err := f.hashKforge(); err != nil {
		return 0, err
	}
	var sent int64
	for _, file := range []host.File{
		{LocalPath: f.o.Kforge, Dst: RemoteKforge, Mode: 0o755, SHA256: f.kforgeSum},
		host.BytesFile(RemoteConfig, f.remote, 0o600),
	} {
		res, err := f.conn(name).Upload(ctx, file)
		if err != nil {
			return sent, err
		}
		sent += res.Bytes
	}
	return sent, nil
}

// hostFlags are the flags every init and join on a host gets.
func (f *Fleet) hostFlags() []string {
	var flags []string
	if f.o.Timeout > 0 {
		flags = append(flags, "--timeout", f.o.Timeout.String())
	}
	if len(f.o.IgnorePreflight) > 0 {
		flags = append(flags, "--ignore-preflight-errors", strings.Join(f.o.IgnorePreflight, ","))
	}
	return flags
}

// kforge runs the installed kforge on a host with args, passing secrets as environment
// variables through stdin (never on a command line), and keeps its redacted output.
func (f *Fleet) kforge(ctx context.Context, name string, args []string, secrets map[string]string) error {
	return f.kforgeAt(ctx, name, RemoteKforge, args, secrets, nil)
}

// kforgeAt is kforge with the binary at bin; a non-nil stdout gets the command's standard
// output instead of the host's log (its standard error still goes there).
func (f *Fleet) kforgeAt(ctx context.Context, name, bin string, args []string, secrets map[string]string, stdout io.Writer) error {
	var script, stdin strings.Builder
	script.WriteString("set -e\n")
	keys := make([]string, 0, len(secrets))
	for k := range secrets {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&script, "IFS= read -r %s\nexport %s\n", k, k)
		stdin.WriteString(secrets[k] + "\n")
	}
	script.WriteString("exec " + host.ShellQuote(append([]string{bin}, args...)...) + "\n")
	lw := &lineWriter{f: f, host: name}
	out := io.Writer(lw)
	if stdout != nil {
		out = stdout
	}
	_, err := f.conn(name).Run(ctx, host.Cmd{
		Script:  script.String(),
		Stdin:   strings.NewReader(stdin.String()),
		Stdout:  out,
		Stderr:  lw,
		Display: "kforge " + strings.Join(args, " "),
	})
	lw.flush()
	if err != nil {
		if tail := lw.tail(12); tail != "" {
			return fmt.Errorf("kforge %s: %w\n%s", args[0], err, tail)
		}
		return fmt.Errorf("kforge %s: %w", args[0], err)
	}
	return nil
}

// lineWriter keeps a host's output, redacted, and copies it to HostLog.
type lineWriter struct {
	f     *Fleet
	host  string
	mu    sync.Mutex
	buf   []byte
	lines []string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) line(s string) {
	s = w.f.redact(s)
	w.lines = append(w.lines, s)
	if len(w.lines) > 200 {
		w.lines = w.lines[len(w.lines)-200:]
	}
	if w.f.o.HostLog != nil {
		fmt.Fprintf(w.f.o.HostLog, "%s: %s\n", w.host, s)
	}
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = nil
	}
}

func (w *lineWriter) tail(n int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.lines
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return "    " + strings.Join(l, "\n    ")
}
