package addons

import (
	"fmt"
	"net/netip"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/kforge/kforge/config"
)

// Names, ports and paths of the CoreDNS add-on. The Deployment, Service and labels keep
// kubeadm's names ("kube-dns") so tools that look for them find them.
const (
	coreDNSName        = "coredns"
	coreDNSClusterRole = "system:coredns"
	// KubeDNSService is the name of the cluster DNS Service.
	KubeDNSService = "kube-dns"
	// DNSServiceIndex is the DNS Service's address number in the service CIDR.
	DNSServiceIndex = 10

	coreDNSBinary      = "/coredns"
	coreDNSConfigDir   = "/etc/coredns"
	coreDNSCorefileKey = "Corefile"
	coreDNSHealthPort  = 8080
	coreDNSReadyPort   = 8181
	coreDNSMetricsPort = 9153
	dnsPort            = 53
	// hostResolvConf is what CoreDNS forwards to when no upstreams are configured: with
	// dnsPolicy Default the pod sees its node's resolv.conf there.
	hostResolvConf = "/etc/resolv.conf"
)

// CoreDNSObjects builds the CoreDNS add-on: its service account and RBAC, the Corefile
// ConfigMap, the Deployment and the kube-dns Service.
func CoreDNSObjects(c *config.Cluster) ([]Object, error) {
	corefile, err := Corefile(c)
	if err != nil {
		return nil, err
	}
	ip, err := c.ServiceIP(DNSServiceIndex)
	if err != nil {
		return nil, fmt.Errorf("choosing the DNS service address: %w", err)
	}
	labels := map[string]string{"k8s-app": KubeDNSService}
	cm := &corev1.ConfigMap{
		TypeMeta:   typeConfigMap,
		ObjectMeta: metav1.ObjectMeta{Name: coreDNSName, Namespace: kubeSystem},
		Data:       map[string]string{coreDNSCorefileKey: corefile},
	}
	dep := coreDNSDeployment(c, labels)
	rollOnChange(&dep.Spec.Template, cm)

	return markManaged([]Object{
		serviceAccount(kubeSystem, coreDNSName, nil),
		&rbacv1.ClusterRole{
			TypeMeta:   typeClusterRole,
			ObjectMeta: metav1.ObjectMeta{Name: coreDNSClusterRole},
			Rules: []rbacv1.PolicyRule{
				{
					APIGroups: []string{""},
					Resources: []string{"endpoints", "services", "pods", "namespaces"},
					Verbs:     []string{"list", "watch"},
				},
				{
					APIGroups: []string{"discovery.k8s.io"},
					Resources: []string{"endpointslices"},
					Verbs:     []string{"list", "watch"},
				},
			},
		},
		clusterRoleBinding(coreDNSClusterRole, coreDNSClusterRole, nil, serviceAccountSubject(kubeSystem, coreDNSName)),
		cm,
		dep,
		&corev1.Service{
			TypeMeta: typeService,
			ObjectMeta: metav1.ObjectMeta{
				Name:      KubeDNSService,
				Namespace: kubeSystem,
				Labels: map[string]string{
					"k8s-app":                       KubeDNSService,
					"kubernetes.io/cluster-service": "true",
					"kubernetes.io/name":            "CoreDNS",
				},
				Annotations: map[string]string{
					"prometheus.io/port":   fmt.Sprint(coreDNSMetricsPort),
					"prometheus.io/scrape": "true",
				},
			},
			Spec: corev1.ServiceSpec{
				Type:      corev1.ServiceTypeClusterIP,
				ClusterIP: ip.String(),
				Selector:  labels,
				// Protocol is always explicit: it is part of the port list's merge key, and
				// server-side apply rejects a port without it.
				Ports: []corev1.ServicePort{
					{Name: "dns", Port: dnsPort, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(dnsPort)},
					{Name: "dns-tcp", Port: dnsPort, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(dnsPort)},
					{Name: "metrics", Port: coreDNSMetricsPort, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(coreDNSMetricsPort)},
				},
			},
		},
	}), nil
}

// Corefile is CoreDNS's configuration: the cluster zone from the Kubernetes API, and every
// other name forwarded to the configured upstreams (or the node's resolv.conf).
func Corefile(c *config.Cluster) (string, error) {
	ups, err := Upstreams(c)
	if err != nil {
		return "", err
	}
	domain := c.Networking.DNSDomain
	if domain == "" {
		return "", fmt.Errorf("building the Corefile: networking.dns_domain is empty")
	}
	var b strings.Builder
	line := func(depth int, format string, args ...any) {
		b.WriteString(strings.Repeat("    ", depth))
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}
	line(0, ".:%d {", dnsPort)
	line(1, "errors")
	line(1, "health :%d {", coreDNSHealthPort)
	line(2, "lameduck 5s")
	line(1, "}")
	line(1, "ready :%d", coreDNSReadyPort)
	line(1, "kubernetes %s in-addr.arpa ip6.arpa {", domain)
	line(2, "pods insecure")
	line(2, "fallthrough in-addr.arpa ip6.arpa")
	line(2, "ttl 30")
	line(1, "}")
	line(1, "prometheus :%d", coreDNSMetricsPort)
	line(1, "forward . %s {", strings.Join(ups, " "))
	line(2, "max_concurrent 1000")
	line(1, "}")
	line(1, "cache 30")
	line(1, "loop")
	line(1, "reload")
	line(1, "loadbalance")
	line(0, "}")
	return b.String(), nil
}

// Upstreams lists what CoreDNS forwards non-cluster names to, in the form its forward
// plugin reads: addons.dns.upstreams, each "IP" or "IP:port" written canonically, or the
// node's /etc/resolv.conf when none are set.
func Upstreams(c *config.Cluster) ([]string, error) {
	if len(c.Addons.DNS.Upstreams) == 0 {
		return []string{hostResolvConf}, nil
	}
	out := make([]string, 0, len(c.Addons.DNS.Upstreams))
	for i, u := range c.Addons.DNS.Upstreams {
		if a, err := netip.ParseAddr(u); err == nil && a.Zone() == "" {
			out = append(out, a.String())
			continue
		}
		ap, err := netip.ParseAddrPort(u)
		if err != nil || ap.Addr().Zone() != "" || ap.Port() == 0 {
			return nil, fmt.Errorf("addons.dns.upstreams[%d] %q is not an IP address or IP:port", i, u)
		}
		out = append(out, ap.String())
	}
	return out, nil
}

func coreDNSDeployment(c *config.Cluster, labels map[string]string) *appsv1.Deployment {
	maxUnavailable := intstr.FromInt32(1)
	return &appsv1.Deployment{
		TypeMeta:   typeDeployment,
		ObjectMeta: metav1.ObjectMeta{Name: coreDNSName, Namespace: kubeSystem, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(c.Addons.DNS.Replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &maxUnavailable},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					PriorityClassName:  "system-cluster-critical",
					ServiceAccountName: coreDNSName,
					// Default: CoreDNS resolves through its node, not through itself.
					DNSPolicy:    corev1.DNSDefault,
					NodeSelector: linuxOnly(),
					Tolerations: []corev1.Toleration{
						{Key: "CriticalAddonsOnly", Operator: corev1.TolerationOpExists},
						{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
					},
					// Spread the replicas over nodes when there is room.
					Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
						PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
							Weight: 100,
							PodAffinityTerm: corev1.PodAffinityTerm{
								LabelSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
									Key: "k8s-app", Operator: metav1.LabelSelectorOpIn, Values: []string{KubeDNSService},
								}}},
								TopologyKey: corev1.LabelHostname,
							},
						}},
					}},
					Containers: []corev1.Container{{
						Name:            coreDNSName,
						Image:           c.Image(config.ImageCoreDNS),
						ImagePullPolicy: corev1.PullIfNotPresent,
						// The image's entrypoint is the coredns binary.
						Args: []string{"-conf", coreDNSConfigDir + "/" + coreDNSCorefileKey},
						Resources: corev1.ResourceRequirements{
							Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("170Mi")},
							Requests: corev1.ResourceList{
								corev1.ResourceCPU:    resource.MustParse("100m"),
								corev1.ResourceMemory: resource.MustParse("70Mi"),
							},
						},
						VolumeMounts: []corev1.VolumeMount{{Name: "config-volume", MountPath: coreDNSConfigDir, ReadOnly: true}},
						Ports: []corev1.ContainerPort{
							{Name: "dns", ContainerPort: dnsPort, Protocol: corev1.ProtocolUDP},
							{Name: "dns-tcp", ContainerPort: dnsPort, Protocol: corev1.ProtocolTCP},
							{Name: "metrics", ContainerPort: coreDNSMetricsPort, Protocol: corev1.ProtocolTCP},
						},
						LivenessProbe: &corev1.Probe{
							ProbeHandler:        httpGet("/health", coreDNSHealthPort),
							InitialDelaySeconds: 60,
							TimeoutSeconds:      5,
							SuccessThreshold:    1,
							FailureThreshold:    5,
						},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:     httpGet("/ready", coreDNSReadyPort),
							TimeoutSeconds:   1,
							PeriodSeconds:    10,
							SuccessThreshold: 1,
							FailureThreshold: 3,
						},
						// Port 53 without root: only NET_BIND_SERVICE, nothing else.
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false),
							Capabilities: &corev1.Capabilities{
								Add:  []corev1.Capability{"NET_BIND_SERVICE"},
								Drop: []corev1.Capability{"ALL"},
							},
							ReadOnlyRootFilesystem: ptr.To(true),
						},
					}},
					Volumes: []corev1.Volume{{
						Name: "config-volume",
						VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: coreDNSName},
							Items:                []corev1.KeyToPath{{Key: coreDNSCorefileKey, Path: coreDNSCorefileKey}},
						}},
					}},
				},
			},
		},
	}
}

func httpGet(path string, port int32) corev1.ProbeHandler {
	return corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
		Path: path, Port: intstr.FromInt32(port), Scheme: corev1.URISchemeHTTP,
	}}
}
