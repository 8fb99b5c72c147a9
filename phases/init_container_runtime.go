package phases

import (
	"bytes"
	"context"
	"fmt"
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
	p := containerdParams(d)
	want := kubelet.ContainerdConfig(p)
	path := d.Path(kubelet.ContainerdConfigPath)
	cur, err := readFileIfExists(path)
	if err != nil {
		return err
	}
	record, err := readFileIfExists(d.Path(kubelet.ContainerdRecordPath))
	if err != nil {
		return err
	}
	plan := kubelet.PlanContainerdConfig(cur, record, p)
	data := want
	switch plan.Action {
	case kubelet.ContainerdKeep:
		data = cur
		if !bytes.Equal(cur, want) {
			d.Out.Say("using existing %s: edited since kforge wrote it, and it has every setting the cluster needs", kubelet.ContainerdConfigPath)
		}
	case kubelet.ContainerdRefuse:
		return fmt.Errorf("%s is not the file kforge last wrote (it was edited, or written before kforge recorded its sha256 in %s) "+
			"and it lacks what the cluster needs: add %s; or move the file away to let kforge write its own (edits would be lost)",
			kubelet.ContainerdConfigPath, kubelet.ContainerdRecordPath, strings.Join(plan.Missing, ", "))
	case kubelet.ContainerdReplace:
		backup := fileutil.FreeName(kubelet.ContainerdConfigPath+".kforge-backup-"+d.Now().UTC().Format("20060102T150405Z"), d.Path)
		if _, err := fileutil.WriteAtomic(d.Path(backup), cur, 0o644, 0o755); err != nil {
			return fmt.Errorf("keeping a copy of %s: %w", kubelet.ContainerdConfigPath, err)
		}
		d.Out.Say("WARNING: replacing %s, which kforge did not write and which lacks %s; it was kept as %s",
			kubelet.ContainerdConfigPath, strings.Join(plan.Missing, ", "), backup)
	}
	// The record goes first: a run killed after writing the config still knows it as
	// kforge's. It holds the sum of the file kforge replaces too, if that was kforge's.
	if bytes.Equal(data, want) {
		sums := [][]byte{want}
		if plan.Action == kubelet.ContainerdWrite && cur != nil {
			sums = append(sums, cur)
		}
		if _, err := fileutil.WriteAtomic(d.Path(kubelet.ContainerdRecordPath), kubelet.ContainerdRecord(sums...), 0o644, 0o755); err != nil {
			return fmt.Errorf("recording the containerd config kforge writes: %w", err)
		}
	}
	a, err := d.applyService(ctx, service.Change{Spec: containerdSpec(d),
		Files: []service.File{{Path: kubelet.ContainerdConfigPath, Data: data, Mode: 0o644, DirMode: 0o755}}})
	if len(a.Written) > 0 {
		d.Out.Say("wrote %s (sandbox image %s, SystemdCgroup %t, restrict_oom_score_adj %t)",
			kubelet.ContainerdConfigPath, p.SandboxImage, p.SystemdCgroup, p.RestrictOOMScoreAdj)
	}
	if err != nil {
		return fmt.Errorf("restarting containerd to apply its new config: %w", err)
	}
	switch {
	case a.Resumed:
		d.Out.Say("restarted containerd through the %s: an earlier run changed its config and stopped before restarting it", d.Services.Kind())
	case a.Restarted:
		d.Out.Say("restarted containerd through the %s", d.Services.Kind())
	case bytes.Equal(cur, want):
		d.Out.Say("using existing %s", kubelet.ContainerdConfigPath)
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
