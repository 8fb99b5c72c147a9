// Package manifests builds the static pods of a control-plane node (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler) as typed corev1.Pod objects and renders them to
// the YAML the kubelet reads from /etc/kubernetes/manifests. It reads and writes no files.
package manifests

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kforge/kforge/config"
)

// Default directories on a node; Params fields left empty take these.
const (
	DefaultCertDir       = "/etc/kubernetes/pki"
	DefaultKubeconfigDir = "/etc/kubernetes"
	DefaultManifestDir   = "/etc/kubernetes/manifests"
)

// Component (and pod) names.
const (
	NameEtcd              = "etcd"
	NameAPIServer         = "kube-apiserver"
	NameControllerManager = "kube-controller-manager"
	NameScheduler         = "kube-scheduler"
)

// Annotations kforge writes on every static pod.
const (
	// ManagedByAnnotation marks a manifest as written by kforge; preflight uses it to tell
	// our own files from foreign ones on re-runs.
	ManagedByAnnotation = "kforge.io/managed-by"
	ManagedByValue      = "kforge"
	// APIServerEndpointAnnotation is read by kubeadm tooling to find each apiserver.
	APIServerEndpointAnnotation = "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint"
	// EtcdClientURLsAnnotation is read by kubeadm tooling to find each etcd member.
	EtcdClientURLsAnnotation = "kubeadm.kubernetes.io/etcd.advertise-client-urls"
	// ConfigHashAnnotation holds a hash of the configuration files a component reads
	// (the apiserver's APIServerFiles, an add-on's ConfigMap), as ConfigHash computes it.
	// The kubelet restarts a static pod, and a controller replaces a workload's pods, only
	// when the pod (template) changes; with the hash in it, a changed file changes it too.
	ConfigHashAnnotation = "kforge.io/config-hash"
)

// Etcd initial cluster states.
const (
	EtcdStateNew      = "new"
	EtcdStateExisting = "existing"
)

// Well-known ports.
const (
	EtcdClientPort            = 2379
	EtcdPeerPort              = 2380
	EtcdMetricsPort           = 2381
	ControllerManagerPort     = 10257
	SchedulerPort             = 10259
	defaultAPIServerPort      = config.DefaultAPIServerPort
	systemNodeCriticalPrio    = 2000001000 // the value of PriorityClass system-node-critical
	systemNodeCriticalClass   = "system-node-critical"
	caCertsDir                = "/etc/ssl/certs"
	flexVolumeDir             = "/usr/libexec/kubernetes/kubelet-plugins/volume/exec"
	controllerManagerConfFile = "controller-manager.conf"
	schedulerConfFile         = "scheduler.conf"
)

// Params are the inputs of every static pod of one node.
type Params struct {
	// Cluster is the validated, defaulted cluster configuration.
	Cluster *config.Cluster
	// NodeName is this node's name (the etcd member name).
	NodeName string
	// AdvertiseAddress is this node's IP on the cluster network.
	AdvertiseAddress string
	// CertDir is the PKI directory on the host; default DefaultCertDir. Every path in a flag
	// is a host path, mounted at the same path in the pod.
	CertDir string
	// KubeconfigDir holds controller-manager.conf and scheduler.conf; default
	// DefaultKubeconfigDir.
	KubeconfigDir string
	// EtcdInitialCluster is "name=https://ip:2380,..." for a joining etcd member; empty
	// means this node alone.
	EtcdInitialCluster string
	// EtcdInitialClusterState is EtcdStateNew (the default) or EtcdStateExisting.
	EtcdInitialClusterState string
	// ExternalCA is true when ca.key is absent: the controller-manager gets no signing flags.
	ExternalCA bool
	// VerifyKubelets is true once every kubelet of the cluster has been seen serving a
	// certificate signed by the cluster CA (kforge up, or kforge certs approve-serving,
	// records it on the host). With kubelet.server_tls_bootstrap on, the apiserver then
	// verifies the kubelets' serving certificates with the cluster CA
	// (--kubelet-certificate-authority); with it off, never, whatever this says: a kubelet
	// that signs its own certificate would be unreachable.
	VerifyKubelets bool
	// Inputs are fingerprints of the certificates and kubeconfigs on the host, by the path
	// a flag names them with (InputFingerprint of each file's content). A component's
	// ConfigHashAnnotation covers the inputs its flags name, so that a renewed certificate
	// changes the manifest of exactly the components that read it, and the kubelet
	// restarts them. A path missing from the map is not hashed.
	Inputs map[string]string
}

// Component is one static pod a phase writes.
type Component struct {
	// Name is the pod name and the manifest's base name: etcd, kube-apiserver, ...
	Name string
	// Phase is the sub-phase name: apiserver, controller-manager, scheduler; "local" for etcd.
	Phase string
	// Desc is a one-line imperative description for the phase list.
	Desc string
	// Build returns the pod.
	Build func(Params) (*corev1.Pod, error)
}

// ControlPlaneComponents returns the apiserver, controller-manager and scheduler, in the
// order the control-plane phase writes them.
func ControlPlaneComponents() []Component {
	return []Component{
		{Name: NameAPIServer, Phase: "apiserver", Desc: "Generate the kube-apiserver static pod manifest", Build: APIServer},
		{Name: NameControllerManager, Phase: "controller-manager", Desc: "Generate the kube-controller-manager static pod manifest", Build: ControllerManager},
		{Name: NameScheduler, Phase: "scheduler", Desc: "Generate the kube-scheduler static pod manifest", Build: Scheduler},
	}
}

// EtcdComponent returns the local etcd member.
func EtcdComponent() Component {
	return Component{Name: NameEtcd, Phase: "local", Desc: "Generate the static pod manifest for the local etcd member", Build: Etcd}
}

// FileName returns the manifest file name of a component: "kube-apiserver.yaml".
func FileName(name string) string { return name + ".yaml" }

// IsManaged reports whether pod carries kforge's managed-by annotation.
func IsManaged(pod *corev1.Pod) bool {
	return pod != nil && pod.Annotations[ManagedByAnnotation] == ManagedByValue
}

// normalize checks p and fills its defaults.
func (p Params) normalize() (Params, error) {
	if p.Cluster == nil {
		return p, errors.New("no cluster configuration")
	}
	if p.NodeName == "" {
		return p, errors.New("node name is empty")
	}
	addr, err := netip.ParseAddr(p.AdvertiseAddress)
	if err != nil {
		return p, fmt.Errorf("advertise address %q is not an IP address", p.AdvertiseAddress)
	}
	p.AdvertiseAddress = addr.String()
	if p.CertDir == "" {
		p.CertDir = DefaultCertDir
	}
	if p.KubeconfigDir == "" {
		p.KubeconfigDir = DefaultKubeconfigDir
	}
	for _, d := range []struct{ what, dir string }{{"certificate directory", p.CertDir}, {"kubeconfig directory", p.KubeconfigDir}} {
		if !path.IsAbs(d.dir) {
			return p, fmt.Errorf("%s %q is not an absolute path", d.what, d.dir)
		}
	}
	p.CertDir, p.KubeconfigDir = path.Clean(p.CertDir), path.Clean(p.KubeconfigDir)
	switch p.EtcdInitialClusterState {
	case "":
		p.EtcdInitialClusterState = EtcdStateNew
	case EtcdStateNew, EtcdStateExisting:
	default:
		return p, fmt.Errorf("etcd initial cluster state %q: want %q or %q", p.EtcdInitialClusterState, EtcdStateNew, EtcdStateExisting)
	}
	return p, nil
}

func (p Params) cert(name string) string { return path.Join(p.CertDir, name) }

// loopback is the loopback address of the advertise address's family.
func (p Params) loopback() string {
	if a, err := netip.ParseAddr(p.AdvertiseAddress); err == nil && a.Is6() && !a.Is4In6() {
		return "::1"
	}
	return "127.0.0.1"
}

// command returns binary followed by "--name=value" for every flag, extra winning over base,
// sorted by name.
func command(binary string, base, extra map[string]string) []string {
	flags := mergeFlags(base, extra)
	names := make([]string, 0, len(flags))
	for n := range flags {
		names = append(names, n)
	}
	slices.Sort(names)
	cmd := []string{binary}
	for _, n := range names {
		cmd = append(cmd, "--"+n+"="+flags[n])
	}
	return cmd
}

func mergeFlags(base, extra map[string]string) map[string]string {
	out := make(map[string]string, len(base)+len(extra))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range extra {
		out[strings.TrimLeft(k, "-")] = v
	}
	return out
}

// portFlag returns the port in flags[name], or def when unset.
func portFlag(flags map[string]string, name string, def int) (int32, error) {
	v, ok := flags[name]
	if !ok || v == "" {
		return int32(def), nil
	}
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("--%s=%q is not a port number", name, v)
	}
	return int32(n), nil
}

// probeHost is the address to probe a component bound to bind: loopback for a wildcard.
func probeHost(bind, loopback string) string {
	if a, err := netip.ParseAddr(bind); err != nil || a.IsUnspecified() {
		return loopback
	}
	return bind
}

// volume is a hostPath volume mounted at the same path or at mountPath.
type volume struct {
	name      string
	hostPath  string
	mountPath string
	readOnly  bool
	pathType  corev1.HostPathType
}

var hostPathTypes = []corev1.HostPathType{
	corev1.HostPathUnset, corev1.HostPathDirectoryOrCreate, corev1.HostPathDirectory,
	corev1.HostPathFileOrCreate, corev1.HostPathFile, corev1.HostPathSocket,
	corev1.HostPathCharDev, corev1.HostPathBlockDev,
}

// withExtraVolumes adds the configured extra volumes to base; one with the name of a
// built-in volume replaces it.
func withExtraVolumes(base []volume, extra []config.HostPathMount) ([]volume, error) {
	out := slices.Clone(base)
	for _, m := range extra {
		switch {
		case m.Name == "":
			return nil, fmt.Errorf("extra volume for %s has no name", m.HostPath)
		case !path.IsAbs(m.HostPath):
			return nil, fmt.Errorf("extra volume %q: host path %q is not absolute", m.Name, m.HostPath)
		case !path.IsAbs(m.MountPath):
			return nil, fmt.Errorf("extra volume %q: mount path %q is not absolute", m.Name, m.MountPath)
		case !slices.Contains(hostPathTypes, corev1.HostPathType(m.PathType)):
			return nil, fmt.Errorf("extra volume %q: unknown path type %q", m.Name, m.PathType)
		}
		v := volume{name: m.Name, hostPath: m.HostPath, mountPath: m.MountPath, readOnly: m.ReadOnly, pathType: corev1.HostPathType(m.PathType)}
		if i := slices.IndexFunc(out, func(b volume) bool { return b.name == m.Name }); i >= 0 {
			out[i] = v
		} else {
			out = append(out, v)
		}
	}
	return out, nil
}

// podSpec is what differs between the static pods.
type podSpec struct {
	name        string
	image       string
	command     []string
	requests    corev1.ResourceList
	liveness    *corev1.Probe
	readiness   *corev1.Probe
	startup     *corev1.Probe
	volumes     []volume
	annotations map[string]string
	// files are the configuration files the component reads (the apiserver's
	// APIServerFiles) and inputs the fingerprints of Params.Inputs: ConfigHashAnnotation
	// covers the files and the inputs the command names.
	files  []File
	inputs map[string]string
}

// pod builds a static pod from s, with volumes and mounts sorted by name.
func pod(s podSpec) (*corev1.Pod, error) {
	vols := slices.Clone(s.volumes)
	slices.SortFunc(vols, func(a, b volume) int { return strings.Compare(a.name, b.name) })
	mountedAt := map[string]string{}
	var (
		volumes []corev1.Volume
		mounts  []corev1.VolumeMount
	)
	for i, v := range vols {
		if i > 0 && vols[i-1].name == v.name {
			return nil, fmt.Errorf("two volumes named %q", v.name)
		}
		mp := v.mountPath
		if mp == "" {
			mp = v.hostPath
		}
		mp = path.Clean(mp)
		if other, ok := mountedAt[mp]; ok {
			return nil, fmt.Errorf("volumes %q and %q are both mounted at %s", other, v.name, mp)
		}
		mountedAt[mp] = v.name
		src := &corev1.HostPathVolumeSource{Path: v.hostPath}
		if v.pathType != corev1.HostPathUnset {
			src.Type = &v.pathType
		}
		volumes = append(volumes, corev1.Volume{Name: v.name, VolumeSource: corev1.VolumeSource{HostPath: src}})
		mounts = append(mounts, corev1.VolumeMount{Name: v.name, MountPath: mp, ReadOnly: v.readOnly})
	}

	annotations := map[string]string{ManagedByAnnotation: ManagedByValue}
	for k, v := range s.annotations {
		annotations[k] = v
	}
	if hashed := append(slices.Clone(s.files), namedInputs(s.command, s.inputs)...); len(hashed) > 0 {
		annotations[ConfigHashAnnotation] = ConfigHash(hashed)
	}
	prio := int32(systemNodeCriticalPrio)
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        s.name,
			Namespace:   metav1.NamespaceSystem,
			Labels:      map[string]string{"component": s.name, "tier": "control-plane"},
			Annotations: annotations,
		},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:            s.name,
				Image:           s.image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         s.command,
				Resources:       corev1.ResourceRequirements{Requests: s.requests},
				LivenessProbe:   s.liveness,
				ReadinessProbe:  s.readiness,
				StartupProbe:    s.startup,
				VolumeMounts:    mounts,
			}},
			HostNetwork:       true,
			PriorityClassName: systemNodeCriticalClass,
			Priority:          &prio,
			SecurityContext: &corev1.PodSecurityContext{
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Volumes: volumes,
		},
	}, nil
}

// namedInputs returns, as Files in the order of the command, the inputs whose path a
// flag of command names ("--tls-cert-file=/etc/kubernetes/pki/apiserver.crt").
func namedInputs(command []string, inputs map[string]string) []File {
	var files []File
	for _, arg := range command {
		_, v, ok := strings.Cut(arg, "=")
		if fp, in := inputs[v]; ok && in && !slices.ContainsFunc(files, func(f File) bool { return f.Path == v }) {
			files = append(files, File{Path: v, Data: []byte(fp)})
		}
	}
	return files
}

// InputFingerprint is the fingerprint of a certificate or kubeconfig file's content, for
// Params.Inputs: "sha256:" and the hex SHA-256. It reveals nothing of the content.
func InputFingerprint(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func requests(cpu, memory string) corev1.ResourceList {
	r := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}
	if memory != "" {
		r[corev1.ResourceMemory] = resource.MustParse(memory)
	}
	return r
}

// Probe kinds, with kubeadm's thresholds.
type probeKind int

const (
	liveness probeKind = iota
	readiness
	startup
)

func httpProbe(kind probeKind, scheme corev1.URIScheme, host string, port int32, urlPath string) *corev1.Probe {
	p := &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Host:   host,
			Path:   urlPath,
			Port:   intstr.FromInt32(port),
			Scheme: scheme,
		}},
		TimeoutSeconds: 15,
	}
	switch kind {
	case liveness:
		p.InitialDelaySeconds, p.PeriodSeconds, p.FailureThreshold = 10, 10, 8
	case readiness:
		p.PeriodSeconds, p.FailureThreshold = 1, 3
	case startup:
		p.InitialDelaySeconds, p.PeriodSeconds, p.FailureThreshold = 10, 10, 24
	}
	return p
}
