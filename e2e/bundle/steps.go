package bundle

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/kforge/kforge/config"
)

// Module directories, relative to the repository root.
const (
	kubernetesModDir = "e2e/kbuild"
	etcdModDir       = "e2e/etcdbuild"
)

// Modules whose versions the bundle reports.
const (
	kubernetesModule = "k8s.io/kubernetes"
	etcdServerModule = "go.etcd.io/etcd/server/v3"
	etcdctlModule    = "go.etcd.io/etcd/etcdctl/v3"
)

// KubernetesBinaries are the Kubernetes commands a bundle holds, by file name.
var KubernetesBinaries = []string{
	"kube-apiserver", "kube-controller-manager", "kube-scheduler",
	"kubelet", "kube-proxy", "kubectl", "kubeadm",
}

// EtcdBinaries are the etcd commands a bundle holds, by file name.
var EtcdBinaries = []string{"etcd", "etcdctl"}

// A Step builds one part of a bundle into the staging directory. Every step's inputs go
// into the cache key, and every output must exist when Run returns.
type Step struct {
	// Title says what is built, for the progress line: "kubernetes v1.34.4 (7 binaries)".
	Title string
	// Inputs are files, relative to the repository root, whose content determines the
	// outputs.
	Inputs []string
	// Outputs are slash-separated paths, relative to the bundle directory, that Run writes.
	Outputs []string
	// Run writes Outputs under env.Dir.
	Run func(ctx context.Context, env *StepEnv) error
}

// StepEnv is what a running step sees.
type StepEnv struct {
	// RepoRoot is the kforge repository.
	RepoRoot string
	// Dir is the staging bundle directory; it becomes the bundle when every step is done.
	Dir string
	// GoCmd is the go command.
	GoCmd string
}

// Out returns the staging path of a bundle-relative output.
func (e *StepEnv) Out(rel string) string {
	return filepath.Join(e.Dir, filepath.FromSlash(rel))
}

// goBuild runs "go build args..." in the repository-relative module directory modDir, for
// the platform of this process (it is part of the cache key), statically (CGO_ENABLED=0) and outside any go.work. The compiler's
// output is returned in the error.
func (e *StepEnv) goBuild(ctx context.Context, modDir string, args ...string) error {
	cmd := exec.CommandContext(ctx, e.GoCmd, append([]string{"build"}, args...)...)
	cmd.Dir = filepath.Join(e.RepoRoot, filepath.FromSlash(modDir))
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off",
		"GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	// On cancellation give go a chance to stop its compilers before it is killed.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	var out tailBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
		return fmt.Errorf("running %s build in %s: %w\n%s", e.GoCmd, modDir, err, out.String())
	}
	return nil
}

// tailBuffer keeps the last 8 KiB written to it.
type tailBuffer struct{ b []byte }

const tailSize = 8 << 10

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 2*tailSize {
		t.b = append(t.b[:0], t.b[len(t.b)-tailSize:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	b := t.b
	if len(b) > tailSize {
		b = b[len(b)-tailSize:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
		return "...\n" + string(b)
	}
	return string(b)
}

var _ io.Writer = (*tailBuffer)(nil)

var (
	releaseRE = regexp.MustCompile(`^v(\d+)\.(\d+)\.(\d+)(?:-[0-9A-Za-z.-]+)?$`)
	pseudoRE  = regexp.MustCompile(`[-.]\d{14}-[0-9a-f]{12}$`)
)

// isRelease says whether a module version is a tagged release (pre-releases included),
// rather than a pseudo-version of a commit.
func isRelease(v string) bool {
	return releaseRE.MatchString(v) && !pseudoRE.MatchString(v)
}

// kubernetesLDFlags are the linker flags that stamp the version into every Kubernetes
// binary. Without them the binaries report v0.0.0-master+$Format:%H$, which kubectl and
// kubeadm cannot parse.
func kubernetesLDFlags(version string) (string, error) {
	m := releaseRE.FindStringSubmatch(version)
	if m == nil || !isRelease(version) {
		return "", fmt.Errorf("kubernetes version %q is not vMAJOR.MINOR.PATCH", version)
	}
	flags := []string{"-s", "-w"}
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		flags = append(flags,
			"-X", pkg+".gitVersion="+version,
			"-X", pkg+".gitMajor="+m[1],
			"-X", pkg+".gitMinor="+m[2],
			"-X", pkg+".gitTreeState=clean",
			"-X", pkg+".buildDate=1970-01-01T00:00:00Z",
		)
	}
	return strings.Join(flags, " "), nil
}

// kubernetesStep builds KubernetesBinaries from the e2e/kbuild module.
func kubernetesStep(version string) (Step, error) {
	ldflags, err := kubernetesLDFlags(version)
	if err != nil {
		return Step{}, err
	}
	var outputs, pkgs []string
	for _, b := range KubernetesBinaries {
		outputs = append(outputs, path.Join("bin", b))
		pkgs = append(pkgs, "k8s.io/kubernetes/cmd/"+b)
	}
	return Step{
		Title:   fmt.Sprintf("kubernetes %s (%d binaries)", version, len(outputs)),
		Inputs:  moduleInputs(kubernetesModDir),
		Outputs: outputs,
		Run: func(ctx context.Context, env *StepEnv) error {
			// One go build for all commands: their packages compile once, in parallel.
			args := append([]string{"-buildvcs=false", "-ldflags=" + ldflags,
				"-o", env.Out("bin") + string(filepath.Separator)}, pkgs...)
			return env.goBuild(ctx, kubernetesModDir, args...)
		},
	}, nil
}

// etcdStep builds EtcdBinaries from the e2e/etcdbuild module. etcd's version is a
// constant in its source, so it needs no -X flags.
func etcdStep(version string) Step {
	pkgs := map[string]string{"etcd": etcdServerModule, "etcdctl": etcdctlModule}
	var outputs []string
	for _, b := range EtcdBinaries {
		outputs = append(outputs, path.Join("bin", b))
	}
	return Step{
		Title:   fmt.Sprintf("etcd %s (%d binaries)", version, len(outputs)),
		Inputs:  moduleInputs(etcdModDir),
		Outputs: outputs,
		Run: func(ctx context.Context, env *StepEnv) error {
			// Separate builds: "go build -o dir/" would name the server binary "server".
			for _, b := range EtcdBinaries {
				err := env.goBuild(ctx, etcdModDir, "-buildvcs=false", "-ldflags=-s -w",
					"-o", env.Out(path.Join("bin", b)), pkgs[b])
				if err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// moduleInputs are the files that pin a build module's dependencies and commands.
func moduleInputs(modDir string) []string {
	return []string{modDir + "/go.mod", modDir + "/go.sum", modDir + "/tools.go"}
}

// readVersions reads the pinned Kubernetes and etcd versions from the build modules.
func readVersions(repoRoot string) (Versions, error) {
	var v Versions
	var err error
	modFile := func(dir string) string { return filepath.Join(repoRoot, filepath.FromSlash(dir), "go.mod") }
	if v.Kubernetes, err = requiredVersion(modFile(kubernetesModDir), kubernetesModule); err != nil {
		return v, err
	}
	if !isRelease(v.Kubernetes) {
		return v, fmt.Errorf("%s pins %s %s, not a release version", modFile(kubernetesModDir), kubernetesModule, v.Kubernetes)
	}
	if v.Etcd, err = requiredVersion(modFile(etcdModDir), etcdServerModule); err != nil {
		return v, err
	}
	ctl, err := requiredVersion(modFile(etcdModDir), etcdctlModule)
	if err != nil {
		return v, err
	}
	if ctl != v.Etcd {
		return v, fmt.Errorf("%s pins %s %s but %s %s; they must match",
			modFile(etcdModDir), etcdServerModule, v.Etcd, etcdctlModule, ctl)
	}
	// The bundle's etcd image is named after kforge's pin (config.Pins), so the binaries
	// in it must be that release.
	c := &config.Cluster{KubernetesVersion: v.Kubernetes}
	pins, ok := config.Pins(c.KubernetesMinor())
	if !ok {
		return v, fmt.Errorf("%s pins Kubernetes %s, a minor release kforge pins no images for", modFile(kubernetesModDir), v.Kubernetes)
	}
	if release, _, _ := strings.Cut(pins.Etcd, "-"); "v"+release != v.Etcd {
		return v, fmt.Errorf("%s pins %s %s, but the etcd image of Kubernetes %s is tagged %s; pin %s v%s",
			modFile(etcdModDir), etcdServerModule, v.Etcd, v.Kubernetes, pins.Etcd, etcdServerModule, release)
	}
	return v, nil
}

// defaultSteps are the steps of a bundle with versions v. refs receives the image
// reference of each image archive.
func defaultSteps(v Versions, refs map[string][]string) ([]Step, error) {
	core, err := coreSteps(v, refs)
	if err != nil {
		return nil, err
	}
	im, err := imagesStep(refs)
	if err != nil {
		return nil, err
	}
	return append(core, corednsStep(), flannelStep(), cniStep(), pauseStep(), im), nil
}

// coreSteps build the Kubernetes and etcd binaries only.
func coreSteps(v Versions, _ map[string][]string) ([]Step, error) {
	k, err := kubernetesStep(v.Kubernetes)
	if err != nil {
		return nil, err
	}
	return []Step{k, etcdStep(v.Etcd)}, nil
}
