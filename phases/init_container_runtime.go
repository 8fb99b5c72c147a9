package phases

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/internal/fileutil"
	"github.com/kforge/kforge/kubelet"
	"github.com/kforge/kforge/service"
)

// CNIBinDir is where CNI plugins live on every node.
const CNIBinDir = "/opt/cni/bin"

// containerRuntimePhase enables IP forwarding and writes containerd's CRI configuration,
// restarting containerd when that changed anything. Shared by init and join.
//
// Reads Data.Cluster, Data.Facts and Data.Services.
func containerRuntimePhase() Phase {
	return Phase{
		Name:  "container-runtime",
		Short: "Enable IP forwarding and configure containerd for the kubelet, restarting it if that changed anything",
		Run:   configureContainerd,
	}
}

func containerdParams(d *Data) kubelet.ContainerdParams {
	return kubelet.ContainerdParams{
		SandboxImage:        d.Cluster.Image(config.ImagePause),
		SystemdCgroup:       cgroupDriver(d) == "systemd",
		RestrictOOMScoreAdj: !d.Facts.CapSysResource,
		CNIBinDir:           CNIBinDir,
	}
}

func cgroupDriver(d *Data) string {
	if d.Cluster.Kubelet.CgroupDriver != "" {
		return d.Cluster.Kubelet.CgroupDriver
	}
	return d.Facts.CgroupDriver()
}

// sysctls the node needs, and where kforge persists them.
const (
	ipForwardPath  = "/proc/sys/net/ipv4/ip_forward"
	sysctlConfPath = "/etc/sysctl.d/99-kforge.conf"
)

// enableForwarding turns on IPv4 forwarding, which pod traffic needs, now and at boot.
func enableForwarding(d *Data) error {
	if _, err := fileutil.WriteAtomic(d.Path(sysctlConfPath), []byte("# Written by kforge: pods need forwarding.\nnet.ipv4.ip_forward = 1\n"), 0o644, 0o755); err != nil {
		return err
	}
	cur, err := os.ReadFile(d.Path(ipForwardPath))
	if err == nil && strings.TrimSpace(string(cur)) == "1" {
		return nil
	}
	p := d.Path(ipForwardPath)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("enabling IPv4 forwarding: %w", err)
	}
	if err := os.WriteFile(p, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enabling IPv4 forwarding: %w", err)
	}
	d.Out.Say("enabled IPv4 forwarding (net.ipv4.ip_forward = 1, persisted in %s)", sysctlConfPath)
	return nil
}

func configureContainerd(ctx context.Context, d *Data) error {
	if err := enableForwarding(d); err != nil {
		return err
	}
	want := kubelet.ContainerdConfig(containerdParams(d))
	path := d.Path(kubelet.ContainerdConfigPath)
	old, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(old, want):
		d.Out.Say("using existing %s", kubelet.ContainerdConfigPath)
		return nil
	case err == nil && !bytes.HasPrefix(old, []byte(kubelet.ContainerdMarker)):
		backup := path + ".kforge-backup"
		if _, err := os.Stat(backup); errors.Is(err, fs.ErrNotExist) {
			if _, err := fileutil.WriteAtomic(backup, old, 0o644, 0o755); err != nil {
				return err
			}
			d.Out.Say("kept the previous containerd config as %s.kforge-backup", kubelet.ContainerdConfigPath)
		}
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("reading %s: %w", kubelet.ContainerdConfigPath, err)
	}
	if _, err := fileutil.WriteAtomic(path, want, 0o644, 0o755); err != nil {
		return err
	}
	p := containerdParams(d)
	d.Out.Say("wrote %s (sandbox image %s, SystemdCgroup %t, restrict_oom_score_adj %t)",
		kubelet.ContainerdConfigPath, p.SandboxImage, p.SystemdCgroup, p.RestrictOOMScoreAdj)
	d.Out.Say("restarting containerd through the %s", d.Services.Kind())
	if err := d.Services.Restart(ctx, containerdSpec(d)); err != nil {
		return fmt.Errorf("restarting containerd to apply its new config: %w", err)
	}
	return nil
}

// criSocket is the path of the CRI socket from container_runtime_endpoint.
func criSocket(d *Data) string {
	return strings.TrimPrefix(d.Cluster.Kubelet.ContainerRuntimeEndpoint, "unix://")
}

func containerdSpec(d *Data) service.Spec {
	return service.Spec{
		Name:    "containerd",
		Command: []string{"containerd", "--config", kubelet.ContainerdConfigPath},
		Socket:  criSocket(d),
		Adopt:   true,
	}
}
