package phases

import (
	"context"
	"fmt"
	"os/exec"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/kubelet"
	"github.com/kforge/kforge/service"
)

// DefaultKubeletPath is where the bundle installs the kubelet; PATH is searched first.
const DefaultKubeletPath = "/usr/local/bin/kubelet"

func kubeletParams(d *Data) kubelet.Params {
	return kubelet.Params{
		Cluster:       d.Cluster,
		NodeName:      d.Node.Name,
		NodeIP:        d.AdvertiseAddress.String(),
		CertDir:       d.CertDir,
		ManifestsDir:  d.ManifestsDir,
		HostExtraArgs: d.Node.KubeletExtraArgs,
		Host: kubelet.Host{
			CgroupV1:         d.Facts.Cgroup.IsV1(),
			CgroupDriver:     d.Facts.CgroupDriver(),
			NoCapSysResource: !d.Facts.CapSysResource,
		},
	}
}

// kubeletFlagsEnv is kubeadm-flags.env for this node: its flags, and the labels (those a
// kubelet may set on itself) and taints its Node registers with, as kubeadm's
// nodeRegistration gives them; mark-control-plane sets the rest through the API.
func kubeletFlagsEnv(d *Data) ([]byte, error) {
	marks, err := bootstrap.HostMarks(d.Node)
	if err != nil {
		return nil, err
	}
	p := kubeletParams(d)
	p.NodeLabels = marks.KubeletLabels()
	p.RegisterTaints = marks.TaintStrings()
	return kubelet.FlagsEnv(p)
}

// KubeletConfigYAML is the KubeletConfiguration this node runs with; upload-config
// publishes it as the kubelet-config ConfigMap.
func KubeletConfigYAML(d *Data) ([]byte, error) { return kubelet.ConfigYAML(kubeletParams(d)) }

func kubeletPath() string {
	if p, err := exec.LookPath("kubelet"); err == nil {
		return p
	}
	return DefaultKubeletPath
}

func kubeletSpec(d *Data) service.Spec {
	bin := kubeletPath()
	return service.Spec{
		Name:     "kubelet",
		Command:  kubelet.Command(bin, d.KubeconfigDir),
		EnvFiles: kubelet.EnvFiles(),
		Unit:     kubelet.SystemdUnit(bin),
		DropIn:   kubelet.SystemdDropIn(bin, d.KubeconfigDir),
	}
}

// kubeletStartPhase writes the kubelet's configuration and flags and (re)starts the kubelet
// when they changed or it is not running.
//
// Reads Data.Cluster, Data.Node, Data.AdvertiseAddress, Data.Facts and Data.Services.
func kubeletStartPhase() Phase {
	return Phase{
		Name:  "kubelet-start",
		Short: "Write the kubelet configuration and flags, then (re)start the kubelet",
		Run:   func(ctx context.Context, d *Data) error { return startKubelet(ctx, d, nil) },
	}
}

// startKubelet writes the kubelet's configuration and flags, and extra (bootstrap-kubelet.conf
// on a join), and (re)starts the kubelet when any of them changed, when an earlier run
// changed them and died before the restart, or when it is not running (service.Apply).
// First it converts a client certificate an older kforge wrote as a plain file into the
// layout the kubelet rotates (layOutKubeletClientCert), on init, join and reconfigure alike.
func startKubelet(ctx context.Context, d *Data, extra []service.File) error {
	if err := layOutKubeletClientCert(d, nil); err != nil {
		return err
	}
	cfg, err := KubeletConfigYAML(d)
	if err != nil {
		return err
	}
	flags, err := kubeletFlagsEnv(d)
	if err != nil {
		return err
	}
	files := append(extra,
		service.File{Path: kubelet.ConfigPath, Data: cfg, Mode: 0o644, DirMode: 0o755},
		service.File{Path: kubelet.FlagsEnvPath, Data: flags, Mode: 0o644, DirMode: 0o755})
	a, err := d.applyService(ctx, service.Change{Spec: kubeletSpec(d), Files: files, StartStopped: true})
	for _, w := range a.Written {
		d.Out.Say("%s %s", w.Result, w.Path)
	}
	if err != nil {
		return fmt.Errorf("starting the kubelet: %w", err)
	}
	switch {
	case a.Resumed:
		d.Out.Say("restarted the kubelet through the %s: an earlier run changed its files and stopped before restarting it", d.Services.Kind())
	case a.Restarted:
		d.Out.Say("started the kubelet through the %s", d.Services.Kind())
	default:
		d.Out.Say("the kubelet runs with the current configuration (%s); leaving it alone", d.Services.Kind())
	}
	return nil
}
