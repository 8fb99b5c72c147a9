// Package lab puts kforge on testbed hosts: it stages the test bundle with a freshly built
// kforge where the hosts can read it, writes their cluster.toml and runs kforge inside
// them. The e2e tests and `make cluster` share it.
package lab

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	kbundle "github.com/kforge/kforge/bundle"
	"github.com/kforge/kforge/e2e/testbed"
)

// ConfigPath is where cluster.toml lives on each host (the host's private /root).
const ConfigPath = "/root/cluster.toml"

// Lab is a testbed with kforge staged for its hosts.
type Lab struct {
	TB *testbed.Testbed
	// BundleDir is the staged bundle, readable from every host.
	BundleDir string
	// Kforge is the staged kforge binary, runnable from every host.
	Kforge string
}

// Stage hard-links the built bundle into the testbed's directory (which the hosts can
// read, unlike /root and /tmp), builds kforge from repoRoot into it and writes the
// bundle's manifest with kforge added.
func Stage(tb *testbed.Testbed, builtBundle, repoRoot string) (*Lab, error) {
	src, err := kbundle.Load(builtBundle)
	if err != nil {
		return nil, fmt.Errorf("the test bundle is not a kforge bundle: %w", err)
	}
	dir := filepath.Join(tb.Dir(), "lab", "bundle")
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	var files []kbundle.File
	for _, f := range src.Manifest.Files {
		dst := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		if err := os.Link(filepath.Join(builtBundle, filepath.FromSlash(f.Path)), dst); err != nil {
			return nil, fmt.Errorf("staging %s: %w", f.Path, err)
		}
		files = append(files, kbundle.File{Path: f.Path, Kind: f.Kind, Install: f.Install, Images: f.Images})
	}
	kforge := filepath.Join(dir, "bin", "kforge")
	cmd := exec.Command("go", "build", "-o", kforge, ".")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building kforge: %w\n%s", err, out)
	}
	files = append(files, kbundle.File{Path: "bin/kforge", Kind: kbundle.KindBinary, Install: "/usr/local/bin/kforge"})
	if _, err := kbundle.Write(dir, src.Manifest.Versions, files); err != nil {
		return nil, err
	}
	return &Lab{TB: tb, BundleDir: dir, Kforge: kforge}, nil
}

// ClusterConfig is the cluster.toml for hosts, the first one the control plane. CoreDNS
// forwards to an address inside the lab where nothing answers, so no query leaves it.
func (l *Lab) ClusterConfig(hosts ...testbed.Host) string { return l.ClusterConfigCP(1, hosts...) }

// ClusterConfigCP is ClusterConfig with the first controlPlanes hosts control-plane hosts.
func (l *Lab) ClusterConfigCP(controlPlanes int, hosts ...testbed.Host) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version = \"kforge/v1alpha1\"\nbundle = %q\n\n", l.BundleDir)
	fmt.Fprintf(&b, "[addons.dns]\nupstreams = [%q]\n\n", gateway(l.TB))
	b.WriteString("[addons.cni]\nflannel_backend = \"host-gw\"\n\n")
	for i, h := range hosts {
		role := "worker"
		if i < controlPlanes {
			role = "control-plane"
		}
		writeHost(&b, h, role)
	}
	return b.String()
}

// Gateway is the bridge's own address in the lab subnet, where nothing serves DNS.
func (l *Lab) Gateway() string { return gateway(l.TB) }

// UpConfig is a cluster.toml for kforge up run from this machine: the lab's settings, the
// bundle as this machine sees it, the first cps hosts control-plane hosts and the rest
// workers, and control_plane_endpoint if endpoint is set.
func (l *Lab) UpConfig(name, endpoint string, cps int, hosts ...testbed.Host) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version = \"kforge/v1alpha1\"\nname = %q\nbundle = %q\n", name, l.BundleDir)
	if endpoint != "" {
		fmt.Fprintf(&b, "control_plane_endpoint = %q\n", endpoint)
	}
	fmt.Fprintf(&b, "\n[addons.dns]\nupstreams = [%q]\n\n[addons.cni]\nflannel_backend = \"host-gw\"\n\n", l.Gateway())
	for i, h := range hosts {
		role := "worker"
		if i < cps {
			role = "control-plane"
		}
		writeHost(&b, h, role)
	}
	return b.String()
}

// writeHost writes a [[hosts]] entry. The kubelet of a namespace host keeps its pods in
// the host's own cgroup subtree of the machine's hierarchies (/<name>); a systemd host
// has cgroups of its own, and its kubelet the default root, as on a real server.
func writeHost(b *strings.Builder, h testbed.Host, role string) {
	fmt.Fprintf(b, "[[hosts]]\nname = %q\naddress = %q\nroles = [%q]\n", h.Name, h.Address, role)
	if h.Kind() == testbed.KindNS {
		fmt.Fprintf(b, "kubelet_extra_args = { \"cgroup-root\" = \"/%s\" }\n", h.Name)
	}
	b.WriteString("\n")
}

// gateway is the bridge's own address in the lab subnet (.1): nothing serves DNS there.
func gateway(tb *testbed.Testbed) string {
	s := tb.Subnet()
	base, _, _ := strings.Cut(s, "/")
	i := strings.LastIndex(base, ".")
	return base[:i] + ".1"
}

// WriteConfig writes cluster.toml on a host.
func (l *Lab) WriteConfig(ctx context.Context, h testbed.Host, config string) error {
	_, errOut, err := h.Exec(ctx, strings.NewReader(config), "sh", "-c", "cat > "+ConfigPath)
	if err != nil {
		return fmt.Errorf("writing %s on %s: %w: %s", ConfigPath, h.Name, err, errOut)
	}
	return nil
}

// Run runs the staged kforge inside a host, streaming its output to out (may be nil), and
// returns its stdout.
func (l *Lab) Run(ctx context.Context, h testbed.Host, out io.Writer, args ...string) (string, error) {
	cmd := h.Command(ctx, append([]string{l.Kforge}, args...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if out != nil {
		cmd.Stdout = io.MultiWriter(&stdout, out)
		cmd.Stderr = io.MultiWriter(&stderr, out)
	}
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kforge %s on %s: %w\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), h.Name, err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// AdminKubeconfig reads admin.conf from a control-plane host. Its server is the host's lab
// address, which the machine reaches over the bridge.
func AdminKubeconfig(ctx context.Context, h testbed.Host) ([]byte, error) {
	out, errOut, err := h.Exec(ctx, nil, "cat", "/etc/kubernetes/admin.conf")
	if err != nil {
		return nil, fmt.Errorf("reading admin.conf on %s: %w: %s", h.Name, err, errOut)
	}
	return out, nil
}
