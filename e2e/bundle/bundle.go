// Package bundle builds the binaries that kforge's integration and e2e tiers run: the
// Kubernetes release pinned by e2e/kbuild and the etcd release pinned by e2e/etcdbuild,
// built from the Go module proxy. A bundle is built once per version and cached:
//
//	<cache>/bundle/<kubernetes>-etcd<etcd>-<key>/
//	    bin/kube-apiserver ... bin/etcdctl
//	    manifest.json
//
// where <cache> is Options.CacheDir, $KFORGE_CACHE_DIR or <os.UserCacheDir>/kforge, and
// <key> hashes everything that determines the content (see Key). A bundle directory
// appears complete or not at all: it is built in a temporary directory beside it and
// renamed into place.
//
// A bundle is a list of build steps. Today they build binaries; images and CNI plugins are
// further steps.
package bundle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	kbundle "github.com/kforge/kforge/bundle"
)

// BuilderVersion is part of the cache key. Raise it whenever this package changes what
// goes into a bundle (build flags, steps, layout), so that old caches are not reused.
const BuilderVersion = 2

// CacheDirEnv names the environment variable that overrides the kforge cache directory.
const CacheDirEnv = "KFORGE_CACHE_DIR"

// Versions are the releases a bundle holds, as module versions ("v1.34.4", "v3.6.4").
type Versions struct {
	Kubernetes string `json:"kubernetes"`
	Etcd       string `json:"etcd"`
}

// Options configures Build. The zero value builds the bundle of the repository that holds
// the working directory into the default cache.
type Options struct {
	// RepoRoot is the kforge repository; empty means found from the working directory.
	RepoRoot string
	// CacheDir is the kforge cache directory; bundles go in its "bundle" subdirectory.
	// Empty means $KFORGE_CACHE_DIR, or <os.UserCacheDir()>/kforge.
	CacheDir string
	// Log receives progress lines; nil discards them.
	Log io.Writer
	// GoCmd is the go command; empty means "go" from PATH.
	GoCmd string

	// steps replaces the default steps; for tests.
	steps []Step
	// coreOnly builds only Kubernetes and etcd; for tests of the build machinery.
	coreOnly bool
}

// Bundle is a complete bundle directory.
type Bundle struct {
	// Dir is the bundle directory.
	Dir string
	// BinDir holds the executables, Dir/bin.
	BinDir   string
	Versions Versions
	// Manifest is the bundle's manifest.json.
	Manifest *Manifest
}

// Path returns the path of the executable name ("kube-apiserver", "etcd") in the bundle.
func (b *Bundle) Path(name string) string {
	return filepath.Join(b.BinDir, name)
}

// Verify re-hashes every file of the bundle against its manifest.
func (b *Bundle) Verify() error {
	files, err := scanFiles(b.Dir)
	if err != nil {
		return err
	}
	want := map[string]FileEntry{}
	for _, f := range b.Manifest.Files {
		want[f.Path] = f
	}
	var errs []error
	for _, f := range files {
		w, ok := want[f.Path]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s is not in the manifest", f.Path))
		case w != f:
			errs = append(errs, fmt.Errorf("%s has sha256 %s, the manifest says %s", f.Path, f.SHA256, w.SHA256))
		}
		delete(want, f.Path)
	}
	for p := range want {
		errs = append(errs, fmt.Errorf("%s is missing", p))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("verifying bundle %s: %w", b.Dir, err)
	}
	return nil
}

// plan is what Build resolved from Options and the repository.
type plan struct {
	repoRoot  string
	cacheRoot string // <cache>/bundle
	versions  Versions
	steps     []Step
	key       string
	goCmd     string
	// imageRefs maps each image archive to the references it holds.
	imageRefs map[string][]string
	log       io.Writer
}

// name is the bundle directory's base name.
func (p *plan) name() string {
	return fmt.Sprintf("%s-etcd%s-%s", p.versions.Kubernetes, strings.TrimPrefix(p.versions.Etcd, "v"), p.key)
}

func (p *plan) logf(format string, args ...any) {
	fmt.Fprintf(p.log, format, args...)
}

// Build returns the bundle of the pinned versions, building it first if it is not cached.
// A cached bundle is returned without running go.
func Build(ctx context.Context, opts Options) (*Bundle, error) {
	p, err := newPlan(opts)
	if err != nil {
		return nil, err
	}
	return p.build(ctx)
}

func newPlan(opts Options) (*plan, error) {
	p := &plan{repoRoot: opts.RepoRoot, goCmd: opts.GoCmd, log: opts.Log, steps: opts.steps, imageRefs: map[string][]string{}}
	if p.log == nil {
		p.log = io.Discard
	}
	if p.goCmd == "" {
		p.goCmd = "go"
	}
	if p.repoRoot == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("locating the kforge repository: %w", err)
		}
		if p.repoRoot, err = RepoRoot(wd); err != nil {
			return nil, err
		}
	}
	var err error
	if p.cacheRoot, err = cacheRoot(opts.CacheDir); err != nil {
		return nil, err
	}
	if p.versions, err = readVersions(p.repoRoot); err != nil {
		return nil, err
	}
	if p.steps == nil {
		build := defaultSteps
		if opts.coreOnly {
			build = coreSteps
		}
		if p.steps, err = build(p.versions, p.imageRefs); err != nil {
			return nil, err
		}
	}
	if p.key, err = Key(p.repoRoot, p.steps); err != nil {
		return nil, err
	}
	return p, nil
}

// cacheRoot returns the directory that holds the bundles: <dir>/bundle, where dir is the
// option, $KFORGE_CACHE_DIR or <os.UserCacheDir()>/kforge.
func cacheRoot(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv(CacheDirEnv)
	}
	if dir == "" {
		ucd, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("finding the cache directory (set %s): %w", CacheDirEnv, err)
		}
		dir = filepath.Join(ucd, "kforge")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("finding the cache directory: %w", err)
	}
	return filepath.Join(dir, "bundle"), nil
}

// Key is the cache key of a bundle: the first 12 hex digits of a sha256 over
// BuilderVersion, the target platform, and every step's outputs and input files.
func Key(repoRoot string, steps []Step) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "kforge bundle builder %d\nplatform %s/%s\n", BuilderVersion, runtime.GOOS, runtime.GOARCH)
	for i, s := range steps {
		fmt.Fprintf(h, "step %d outputs %q\n", i, s.Outputs)
		for _, in := range s.Inputs {
			data, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(in)))
			if err != nil {
				return "", fmt.Errorf("reading bundle input: %w", err)
			}
			fmt.Fprintf(h, "input %s %d\n", in, len(data))
			h.Write(data)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

// errNotCached says the bundle directory does not exist.
var errNotCached = errors.New("not cached")

// open returns the complete bundle in dir, errNotCached if there is none, or another
// error if dir exists but does not hold a complete bundle of this plan.
func (p *plan) open(dir string) (*Bundle, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, errNotCached
	}
	m, err := readManifest(dir)
	if err != nil {
		return nil, err
	}
	if m.Key != p.key || m.Versions != p.versions || m.Builder != BuilderVersion {
		return nil, fmt.Errorf("%s is for key %s, builder %d, versions %+v", ManifestFile, m.Key, m.Builder, m.Versions)
	}
	if err := m.checkPresent(dir); err != nil {
		return nil, err
	}
	for _, s := range p.steps {
		for _, o := range s.Outputs {
			if !m.has(o) {
				return nil, fmt.Errorf("%s does not list %s", ManifestFile, o)
			}
		}
	}
	return &Bundle{Dir: dir, BinDir: filepath.Join(dir, "bin"), Versions: m.Versions, Manifest: m}, nil
}

func (m *Manifest) has(path string) bool {
	for _, f := range m.Files {
		if f.Path == path {
			return true
		}
	}
	return false
}

func (p *plan) build(ctx context.Context) (*Bundle, error) {
	dir := filepath.Join(p.cacheRoot, p.name())
	if b, err := p.open(dir); err == nil {
		p.logf("[bundle] using %s\n", dir)
		return b, nil
	}
	if err := os.MkdirAll(p.cacheRoot, 0o755); err != nil {
		return nil, fmt.Errorf("creating the bundle cache: %w", err)
	}
	unlock, err := lock(ctx, filepath.Join(p.cacheRoot, "."+p.name()+".lock"), func() {
		p.logf("[bundle] waiting for another build of %s\n", dir)
	})
	if err != nil {
		return nil, err
	}
	defer unlock()

	// Holding the lock: another process may have finished the bundle meanwhile, and any
	// temporary directory left is from a build that was killed.
	b, err := p.open(dir)
	switch {
	case err == nil:
		p.logf("[bundle] using %s\n", dir)
		return b, nil
	case !errors.Is(err, errNotCached):
		p.logf("[bundle] discarding damaged bundle %s: %v\n", dir, err)
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("removing damaged bundle: %w", err)
		}
	}
	stale, _ := filepath.Glob(filepath.Join(p.cacheRoot, "."+p.name()+".tmp-*"))
	for _, s := range stale {
		if err := os.RemoveAll(s); err != nil {
			return nil, fmt.Errorf("removing an interrupted build: %w", err)
		}
	}

	start := time.Now()
	tmp, err := os.MkdirTemp(p.cacheRoot, "."+p.name()+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("creating the bundle build directory: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if err := p.runSteps(ctx, tmp); err != nil {
		return nil, err
	}
	files, err := scanFiles(tmp)
	if err != nil {
		return nil, err
	}
	m := &Manifest{
		Builder:  BuilderVersion,
		Key:      p.key,
		Platform: runtime.GOOS + "/" + runtime.GOARCH,
		Versions: p.versions,
		Files:    files,
	}
	if err := writeManifest(tmp, m); err != nil {
		return nil, err
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
	}
	versions := map[string]string{"kubernetes": p.versions.Kubernetes, "etcd": p.versions.Etcd}
	if _, err := kbundle.Write(tmp, versions, productFiles(paths, p.imageRefs)); err != nil {
		return nil, fmt.Errorf("writing the bundle manifest: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("setting the bundle directory's mode: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("moving the bundle into place: %w", err)
	}
	p.logf("[bundle] built %s in %s\n", dir, formatDuration(time.Since(start)))
	return &Bundle{Dir: dir, BinDir: filepath.Join(dir, "bin"), Versions: p.versions, Manifest: m}, nil
}

// runSteps runs every step into the staging directory dir and checks its outputs.
func (p *plan) runSteps(ctx context.Context, dir string) error {
	env := &StepEnv{RepoRoot: p.repoRoot, Dir: dir, GoCmd: p.goCmd}
	for _, s := range p.steps {
		for _, o := range s.Outputs {
			if err := os.MkdirAll(filepath.Dir(env.Out(o)), 0o755); err != nil {
				return fmt.Errorf("building %s: %w", s.Title, err)
			}
		}
		p.logf("[bundle] building %s... ", s.Title)
		start := time.Now()
		err := s.Run(ctx, env)
		if err == nil {
			err = checkOutputs(env, s.Outputs)
		}
		if err != nil {
			p.logf("failed after %s\n", formatDuration(time.Since(start)))
			return fmt.Errorf("building %s: %w", s.Title, err)
		}
		p.logf("%s\n", formatDuration(time.Since(start)))
	}
	return nil
}

func checkOutputs(env *StepEnv, outputs []string) error {
	for _, o := range outputs {
		st, err := os.Stat(env.Out(o))
		if err != nil {
			return fmt.Errorf("the step did not produce %s: %w", o, err)
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("the step produced %s, but not as a regular file", o)
		}
	}
	return nil
}

// formatDuration prints d the way a person reads it: 850ms, 12.3s, 9m12s.
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}
