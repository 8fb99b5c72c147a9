// Package kubelet builds the files that configure and run the kubelet: its
// KubeletConfiguration, the flags env file, and the systemd unit and drop-in. It takes
// values and returns bytes; the phases write them.
package kubelet

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/kforge/kforge/config"
)

// Paths of the kubelet's files, as kubeadm lays them out.
const (
	ConfigPath          = "/var/lib/kubelet/config.yaml"
	FlagsEnvPath        = "/var/lib/kubelet/kubeadm-flags.env"
	ExtraEnvPath        = "/etc/default/kubelet"
	CertDir             = "/var/lib/kubelet/pki"
	ClientCertPath      = "/var/lib/kubelet/pki/kubelet-client-current.pem"
	KubeconfigName      = "kubelet.conf"
	BootstrapConfigName = "bootstrap-kubelet.conf"
)

// clientCertPrefix begins the names of the kubelet's client certificate files in CertDir,
// as client-go's certificate store names them: <prefix>-current.pem (ClientCertPath) is a
// symlink to <prefix>-<YYYY-MM-DD-HH-MM-SS>.pem.
const clientCertPrefix = "kubelet-client"

// ClientCertFileName is the name, in CertDir, of the timestamped file that holds a client
// certificate and its key, which ClientCertPath links to: kubelet-client-<time>.pem, with
// the time as YYYY-MM-DD-HH-MM-SS, the layout the kubelet keeps when it rotates its
// certificate (it refuses to rotate a ClientCertPath that is not a symlink). kforge names
// the file after the certificate's NotBefore, in UTC, so that the same certificate always
// gets the same name and a re-run finds the file an earlier run wrote.
func ClientCertFileName(notBefore time.Time) string {
	return clientCertPrefix + "-" + notBefore.UTC().Format("2006-01-02-15-04-05") + ".pem"
}

// Host facts the kubelet configuration depends on. The preflight package detects them.
type Host struct {
	// CgroupV1 is true on cgroup v1 and hybrid hosts.
	CgroupV1 bool
	// CgroupDriver is the detected driver, used when the config does not set one.
	CgroupDriver string
	// NoCapSysResource is true when root cannot lower OOM scores (nested, LXC, rootless).
	NoCapSysResource bool
}

// Params are the inputs of the kubelet's files on one node.
type Params struct {
	Cluster      *config.Cluster
	NodeName     string
	NodeIP       string
	CertDir      string // the cluster PKI dir, for the client CA
	ManifestsDir string // where the static pods live
	Host         Host
	// HostExtraArgs are this host's own kubelet flags (hosts[].kubelet_extra_args).
	HostExtraArgs map[string]string
	// NodeLabels are set by the kubelet when it registers the Node (--node-labels): only
	// labels a kubelet may set on itself (bootstrap.NodeMarks.KubeletLabels).
	NodeLabels map[string]string
	// RegisterTaints are "key[=value]:Effect" taints the Node registers with
	// (--register-with-taints).
	RegisterTaints []string
}

// Config returns the KubeletConfiguration for a node.
func Config(p Params) (*kubeletv1beta1.KubeletConfiguration, error) {
	c := p.Cluster
	dnsIP, err := c.ServiceIP(10)
	if err != nil {
		return nil, err
	}
	driver := c.Kubelet.CgroupDriver
	if driver == "" {
		driver = p.Host.CgroupDriver
	}
	if driver == "" {
		driver = "cgroupfs"
	}
	f := false
	t := true
	kc := &kubeletv1beta1.KubeletConfiguration{
		TypeMeta:      metav1.TypeMeta{APIVersion: "kubelet.config.k8s.io/v1beta1", Kind: "KubeletConfiguration"},
		StaticPodPath: p.ManifestsDir,
		Authentication: kubeletv1beta1.KubeletAuthentication{
			Anonymous: kubeletv1beta1.KubeletAnonymousAuthentication{Enabled: &f},
			Webhook:   kubeletv1beta1.KubeletWebhookAuthentication{Enabled: &t},
			X509:      kubeletv1beta1.KubeletX509Authentication{ClientCAFile: strings.TrimSuffix(p.CertDir, "/") + "/ca.crt"},
		},
		Authorization:            kubeletv1beta1.KubeletAuthorization{Mode: kubeletv1beta1.KubeletAuthorizationModeWebhook},
		CgroupDriver:             driver,
		ClusterDNS:               []string{dnsIP.String()},
		ClusterDomain:            c.Networking.DNSDomain,
		ContainerRuntimeEndpoint: c.Kubelet.ContainerRuntimeEndpoint,
		HealthzBindAddress:       "127.0.0.1",
		HealthzPort:              ptr(int32(10248)),
		ReadOnlyPort:             0,
		RotateCertificates:       true,
		ServerTLSBootstrap:       c.Kubelet.ServerTLSBootstrap,
		FailSwapOn:               c.Kubelet.FailSwapOn,
		MaxPods:                  c.Kubelet.MaxPods,
		SystemReserved:           c.Kubelet.SystemReserved,
		KubeReserved:             c.Kubelet.KubeReserved,
		EvictionHard:             c.Kubelet.EvictionHard,
		StaticPodURLHeader:       nil,
	}
	if p.Host.CgroupV1 {
		// Kubernetes 1.34 and later refuse cgroup v1 unless told otherwise.
		kc.FailCgroupV1 = &f
	}
	if p.Host.NoCapSysResource {
		// The kubelet cannot lower its own OOM score to -999 without CAP_SYS_RESOURCE.
		kc.OOMScoreAdj = ptr(int32(0))
	}
	return kc, nil
}

// ConfigYAML renders Config as the kubelet reads it from ConfigPath.
func ConfigYAML(p Params) ([]byte, error) {
	kc, err := Config(p)
	if err != nil {
		return nil, err
	}
	b, err := yaml.Marshal(kc)
	if err != nil {
		return nil, fmt.Errorf("rendering the kubelet configuration: %w", err)
	}
	return append([]byte("# Written by kforge (kubelet-start). Edits are replaced on the next kforge run;\n# put overrides in cluster.toml under [kubelet].\n"), b...), nil
}

// Flags returns the node-specific kubelet flags kubeadm keeps in kubeadm-flags.env (with
// the node's registration labels and taints), with the config's extra_args merged in
// (extra args win).
func Flags(p Params) map[string]string {
	flags := map[string]string{
		"node-ip":           p.NodeIP,
		"hostname-override": p.NodeName,
	}
	if len(p.NodeLabels) > 0 {
		var labels []string
		for _, k := range slices.Sorted(maps.Keys(p.NodeLabels)) {
			labels = append(labels, k+"="+p.NodeLabels[k])
		}
		flags["node-labels"] = strings.Join(labels, ",")
	}
	if len(p.RegisterTaints) > 0 {
		flags["register-with-taints"] = strings.Join(p.RegisterTaints, ",")
	}
	maps.Copy(flags, p.Cluster.Kubelet.ExtraArgs)
	maps.Copy(flags, p.HostExtraArgs)
	return flags
}

// FlagsEnv renders Flags as the env file the unit and the supervisor read:
// KUBELET_KUBEADM_ARGS="--a=b --c=d", as kubeadm writes it. systemd and kforge's supervisor
// split the variable at white space, so each flag must stay one word: a name that is not a
// flag name or a value config.FlagValueProblem refuses is an error, never written.
func FlagsEnv(p Params) ([]byte, error) {
	flags := Flags(p)
	var args []string
	for _, k := range slices.Sorted(maps.Keys(flags)) {
		if !config.ValidFlagName(k) {
			return nil, fmt.Errorf("kubelet flag %q is not a flag name; want lowercase letters, digits and dashes", k)
		}
		if problem := config.FlagValueProblem(flags[k], true); problem != "" {
			return nil, fmt.Errorf("kubelet flag %s: value %q %s", k, flags[k], problem)
		}
		args = append(args, "--"+k+"="+flags[k])
	}
	return []byte("KUBELET_KUBEADM_ARGS=\"" + strings.Join(args, " ") + "\"\n"), nil
}

// Command is the kubelet's command line, with $VAR references that the service manager
// expands from FlagsEnvPath and ExtraEnvPath, as the systemd drop-in does.
func Command(kubeletPath, kubeconfigDir string) []string {
	return []string{
		kubeletPath,
		"--bootstrap-kubeconfig=" + kubeconfigDir + "/" + BootstrapConfigName,
		"--kubeconfig=" + kubeconfigDir + "/" + KubeconfigName,
		"--config=" + ConfigPath,
		"$KUBELET_KUBEADM_ARGS",
		"$KUBELET_EXTRA_ARGS",
	}
}

// EnvFiles are the env files Command's variables come from, in order; a missing one is fine.
func EnvFiles() []string { return []string{FlagsEnvPath, ExtraEnvPath} }

// SystemdUnit is /etc/systemd/system/kubelet.service, for hosts where no package installed one.
func SystemdUnit(kubeletPath string) []byte {
	return []byte(`# Written by kforge.
[Unit]
Description=kubelet: the Kubernetes node agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=` + kubeletPath + `
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
`)
}

// SystemdDropIn is /etc/systemd/system/kubelet.service.d/10-kforge.conf: the kubeconfigs,
// the config file and the env files.
func SystemdDropIn(kubeletPath, kubeconfigDir string) []byte {
	cmd := Command(kubeletPath, kubeconfigDir)
	var b strings.Builder
	b.WriteString("# Written by kforge.\n[Service]\n")
	fmt.Fprintf(&b, "Environment=\"KUBELET_KUBECONFIG_ARGS=%s %s\"\n", cmd[1], cmd[2])
	fmt.Fprintf(&b, "Environment=\"KUBELET_CONFIG_ARGS=%s\"\n", cmd[3])
	for _, f := range EnvFiles() {
		fmt.Fprintf(&b, "EnvironmentFile=-%s\n", f)
	}
	b.WriteString("ExecStart=\n")
	fmt.Fprintf(&b, "ExecStart=%s $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS\n", kubeletPath)
	return []byte(b.String())
}

func ptr[T any](v T) *T { return &v }
