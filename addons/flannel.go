package addons

import (
	"encoding/json"
	"fmt"
	"net/netip"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kforge/kforge/config"
)

// Names and paths of the flannel add-on, as flannel's own manifests lay them out.
const (
	flannelNamespace = "kube-flannel"
	flannelName      = "flannel"
	flannelConfigMap = "kube-flannel-cfg"
	flannelDaemonSet = "kube-flannel-ds"

	flanneldBinary      = "/opt/bin/flanneld"
	flannelCNIPluginSrc = "/flannel"
	cpBinary            = "/bin/cp"

	flannelConfigDir   = "/etc/kube-flannel"
	flannelCNIConfKey  = "cni-conf.json"
	flannelNetConfKey  = "net-conf.json"
	flannelRunDir      = "/run/flannel"
	cniBinDir          = "/opt/cni/bin"
	cniConfDir         = "/etc/cni/net.d"
	flannelConflist    = "10-flannel.conflist"
	flannelCNIName     = "cbr0"
	flannelCNIVersion  = "0.3.1"
	flannelEventQueue  = "5000"
	flannelCfgVolume   = "flannel-cfg"
	flannelCNIPlugVol  = "cni-plugin"
	flannelCNIConfVol  = "cni"
	flannelRunVolume   = "run"
	flannelXtablesVol  = "xtables-lock"
	privilegedPSALevel = "privileged"
)

// FlannelCNIPluginImage is the image whose init containers install the flannel CNI plugin
// binary and the CNI configuration on each node.
func FlannelCNIPluginImage(c *config.Cluster) string {
	return c.Image(config.ImageFlannelCNIPlugin)
}

// FlannelObjects builds the flannel pod network: its namespace, service account and RBAC,
// the ConfigMap with the CNI and network configuration, and the DaemonSet that runs
// flanneld on every node.
func FlannelObjects(c *config.Cluster) ([]Object, error) {
	cniConf, err := FlannelCNIConfig()
	if err != nil {
		return nil, err
	}
	netConf, err := FlannelNetConfig(c)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{"k8s-app": flannelName, "tier": "node", "app": flannelName}
	cm := &corev1.ConfigMap{
		TypeMeta:   typeConfigMap,
		ObjectMeta: metav1.ObjectMeta{Name: flannelConfigMap, Namespace: flannelNamespace, Labels: labels},
		Data: map[string]string{
			flannelCNIConfKey: string(cniConf),
			flannelNetConfKey: string(netConf),
		},
	}
	ds := flannelDaemonSetObject(c, labels)
	rollOnChange(&ds.Spec.Template, cm)

	return markManaged([]Object{
		&corev1.Namespace{
			TypeMeta: typeNamespace,
			ObjectMeta: metav1.ObjectMeta{
				Name: flannelNamespace,
				// flanneld needs host networking and host paths: Pod Security must allow
				// privileged pods here whatever the cluster's default level is.
				Labels: map[string]string{
					"k8s-app":                            flannelName,
					"pod-security.kubernetes.io/enforce": privilegedPSALevel,
					"pod-security.kubernetes.io/audit":   privilegedPSALevel,
					"pod-security.kubernetes.io/warn":    privilegedPSALevel,
				},
			},
		},
		serviceAccount(flannelNamespace, flannelName, map[string]string{"k8s-app": flannelName}),
		&rbacv1.ClusterRole{
			TypeMeta:   typeClusterRole,
			ObjectMeta: metav1.ObjectMeta{Name: flannelName, Labels: map[string]string{"k8s-app": flannelName}},
			Rules: []rbacv1.PolicyRule{
				// flanneld finds its node through its own pod.
				{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}},
				{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch"}},
				{APIGroups: []string{""}, Resources: []string{"nodes/status"}, Verbs: []string{"patch"}},
			},
		},
		clusterRoleBinding(flannelName, flannelName, map[string]string{"k8s-app": flannelName},
			serviceAccountSubject(flannelNamespace, flannelName)),
		cm,
		ds,
	}), nil
}

// cniConfList is a CNI network configuration list, the file the container runtime reads
// from /etc/cni/net.d.
type cniConfList struct {
	Name       string          `json:"name"`
	CNIVersion string          `json:"cniVersion"`
	Plugins    []cniPluginConf `json:"plugins"`
}

type cniPluginConf struct {
	Type         string              `json:"type"`
	Delegate     *flannelCNIDelegate `json:"delegate,omitempty"`
	Capabilities map[string]bool     `json:"capabilities,omitempty"`
}

// flannelCNIDelegate is what the flannel CNI plugin passes on to the bridge plugin it
// delegates to. IP masquerading is left to the plugin, which turns it on only when
// flanneld does not masquerade itself.
type flannelCNIDelegate struct {
	HairpinMode      bool `json:"hairpinMode"`
	IsDefaultGateway bool `json:"isDefaultGateway"`
}

// FlannelCNIConfig is the conflist the install-cni init container writes to
// /etc/cni/net.d/10-flannel.conflist: the flannel plugin, delegating to a bridge with
// hairpin mode and the default route, chained with portmap for hostPort.
func FlannelCNIConfig() ([]byte, error) {
	conf := cniConfList{
		Name:       flannelCNIName,
		CNIVersion: flannelCNIVersion,
		Plugins: []cniPluginConf{
			{Type: "flannel", Delegate: &flannelCNIDelegate{HairpinMode: true, IsDefaultGateway: true}},
			{Type: "portmap", Capabilities: map[string]bool{"portMappings": true}},
		},
	}
	out, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding the flannel CNI configuration: %w", err)
	}
	return append(out, '\n'), nil
}

// flannelNetConf is flanneld's network configuration (net-conf.json).
type flannelNetConf struct {
	Network     string             `json:"Network,omitempty"`
	IPv6Network string             `json:"IPv6Network,omitempty"`
	EnableIPv4  bool               `json:"EnableIPv4"`
	EnableIPv6  bool               `json:"EnableIPv6"`
	Backend     flannelBackendConf `json:"Backend"`
}

type flannelBackendConf struct {
	Type string `json:"Type"`
}

// FlannelNetConfig is flanneld's net-conf.json: the pod CIDR, in its IP family, and the
// backend from addons.cni.flannel_backend.
func FlannelNetConfig(c *config.Cluster) ([]byte, error) {
	pod, err := netip.ParsePrefix(c.Networking.PodCIDR)
	if err != nil {
		return nil, fmt.Errorf("building the flannel network configuration: networking.pod_cidr %q: %w", c.Networking.PodCIDR, err)
	}
	if c.Addons.CNI.FlannelBackend == "" {
		return nil, fmt.Errorf("building the flannel network configuration: addons.cni.flannel_backend is empty")
	}
	conf := flannelNetConf{Backend: flannelBackendConf{Type: c.Addons.CNI.FlannelBackend}}
	if pod.Addr().Is6() {
		conf.IPv6Network, conf.EnableIPv6 = pod.Masked().String(), true
	} else {
		conf.Network, conf.EnableIPv4 = pod.Masked().String(), true
	}
	out, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding the flannel network configuration: %w", err)
	}
	return append(out, '\n'), nil
}

func flannelDaemonSetObject(c *config.Cluster, labels map[string]string) *appsv1.DaemonSet {
	pluginImage := FlannelCNIPluginImage(c)
	cfgMount := corev1.VolumeMount{Name: flannelCfgVolume, MountPath: flannelConfigDir + "/"}
	return &appsv1.DaemonSet{
		TypeMeta:   typeDaemonSet,
		ObjectMeta: metav1.ObjectMeta{Name: flannelDaemonSet, Namespace: flannelNamespace, Labels: labels},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": flannelName}},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{
				Type: appsv1.RollingUpdateDaemonSetStrategyType,
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					PriorityClassName:  "system-node-critical",
					HostNetwork:        true,
					ServiceAccountName: flannelName,
					NodeSelector:       linuxOnly(),
					Tolerations:        tolerateEverything,
					InitContainers: []corev1.Container{
						{
							// cp -f replaces a plugin binary that is busy running.
							Name:            "install-cni-plugin",
							Image:           pluginImage,
							ImagePullPolicy: corev1.PullIfNotPresent,
							Command:         []string{cpBinary},
							Args:            []string{"-f", flannelCNIPluginSrc, cniBinDir + "/flannel"},
							VolumeMounts:    []corev1.VolumeMount{{Name: flannelCNIPlugVol, MountPath: cniBinDir}},
						},
						{
							Name:            "install-cni",
							Image:           pluginImage,
							ImagePullPolicy: corev1.PullIfNotPresent,
							Command:         []string{cpBinary},
							Args:            []string{"-f", flannelConfigDir + "/" + flannelCNIConfKey, cniConfDir + "/" + flannelConflist},
							VolumeMounts: []corev1.VolumeMount{
								{Name: flannelCNIConfVol, MountPath: cniConfDir},
								cfgMount,
							},
						},
					},
					Containers: []corev1.Container{{
						Name:            "kube-flannel",
						Image:           c.Image(config.ImageFlannel),
						ImagePullPolicy: corev1.PullIfNotPresent,
						// flanneld reads /etc/kube-flannel/net-conf.json and writes
						// /run/flannel/subnet.env, its defaults.
						Command: []string{flanneldBinary},
						// The node's own address picks the interface for inter-host
						// traffic: right on hosts with several interfaces, and on hosts
						// with no default route to guess from.
						Args: []string{"--ip-masq", "--kube-subnet-mgr", "--iface=$(HOST_IP)"},
						Env: []corev1.EnvVar{
							fieldEnv("POD_NAME", "metadata.name"),
							fieldEnv("POD_NAMESPACE", "metadata.namespace"),
							fieldEnv("HOST_IP", "status.hostIP"),
							{Name: "EVENT_QUEUE_DEPTH", Value: flannelEventQueue},
						},
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
							corev1.ResourceCPU:    resource.MustParse("100m"),
							corev1.ResourceMemory: resource.MustParse("50Mi"),
						}},
						SecurityContext: &corev1.SecurityContext{
							Privileged: ptr.To(false),
							Capabilities: &corev1.Capabilities{
								Add: []corev1.Capability{"NET_ADMIN", "NET_RAW"},
							},
						},
						VolumeMounts: []corev1.VolumeMount{
							{Name: flannelRunVolume, MountPath: flannelRunDir},
							cfgMount,
							{Name: flannelXtablesVol, MountPath: xtablesLock},
						},
					}},
					Volumes: []corev1.Volume{
						hostPathVolume(flannelRunVolume, flannelRunDir, corev1.HostPathDirectoryOrCreate),
						hostPathVolume(flannelCNIPlugVol, cniBinDir, corev1.HostPathDirectoryOrCreate),
						hostPathVolume(flannelCNIConfVol, cniConfDir, corev1.HostPathDirectoryOrCreate),
						configMapVolume(flannelCfgVolume, flannelConfigMap),
						hostPathVolume(flannelXtablesVol, xtablesLock, corev1.HostPathFileOrCreate),
					},
				},
			},
		},
	}
}

// FlannelHostFiles lists the files flannel writes on every node (its CNI config and its
// subnet lease): what reset removes of it.
func FlannelHostFiles() []string {
	return []string{cniConfDir + "/" + flannelConflist, flannelRunDir + "/subnet.env"}
}
