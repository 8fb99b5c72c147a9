package addons

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientcmdv1 "k8s.io/client-go/tools/clientcmd/api/v1"
	componentbasev1alpha1 "k8s.io/component-base/config/v1alpha1"
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/kforge/kforge/config"
)

// Names and paths of the kube-proxy add-on, as kubeadm lays them out.
const (
	kubeProxyName = "kube-proxy"
	// KubeProxyNodeProxierBinding binds the kube-proxy service account to system:node-proxier.
	KubeProxyNodeProxierBinding = "kubeadm:node-proxier"

	kubeProxyConfigDir        = "/var/lib/kube-proxy"
	kubeProxyConfigKey        = "config.conf"
	kubeProxyKubeconfigKey    = "kubeconfig.conf"
	kubeProxyBinary           = "/usr/local/bin/kube-proxy"
	serviceAccountDir         = "/var/run/secrets/kubernetes.io/serviceaccount"
	kubeProxyHealthzPort      = "10256"
	kubeProxyMetricsPort      = "10249"
	kubeProxyKubeconfigInPod  = kubeProxyConfigDir + "/" + kubeProxyKubeconfigKey
	kubeProxyConfigFileInPod  = kubeProxyConfigDir + "/" + kubeProxyConfigKey
	kubeProxyConfigVolumeName = "kube-proxy"
)

// KubeProxyObjects builds the kube-proxy add-on: its service account and RBAC, the
// ConfigMap with its configuration and in-cluster kubeconfig, and the DaemonSet.
func KubeProxyObjects(c *config.Cluster) ([]Object, error) {
	cfg, err := KubeProxyConfig(c)
	if err != nil {
		return nil, err
	}
	cfgYAML, err := encodeComponentConfig(cfg, &kubeproxyv1alpha1.KubeProxyConfiguration{})
	if err != nil {
		return nil, fmt.Errorf("encoding the kube-proxy configuration: %w", err)
	}
	kubeconfig, err := kubeProxyKubeconfig(c)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{"k8s-app": kubeProxyName}
	cm := &corev1.ConfigMap{
		TypeMeta:   typeConfigMap,
		ObjectMeta: metav1.ObjectMeta{Name: kubeProxyName, Namespace: kubeSystem, Labels: map[string]string{"app": kubeProxyName}},
		Data: map[string]string{
			kubeProxyConfigKey:     string(cfgYAML),
			kubeProxyKubeconfigKey: string(kubeconfig),
		},
	}
	ds := kubeProxyDaemonSet(c, labels)
	rollOnChange(&ds.Spec.Template, cm)

	return markManaged([]Object{
		serviceAccount(kubeSystem, kubeProxyName, nil),
		clusterRoleBinding(KubeProxyNodeProxierBinding, "system:node-proxier", nil,
			serviceAccountSubject(kubeSystem, kubeProxyName)),
		cm,
		// Nodes joining with a bootstrap token may read the kube-proxy ConfigMap, as
		// kubeadm lets them.
		&rbacv1.Role{
			TypeMeta:   typeRole,
			ObjectMeta: metav1.ObjectMeta{Name: kubeProxyName, Namespace: kubeSystem},
			Rules: []rbacv1.PolicyRule{{
				APIGroups:     []string{""},
				Resources:     []string{"configmaps"},
				ResourceNames: []string{kubeProxyName},
				Verbs:         []string{"get"},
			}},
		},
		&rbacv1.RoleBinding{
			TypeMeta:   typeRoleBinding,
			ObjectMeta: metav1.ObjectMeta{Name: kubeProxyName, Namespace: kubeSystem},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: kubeProxyName},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: bootstrappersGroup}},
		},
		ds,
	}), nil
}

// KubeProxyConfig is the KubeProxyConfiguration kforge writes to the kube-proxy ConfigMap.
// Fields it leaves unset get kube-proxy's own defaults.
func KubeProxyConfig(c *config.Cluster) (*kubeproxyv1alpha1.KubeProxyConfiguration, error) {
	pod, err := netip.ParsePrefix(c.Networking.PodCIDR)
	if err != nil {
		return nil, fmt.Errorf("building the kube-proxy configuration: networking.pod_cidr %q: %w", c.Networking.PodCIDR, err)
	}
	anyAddr, loopback := "0.0.0.0", "127.0.0.1"
	if pod.Addr().Is6() {
		anyAddr, loopback = "::", "::1"
	}
	// Metrics stay on loopback. The health endpoint answers on every address only with
	// security.kube_proxy_local_endpoints off, for load balancers that probe nodes: kube-proxy
	// reads its listen addresses from this one shared file alone (flags are ignored next to
	// --config), so a per-node address cannot be set here, and loopback is the address every
	// node has.
	healthz := anyAddr
	if c.Security.KubeProxyBindsLoopback() {
		healthz = loopback
	}
	return &kubeproxyv1alpha1.KubeProxyConfiguration{
		TypeMeta: metav1.TypeMeta{
			APIVersion: kubeproxyv1alpha1.SchemeGroupVersion.String(),
			Kind:       "KubeProxyConfiguration",
		},
		ClientConnection: componentbasev1alpha1.ClientConnectionConfiguration{
			Kubeconfig: kubeProxyKubeconfigInPod,
		},
		BindAddress:        anyAddr,
		HealthzBindAddress: hostPort(healthz, kubeProxyHealthzPort),
		MetricsBindAddress: hostPort(loopback, kubeProxyMetricsPort),
		Mode:               kubeproxyv1alpha1.ProxyMode(c.Addons.KubeProxy.Mode),
		ClusterCIDR:        pod.Masked().String(),
		Conntrack: kubeproxyv1alpha1.KubeProxyConntrackConfiguration{
			// 0 leaves nf_conntrack_max alone: kube-proxy cannot write it in a container
			// without CAP_SYS_RESOURCE or in a nested network namespace.
			MaxPerCore: ptr.To[int32](0),
		},
	}, nil
}

// hostPort joins an address and a port, bracketing IPv6 addresses.
func hostPort(addr, port string) string {
	if a, err := netip.ParseAddr(addr); err == nil && a.Is6() {
		return "[" + addr + "]:" + port
	}
	return addr + ":" + port
}

// kubeProxyKubeconfig is the in-cluster kubeconfig kube-proxy uses: the control-plane
// endpoint, trusted through the service account's CA bundle and authenticated with its
// token. Pointing at the endpoint rather than the kubernetes Service lets kube-proxy start
// before any Service routing exists.
func kubeProxyKubeconfig(c *config.Cluster) ([]byte, error) {
	if h, _ := c.Endpoint(); h == "" {
		return nil, fmt.Errorf("building the kube-proxy kubeconfig: no control-plane endpoint: set control_plane_endpoint or give a host the %q role", config.RoleControlPlane)
	}
	const name = "default"
	kc := clientcmdv1.Config{
		Kind:       "Config",
		APIVersion: "v1",
		Clusters: []clientcmdv1.NamedCluster{{Name: name, Cluster: clientcmdv1.Cluster{
			Server:               c.EndpointURL(),
			CertificateAuthority: serviceAccountDir + "/ca.crt",
		}}},
		AuthInfos: []clientcmdv1.NamedAuthInfo{{Name: name, AuthInfo: clientcmdv1.AuthInfo{
			TokenFile: serviceAccountDir + "/token",
		}}},
		Contexts: []clientcmdv1.NamedContext{{Name: name, Context: clientcmdv1.Context{
			Cluster: name, AuthInfo: name, Namespace: "default",
		}}},
		CurrentContext: name,
	}
	out, err := yaml.Marshal(kc)
	if err != nil {
		return nil, fmt.Errorf("encoding the kube-proxy kubeconfig: %w", err)
	}
	return out, nil
}

func kubeProxyDaemonSet(c *config.Cluster, labels map[string]string) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		TypeMeta:   typeDaemonSet,
		ObjectMeta: metav1.ObjectMeta{Name: kubeProxyName, Namespace: kubeSystem, Labels: labels},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{
				Type: appsv1.RollingUpdateDaemonSetStrategyType,
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					PriorityClassName:  "system-node-critical",
					HostNetwork:        true,
					ServiceAccountName: kubeProxyName,
					NodeSelector:       linuxOnly(),
					Tolerations:        tolerateEverything,
					Containers: []corev1.Container{{
						Name:            kubeProxyName,
						Image:           c.Image(config.ImageKubeProxy),
						ImagePullPolicy: corev1.PullIfNotPresent,
						Command: []string{
							kubeProxyBinary,
							"--config=" + kubeProxyConfigFileInPod,
							"--hostname-override=$(NODE_NAME)",
						},
						Env:             []corev1.EnvVar{fieldEnv("NODE_NAME", "spec.nodeName")},
						SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
						VolumeMounts: []corev1.VolumeMount{
							{Name: kubeProxyConfigVolumeName, MountPath: kubeProxyConfigDir},
							{Name: "xtables-lock", MountPath: xtablesLock},
							{Name: "lib-modules", MountPath: "/lib/modules", ReadOnly: true},
						},
					}},
					Volumes: []corev1.Volume{
						configMapVolume(kubeProxyConfigVolumeName, kubeProxyName),
						hostPathVolume("xtables-lock", xtablesLock, corev1.HostPathFileOrCreate),
						hostPathVolume("lib-modules", "/lib/modules", ""),
					},
				},
			},
		},
	}
}

// encodeComponentConfig writes a component configuration as YAML holding only the fields
// that differ from zero, the zero value of its type: every unset field is left out so the
// component applies its own default, while a pointer set to a zero value (maxPerCore: 0)
// is kept because it differs from the zero value's null.
func encodeComponentConfig(obj, zero any) ([]byte, error) {
	m, err := toJSONValue(obj)
	if err != nil {
		return nil, err
	}
	z, err := toJSONValue(zero)
	if err != nil {
		return nil, err
	}
	pruned, _ := pruneZero(m, z)
	return yaml.Marshal(pruned)
}

func toJSONValue(v any) (any, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}

// pruneZero drops from v every map entry equal to the same entry of zero, and maps left
// empty by that. It reports whether anything is left.
func pruneZero(v, zero any) (any, bool) {
	vm, ok := v.(map[string]any)
	if !ok {
		return v, !reflect.DeepEqual(v, zero)
	}
	zm, _ := zero.(map[string]any)
	out := map[string]any{}
	for k, val := range vm {
		if p, keep := pruneZero(val, zm[k]); keep {
			out[k] = p
		}
	}
	if len(out) == 0 && zm != nil {
		return out, false
	}
	return out, true
}
