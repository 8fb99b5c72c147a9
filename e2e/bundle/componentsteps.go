package bundle

import (
	"context"
	"fmt"
	"path"
	"strings"

	kbundle "github.com/kforge/kforge/bundle"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/e2e/images"
)

// Module directories of the add-on and node components, relative to the repository root.
const (
	corednsModDir    = "e2e/corednsbuild"
	flannelModDir    = "e2e/flannelbuild"
	cniModDir        = "e2e/cnibuild"
	cniFlannelModDir = "e2e/cniflannelbuild"
	pauseDir         = "e2e/pause"
)

// CNIPlugins are the CNI plugins a bundle installs in /opt/cni/bin, besides flannel's.
var CNIPlugins = map[string]string{
	"bridge":     "github.com/containernetworking/plugins/plugins/main/bridge",
	"host-local": "github.com/containernetworking/plugins/plugins/ipam/host-local",
	"loopback":   "github.com/containernetworking/plugins/plugins/main/loopback",
	"portmap":    "github.com/containernetworking/plugins/plugins/meta/portmap",
}

// hostBinaries are the bundle's binaries that kforge installs on every host, with where.
var hostBinaries = map[string]string{
	"bin/kubelet": "/usr/local/bin/kubelet",
	"bin/kubectl": "/usr/local/bin/kubectl",
	"bin/kubeadm": "/usr/local/bin/kubeadm",
}

func corednsStep() Step {
	return Step{
		Title:   "coredns",
		Inputs:  moduleInputs(corednsModDir),
		Outputs: []string{"bin/coredns"},
		Run: func(ctx context.Context, env *StepEnv) error {
			return env.goBuild(ctx, corednsModDir, "-buildvcs=false", "-ldflags=-s -w -X github.com/coredns/coredns/coremain.GitCommit=kforge-bundle", "-o", env.Out("bin/coredns"), "github.com/coredns/coredns")
		},
	}
}

func flannelStep() Step {
	return Step{
		Title:   "flanneld",
		Inputs:  append(moduleInputs(flannelModDir)[:2], flannelModDir+"/main.go"),
		Outputs: []string{"bin/flanneld"},
		Run: func(ctx context.Context, env *StepEnv) error {
			return env.goBuild(ctx, flannelModDir, "-buildvcs=false", "-ldflags=-s -w -X github.com/flannel-io/flannel/pkg/version.Version=v0.28.10", "-o", env.Out("bin/flanneld"), ".")
		},
	}
}

func cniStep() Step {
	outputs := []string{"bin/cni/flannel"}
	for name := range CNIPlugins {
		outputs = append(outputs, "bin/cni/"+name)
	}
	return Step{
		Title:   fmt.Sprintf("CNI plugins (%d)", len(outputs)),
		Inputs:  append(moduleInputs(cniModDir), moduleInputs(cniFlannelModDir)...),
		Outputs: sortedCopy(outputs),
		Run: func(ctx context.Context, env *StepEnv) error {
			for name, pkg := range CNIPlugins {
				if err := env.goBuild(ctx, cniModDir, "-buildvcs=false", "-ldflags=-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=v1.9.1", "-o", env.Out("bin/cni/"+name), pkg); err != nil {
					return err
				}
			}
			return env.goBuild(ctx, cniFlannelModDir, "-buildvcs=false", "-ldflags=-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=v0.9.1", "-o", env.Out("bin/cni/flannel"),
				"github.com/containernetworking/plugins/plugins/meta/flannel")
		},
	}
}

func pauseStep() Step {
	return Step{
		Title:   "pause",
		Inputs:  []string{pauseDir + "/pause.go"},
		Outputs: []string{"bin/pause"},
		Run: func(ctx context.Context, env *StepEnv) error {
			return env.goBuild(ctx, ".", "-buildvcs=false", "-ldflags=-s -w", "-o", env.Out("bin/pause"), "./"+pauseDir)
		},
	}
}

// binPath maps the names images.Plan asks for to the bundle's outputs.
func binPath(env *StepEnv) func(string) string {
	return func(name string) string {
		if name == images.BinFlannelCNI {
			return env.Out("bin/cni/flannel")
		}
		return env.Out("bin/" + name)
	}
}

// imageFile is the archive name of an image reference.
func imageFile(ref string) string {
	r := strings.NewReplacer("/", "_", ":", "_")
	return "images/" + r.Replace(ref) + ".tar"
}

// imagesStep writes an archive of every image a default cluster runs, plus the test
// image, from the binaries the earlier steps built. refs records each archive's
// reference for the bundle manifest.
func imagesStep(refs map[string][]string) (Step, error) {
	c := config.Default()
	// The refs are known before anything is built: Plan only needs paths here.
	specs, err := images.Plan(c, func(name string) string { return "bin/" + name })
	if err != nil {
		return Step{}, fmt.Errorf("planning the bundle's images: %w", err)
	}
	var outputs []string
	for _, s := range specs {
		f := imageFile(s.Ref)
		outputs = append(outputs, f)
		refs[f] = []string{s.Ref}
	}
	return Step{
		Title: fmt.Sprintf("%d images", len(specs)),
		Inputs: []string{"e2e/images/images.go", "e2e/images/plan.go", "e2e/images/host.go",
			"config/derived.go", "addons/images.go", "addons/flannel.go"},
		Outputs: outputs,
		Run: func(ctx context.Context, env *StepEnv) error {
			specs, err := images.Plan(c, binPath(env))
			if err != nil {
				return err
			}
			for _, s := range specs {
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := images.Write(s, env.Out(imageFile(s.Ref))); err != nil {
					return fmt.Errorf("writing image %s: %w", s.Ref, err)
				}
			}
			return nil
		},
	}, nil
}

// productFiles describes the built files in kforge's bundle format: host binaries and CNI
// plugins are installed, image archives imported, the rest kept.
func productFiles(paths []string, refs map[string][]string) []kbundle.File {
	var out []kbundle.File
	for _, p := range paths {
		f := kbundle.File{Path: p, Kind: kbundle.KindFile}
		switch {
		case hostBinaries[p] != "":
			f.Kind, f.Install = kbundle.KindBinary, hostBinaries[p]
		case strings.HasPrefix(p, "bin/cni/"):
			f.Kind, f.Install = kbundle.KindBinary, "/opt/cni/bin/"+path.Base(p)
		case refs[p] != nil:
			f.Kind, f.Images = kbundle.KindImage, refs[p]
		}
		out = append(out, f)
	}
	return out
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}
