package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	testKbuildMod = "module github.com/kforge/kforge/e2e/kbuild\n\ngo 1.24.0\n\nrequire k8s.io/kubernetes v1.34.4\n"
	testEtcdMod   = "module github.com/kforge/kforge/e2e/etcdbuild\n\ngo 1.24.0\n\nrequire (\n\tgo.etcd.io/etcd/etcdctl/v3 v3.6.5\n\tgo.etcd.io/etcd/server/v3 v3.6.5\n)\n"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeRepo writes a kforge repository with the two build modules and returns its root.
func fakeRepo(t *testing.T, kbuildMod, etcdMod string) string {
	t.Helper()
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "go.mod"), "module "+RepoModule+"\n")
	writeFile(t, filepath.Join(root, kubernetesModDir, "go.mod"), kbuildMod)
	writeFile(t, filepath.Join(root, kubernetesModDir, "go.sum"), "k8s.io/kubernetes v1.34.4 h1:fake=\n")
	writeFile(t, filepath.Join(root, kubernetesModDir, "tools.go"), "package kbuild\n")
	writeFile(t, filepath.Join(root, etcdModDir, "go.mod"), etcdMod)
	writeFile(t, filepath.Join(root, etcdModDir, "go.sum"), "go.etcd.io/etcd/server/v3 v3.6.5 h1:fake=\n")
	writeFile(t, filepath.Join(root, etcdModDir, "tools.go"), "package etcdbuild\n")
	return root
}

// fakeGo writes a go command that records each invocation (its environment's CGO_ENABLED,
// its directory and its arguments) as a line of the returned log, and writes a small
// executable for every binary "go build -o" names.
func fakeGo(t *testing.T) (goCmd, logPath string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the fake go command is a shell script")
	}
	dir := t.TempDir()
	logPath = filepath.Join(dir, "go.log")
	goCmd = filepath.Join(dir, "go")
	script := `#!/bin/sh
echo "CGO_ENABLED=$CGO_ENABLED GOWORK=$GOWORK dir=$(pwd) $*" >> "` + logPath + `"
if [ -n "$FAKE_GO_FAIL" ]; then echo "$FAKE_GO_FAIL" >&2; exit 1; fi
out=; prev=
for a in "$@"; do [ "$prev" = -o ] && out=$a; prev=$a; done
case "$out" in
*/) for a in "$@"; do case "$a" in k8s.io/*) n=${a##*/}; printf '#!/bin/sh\necho %s\n' "$n" > "$out$n"; chmod 755 "$out$n";; esac; done ;;
*) printf '#!/bin/sh\necho %s\n' "${out##*/}" > "$out"; chmod 755 "$out" ;;
esac
`
	writeFile(t, goCmd, script)
	if err := os.Chmod(goCmd, 0o755); err != nil {
		t.Fatal(err)
	}
	return goCmd, logPath
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

func TestBuildWithFakeGo(t *testing.T) {
	root := fakeRepo(t, testKbuildMod, testEtcdMod)
	goCmd, goLog := fakeGo(t)
	cache := t.TempDir()
	var log bytes.Buffer
	opts := Options{coreOnly: true, RepoRoot: root, CacheDir: cache, GoCmd: goCmd, Log: &log}

	b, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatalf("Build() error = %v\nlog:\n%s", err, log.String())
	}

	// The bundle's place and name.
	if want := filepath.Join(cache, "bundle"); filepath.Dir(b.Dir) != want {
		t.Errorf("bundle dir %s is not in %s", b.Dir, want)
	}
	if !regexp.MustCompile(`^v1\.34\.4-etcd3\.6\.5-[0-9a-f]{12}$`).MatchString(filepath.Base(b.Dir)) {
		t.Errorf("bundle dir name %q, want v1.34.4-etcd3.6.5-<12 hex>", filepath.Base(b.Dir))
	}
	if b.BinDir != filepath.Join(b.Dir, "bin") {
		t.Errorf("BinDir = %s, want %s/bin", b.BinDir, b.Dir)
	}
	if want := (Versions{Kubernetes: "v1.34.4", Etcd: "v3.6.5"}); b.Versions != want {
		t.Errorf("Versions = %+v, want %+v", b.Versions, want)
	}
	for _, name := range append(append([]string{}, KubernetesBinaries...), EtcdBinaries...) {
		data, err := os.ReadFile(b.Path(name))
		if err != nil {
			t.Errorf("bundle has no %s: %v", name, err)
		} else if !strings.Contains(string(data), "echo "+name+"\n") {
			t.Errorf("%s holds %q, which is another binary", b.Path(name), data)
		}
	}

	// How go was run.
	calls := readLines(t, goLog)
	if len(calls) != 3 {
		t.Fatalf("go ran %d times, want 3 (kubernetes, etcd, etcdctl):\n%s", len(calls), strings.Join(calls, "\n"))
	}
	k8s := calls[0]
	for _, want := range []string{
		"CGO_ENABLED=0 GOWORK=off dir=" + filepath.Join(root, "e2e", "kbuild") + " build -buildvcs=false",
		"-X k8s.io/component-base/version.gitVersion=v1.34.4 ",
		"-X k8s.io/component-base/version.gitMajor=1 ",
		"-X k8s.io/component-base/version.gitMinor=34 ",
		"-X k8s.io/component-base/version.gitTreeState=clean ",
		"-X k8s.io/client-go/pkg/version.gitVersion=v1.34.4 ",
		"-ldflags=-s -w ",
		"k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kubeadm",
	} {
		if !strings.Contains(k8s, want) {
			t.Errorf("kubernetes build %q lacks %q", k8s, want)
		}
	}
	for i, pkg := range []string{"go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/etcdctl/v3"} {
		c := calls[1+i]
		if !strings.HasPrefix(c, "CGO_ENABLED=0 GOWORK=off dir="+filepath.Join(root, "e2e", "etcdbuild")+" build ") || !strings.HasSuffix(c, " "+pkg) {
			t.Errorf("etcd build %q, want CGO_ENABLED=0 in e2e/etcdbuild building %s", c, pkg)
		}
	}

	// The progress lines.
	if !regexp.MustCompile(`(?m)^\[bundle\] building kubernetes v1\.34\.4 \(7 binaries\)\.\.\. \d.*s$`).MatchString(log.String()) ||
		!regexp.MustCompile(`(?m)^\[bundle\] building etcd v3\.6\.5 \(2 binaries\)\.\.\. \d.*s$`).MatchString(log.String()) {
		t.Errorf("progress log lacks a timed line per step:\n%s", log.String())
	}

	// The manifest on disk is the one returned, and it checks out.
	m, err := readManifest(b.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(b.Manifest, m); diff != "" {
		t.Errorf("manifest.json differs from Bundle.Manifest (-returned +disk):\n%s", diff)
	}
	if len(m.Files) != 9 {
		t.Errorf("manifest lists %d files, want 9: %+v", len(m.Files), m.Files)
	}
	if err := b.Verify(); err != nil {
		t.Errorf("Verify() = %v", err)
	}

	// Nothing but the bundle and its lock is left in the cache.
	entries, _ := os.ReadDir(filepath.Join(cache, "bundle"))
	for _, e := range entries {
		if e.Name() != filepath.Base(b.Dir) && !strings.HasSuffix(e.Name(), ".lock") {
			t.Errorf("cache holds %s besides the bundle", e.Name())
		}
	}

	// A second Build is a no-op: go does not run, and the result is the same.
	log.Reset()
	start := time.Now()
	b2, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatalf("second Build() error = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("second Build() took %s, want it to return at once", d)
	}
	if got := readLines(t, goLog); len(got) != 3 {
		t.Errorf("second Build() ran go again:\n%s", strings.Join(got[3:], "\n"))
	}
	if diff := cmp.Diff(b, b2); diff != "" {
		t.Errorf("second Build() returned another bundle (-first +second):\n%s", diff)
	}
	if want := "[bundle] using " + b.Dir + "\n"; log.String() != want {
		t.Errorf("second Build() logged %q, want %q", log.String(), want)
	}

	// A change to a pinned input makes another bundle.
	writeFile(t, filepath.Join(root, "e2e/etcdbuild/go.sum"), "changed\n")
	b3, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatalf("Build() after an input change: %v", err)
	}
	if b3.Dir == b.Dir {
		t.Errorf("Build() after an input change reused %s", b.Dir)
	}
	if got := readLines(t, goLog); len(got) != 6 {
		t.Errorf("Build() after an input change ran go %d more times, want 3", len(got)-3)
	}
}

func TestBuildFailureLeavesNoCache(t *testing.T) {
	root := fakeRepo(t, testKbuildMod, testEtcdMod)
	goCmd, _ := fakeGo(t)
	cache := t.TempDir()
	t.Setenv("FAKE_GO_FAIL", "undefined: frobnicate")

	_, err := Build(context.Background(), Options{coreOnly: true, RepoRoot: root, CacheDir: cache, GoCmd: goCmd})
	if err == nil {
		t.Fatal("Build() succeeded with a failing go build")
	}
	for _, want := range []string{"building kubernetes v1.34.4 (7 binaries)", "e2e/kbuild", "undefined: frobnicate"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Build() error = %v, want it to contain %q", err, want)
		}
	}
	assertOnlyLocks(t, filepath.Join(cache, "bundle"))
}

// assertOnlyLocks fails if dir holds anything but lock files: no bundle, no staging dir.
func assertOnlyLocks(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".lock") {
			t.Errorf("cache holds %s after a failed build", e.Name())
		}
	}
}

// fakeStep returns a step that writes bin/<name> and counts its runs.
func fakeStep(name string, runs *int) Step {
	return Step{
		Title:   name,
		Inputs:  moduleInputs(kubernetesModDir),
		Outputs: []string{"bin/" + name},
		Run: func(ctx context.Context, env *StepEnv) error {
			*runs++
			return os.WriteFile(env.Out("bin/"+name), []byte(name), 0o755)
		},
	}
}

func TestBuildCancelled(t *testing.T) {
	root := fakeRepo(t, testKbuildMod, testEtcdMod)
	cache := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	step := Step{
		Title:   "forever",
		Outputs: []string{"bin/x"},
		Run: func(ctx context.Context, env *StepEnv) error {
			os.WriteFile(env.Out("bin/x"), []byte("half"), 0o755)
			cancel()
			<-ctx.Done()
			return ctx.Err()
		},
	}
	_, err := Build(ctx, Options{coreOnly: true, RepoRoot: root, CacheDir: cache, steps: []Step{step}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Build() error = %v, want context.Canceled", err)
	}
	assertOnlyLocks(t, filepath.Join(cache, "bundle"))
}

func TestBuildMissingOutput(t *testing.T) {
	root := fakeRepo(t, testKbuildMod, testEtcdMod)
	cache := t.TempDir()
	step := Step{
		Title:   "lazy",
		Outputs: []string{"bin/a", "bin/b"},
		Run: func(ctx context.Context, env *StepEnv) error {
			return os.WriteFile(env.Out("bin/a"), nil, 0o755)
		},
	}
	_, err := Build(context.Background(), Options{coreOnly: true, RepoRoot: root, CacheDir: cache, steps: []Step{step}})
	if err == nil || !strings.Contains(err.Error(), "did not produce bin/b") {
		t.Fatalf("Build() error = %v, want it to say bin/b is missing", err)
	}
	assertOnlyLocks(t, filepath.Join(cache, "bundle"))
}

func TestBuildRepairsCache(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, b *Bundle, cacheRoot string)
	}{
		{"binary deleted", func(t *testing.T, b *Bundle, _ string) {
			os.Remove(b.Path("one"))
		}},
		{"binary truncated", func(t *testing.T, b *Bundle, _ string) {
			os.WriteFile(b.Path("one"), nil, 0o755)
		}},
		{"manifest deleted", func(t *testing.T, b *Bundle, _ string) {
			os.Remove(filepath.Join(b.Dir, ManifestFile))
		}},
		{"manifest corrupt", func(t *testing.T, b *Bundle, _ string) {
			os.WriteFile(filepath.Join(b.Dir, ManifestFile), []byte("{"), 0o644)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := fakeRepo(t, testKbuildMod, testEtcdMod)
			cache := t.TempDir()
			var runs int
			opts := Options{coreOnly: true, RepoRoot: root, CacheDir: cache, steps: []Step{fakeStep("one", &runs)}}
			b, err := Build(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			tc.damage(t, b, filepath.Join(cache, "bundle"))
			var log bytes.Buffer
			opts.Log = &log
			b2, err := Build(context.Background(), opts)
			if err != nil {
				t.Fatalf("Build() of a damaged cache: %v", err)
			}
			if runs != 2 {
				t.Errorf("the step ran %d times, want 2 (build, rebuild)", runs)
			}
			if !strings.Contains(log.String(), "discarding damaged bundle") {
				t.Errorf("log does not mention the damage:\n%s", log.String())
			}
			if err := b2.Verify(); err != nil {
				t.Errorf("Verify() after the rebuild: %v", err)
			}
		})
	}
}

func TestBuildRemovesInterruptedBuilds(t *testing.T) {
	root := fakeRepo(t, testKbuildMod, testEtcdMod)
	cache := t.TempDir()
	var runs int
	opts := Options{coreOnly: true, RepoRoot: root, CacheDir: cache, steps: []Step{fakeStep("one", &runs)}}
	p, err := newPlan(opts)
	if err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(cache, "bundle", "."+p.name()+".tmp-12345")
	writeFile(t, filepath.Join(stale, "bin", "half"), "half a binary")
	other := filepath.Join(cache, "bundle", ".v0.0.0-etcd0.0.0-000000000000.tmp-1")
	writeFile(t, filepath.Join(other, "x"), "another bundle's build, maybe running")

	if _, err := Build(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the interrupted build %s is still there (%v)", stale, err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("Build() removed another bundle's build dir: %v", err)
	}
}

func TestKey(t *testing.T) {
	root := fakeRepo(t, testKbuildMod, testEtcdMod)
	steps, err := coreSteps(Versions{Kubernetes: "v1.34.4", Etcd: "v3.6.5"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	base, err := Key(root, steps)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{12}$`).MatchString(base) {
		t.Fatalf("Key() = %q, want 12 hex digits", base)
	}
	if again, _ := Key(root, steps); again != base {
		t.Errorf("Key() is not stable: %s, then %s", base, again)
	}

	// Every pinned file is part of the key, and nothing else in the repository.
	for _, in := range append(moduleInputs(kubernetesModDir), moduleInputs(etcdModDir)...) {
		t.Run(in, func(t *testing.T) {
			p := filepath.Join(root, filepath.FromSlash(in))
			old, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(p, old, 0o644)
			writeFile(t, p, string(old)+"\n")
			if got, _ := Key(root, steps); got == base {
				t.Errorf("Key() did not change when %s changed", in)
			}
		})
	}
	writeFile(t, filepath.Join(root, "README.md"), "unrelated")
	if got, _ := Key(root, steps); got != base {
		t.Errorf("Key() changed with an unrelated file: %s, want %s", got, base)
	}

	// So is the list of outputs.
	more := append([]Step{}, steps...)
	more[1].Outputs = append(append([]string{}, more[1].Outputs...), "bin/etcdutl")
	if got, _ := Key(root, more); got == base {
		t.Errorf("Key() did not change with another output")
	}

	// A missing input is an error, not an empty hash.
	os.Remove(filepath.Join(root, "e2e/kbuild/tools.go"))
	if got, err := Key(root, steps); err == nil {
		t.Errorf("Key() = %s with a missing input, want an error", got)
	}
}

func TestCacheRoot(t *testing.T) {
	ucd, err := os.UserCacheDir()
	if err != nil {
		t.Skipf("this user has no cache directory to default to: %v", err)
	}
	tests := []struct {
		name, opt, env, want string
	}{
		{"default", "", "", filepath.Join(ucd, "kforge", "bundle")},
		{"env", "", "/env/cache", "/env/cache/bundle"},
		{"option wins", "/opt/cache", "/env/cache", "/opt/cache/bundle"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(CacheDirEnv, tc.env)
			got, err := cacheRoot(tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("cacheRoot(%q) with $%s=%q = %s, want %s", tc.opt, CacheDirEnv, tc.env, got, tc.want)
			}
		})
	}
}

func TestManifest(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "bin", "b"), "bee")
	writeFile(t, filepath.Join(dir, "bin", "a"), "")
	writeFile(t, filepath.Join(dir, "images", "x.tar"), "tar")
	writeFile(t, filepath.Join(dir, ManifestFile), "an old manifest, not a bundle file")
	files, err := scanFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	want := []FileEntry{
		{Path: "bin/a", Size: 0, SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{Path: "bin/b", Size: 3, SHA256: sum("bee")},
		{Path: "images/x.tar", Size: 3, SHA256: sum("tar")},
	}
	if diff := cmp.Diff(want, files); diff != "" {
		t.Fatalf("scanFiles() mismatch (-want +got):\n%s", diff)
	}

	m := &Manifest{Builder: BuilderVersion, Key: "0123456789ab", Platform: "linux/amd64",
		Versions: Versions{Kubernetes: "v1.34.4", Etcd: "v3.6.5"}, Files: files}
	if err := writeManifest(dir, m); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"kubernetes": "v1.34.4"`, `"etcd": "v3.6.5"`, `"key": "0123456789ab"`,
		`"path": "bin/b"`, `"sha256": "` + sum("bee") + `"`,
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("manifest.json lacks %s:\n%s", want, data)
		}
	}
	got, err := readManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, got); diff != "" {
		t.Errorf("manifest round trip mismatch (-written +read):\n%s", diff)
	}

	b := &Bundle{Dir: dir, BinDir: filepath.Join(dir, "bin"), Manifest: m}
	if err := b.Verify(); err != nil {
		t.Errorf("Verify() of an intact bundle = %v", err)
	}
	writeFile(t, filepath.Join(dir, "bin", "b"), "BEE")
	writeFile(t, filepath.Join(dir, "bin", "c"), "extra")
	os.Remove(filepath.Join(dir, "images", "x.tar"))
	err = b.Verify()
	for _, want := range []string{"bin/b has sha256", "bin/c is not in the manifest", "images/x.tar is missing"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Verify() of a damaged bundle = %v, want it to contain %q", err, want)
		}
	}
}

func TestKubernetesLDFlags(t *testing.T) {
	tests := []struct {
		version, wantMajor, wantMinor string
	}{
		{"v1.34.4", "1", "34"},
		{"v1.35.0-alpha.1", "1", "35"},
	}
	for _, tc := range tests {
		t.Run(tc.version, func(t *testing.T) {
			got, err := kubernetesLDFlags(tc.version)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{
				"-s -w ",
				"-X k8s.io/component-base/version.gitVersion=" + tc.version + " ",
				"-X k8s.io/component-base/version.gitMajor=" + tc.wantMajor + " ",
				"-X k8s.io/component-base/version.gitMinor=" + tc.wantMinor + " ",
				"-X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z",
			} {
				if !strings.Contains(got, want) {
					t.Errorf("kubernetesLDFlags(%s) = %q, lacks %q", tc.version, got, want)
				}
			}
		})
	}
	for _, bad := range []string{"1.34", "v1.34", "v0.0.0-20250101000000-abcdefabcdef"} {
		if got, err := kubernetesLDFlags(bad); err == nil {
			t.Errorf("kubernetesLDFlags(%s) = %q, want an error", bad, got)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		850*time.Millisecond + 400*time.Microsecond: "850ms",
		12*time.Second + 340*time.Millisecond:       "12.3s",
		9*time.Minute + 12*time.Second + 600e6:      "9m13s",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %s, want %s", d, got, want)
		}
	}
}

func TestTailBuffer(t *testing.T) {
	var b tailBuffer
	for i := 0; i < 5000; i++ {
		b.Write([]byte("line of compiler output\n"))
	}
	b.Write([]byte("the last error\n"))
	s := b.String()
	if len(s) > tailSize+10 || !strings.HasPrefix(s, "...\nline of") || !strings.HasSuffix(s, "the last error\n") {
		t.Errorf("tailBuffer kept %d bytes starting %q, want the last %d bytes from a line start", len(s), s[:20], tailSize)
	}
}
