package phases

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/internal/fileutil"
	"github.com/kforge/kforge/kubeconfig"
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

func kubeletStartPhase() Phase {
	return Phase{
		Name:  "kubelet-start",
		Short: "Write the kubelet configuration and flags, then (re)start the kubelet",
		Run:   func(ctx context.Context, d *Data) error { return startKubelet(ctx, d, false) },
	}
}

// startKubelet writes the kubelet's configuration and flags, and (re)starts the kubelet
// when they changed, when changed says something else did, or when it is not running.
func startKubelet(ctx context.Context, d *Data, changed bool) error {
	cfg, err := KubeletConfigYAML(d)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		path string
		data []byte
	}{
		{kubelet.ConfigPath, cfg},
		{kubelet.FlagsEnvPath, kubelet.FlagsEnv(kubeletParams(d))},
	} {
		res, err := fileutil.WriteAtomic(d.Path(f.path), f.data, 0o644, 0o755)
		if err != nil {
			return err
		}
		if res != fileutil.Unchanged {
			changed = true
			d.Out.Phase("kubelet-start", "%s %s", res, f.path)
		}
	}
	active, err := d.Services.Active(ctx, "kubelet")
	if err != nil {
		return err
	}
	if active && !changed {
		d.Out.Phase("kubelet-start", "the kubelet runs with the current configuration (%s); leaving it alone", d.Services.Kind())
		return nil
	}
	d.Out.Phase("kubelet-start", "starting the kubelet through the %s", d.Services.Kind())
	if err := d.Services.Restart(ctx, kubeletSpec(d)); err != nil {
		return fmt.Errorf("starting the kubelet: %w", err)
	}
	return nil
}

// kubeletFinalizePhase points kubelet.conf at the kubelet's own rotating client
// certificate, so that certificate rotation keeps the node's credentials current.
func kubeletFinalizePhase() Phase {
	return Phase{
		Name:  "kubelet-finalize",
		Short: "Point kubelet.conf at the kubelet's rotating client certificate",
		Run: func(_ context.Context, d *Data) error {
			pemPath := d.Path(kubelet.ClientCertPath)
			if _, err := os.Stat(pemPath); errors.Is(err, fs.ErrNotExist) {
				// Seed the rotating file with the credentials init signed; the kubelet
				// replaces it before it expires.
				cert, key, err := embeddedClientCert(d)
				if err != nil {
					return err
				}
				if _, err := fileutil.WriteAtomic(pemPath, append(cert, key...), 0o600, 0o700); err != nil {
					return err
				}
			} else if err != nil {
				return fmt.Errorf("checking %s: %w", kubelet.ClientCertPath, err)
			}
			spec, err := kubeletKubeconfigSpec(d)
			if err != nil {
				return err
			}
			caPEM, err := os.ReadFile(filepath.Join(d.Path(d.CertDir), "ca.crt"))
			if err != nil {
				return fmt.Errorf("reading the cluster CA: %w", err)
			}
			data, err := kubeconfig.BuildWithCertFile(d.Cluster.Name, spec.Server(d.Cluster, d.AdvertiseAddress.String()),
				caPEM, spec.CommonName, kubelet.ClientCertPath)
			if err != nil {
				return err
			}
			shown := filepath.Join(d.KubeconfigDir, kubelet.KubeconfigName)
			res, err := fileutil.WriteAtomic(d.Path(shown), data, 0o600, 0o755)
			if err != nil {
				return err
			}
			if res == fileutil.Unchanged {
				d.Out.Phase("kubelet-finalize", "%s already uses %s", shown, kubelet.ClientCertPath)
			} else {
				d.Out.Phase("kubelet-finalize", "%s now uses the rotating client certificate %s", shown, kubelet.ClientCertPath)
			}
			return nil
		},
	}
}

func kubeletKubeconfigSpec(d *Data) (kubeconfig.Spec, error) {
	for _, s := range kubeconfig.Specs(d.Node.Name) {
		if s.FileName == kubelet.KubeconfigName {
			return s, nil
		}
	}
	return kubeconfig.Spec{}, fmt.Errorf("no kubeconfig spec for %s", kubelet.KubeconfigName)
}

// embeddedClientCert reads the client certificate and key embedded in kubelet.conf.
func embeddedClientCert(d *Data) (cert, key []byte, err error) {
	path := d.Path(filepath.Join(d.KubeconfigDir, kubelet.KubeconfigName))
	cfg, err := loadKubeconfig(path)
	if err != nil {
		return nil, nil, err
	}
	for _, u := range cfg.AuthInfos {
		if len(u.ClientCertificateData) > 0 && len(u.ClientKeyData) > 0 {
			if _, err := certs.ParseCertPEM(u.ClientCertificateData); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", path, err)
			}
			return u.ClientCertificateData, u.ClientKeyData, nil
		}
	}
	return nil, nil, fmt.Errorf("%s has no embedded client certificate to seed %s with", path, kubelet.ClientCertPath)
}
