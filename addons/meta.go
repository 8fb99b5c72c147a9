package addons

import (
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kforge/kforge/manifests"
)

// Namespaces and well-known names the add-ons use.
const (
	kubeSystem = metav1.NamespaceSystem

	// bootstrappersGroup is the extra group of kubeadm's default node bootstrap tokens.
	bootstrappersGroup = "system:bootstrappers:kubeadm:default-node-token"

	// xtablesLock is the lock file every iptables user on a node shares.
	xtablesLock = "/run/xtables.lock"

	// ManagedByLabel marks every object kforge applies, with the value ManagedByValue.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "kforge"
)

// markManaged labels each object as kforge's. It gives each object a fresh label map, so
// maps shared with selectors and pod templates stay as they were.
func markManaged(objs []Object) []Object {
	for _, o := range objs {
		l := maps.Clone(o.GetLabels())
		if l == nil {
			l = map[string]string{}
		}
		l[ManagedByLabel] = ManagedByValue
		o.SetLabels(l)
	}
	return objs
}

// rollOnChange annotates a workload's pod template with the hash of the ConfigMap its pods
// read at start (manifests.ConfigHashAnnotation): a changed configuration changes the
// template, so the controller replaces the pods, which then read the new one.
func rollOnChange(tmpl *corev1.PodTemplateSpec, cm *corev1.ConfigMap) {
	var files []manifests.File
	for _, k := range slices.Sorted(maps.Keys(cm.Data)) {
		files = append(files, manifests.File{Path: k, Data: []byte(cm.Data[k])})
	}
	a := maps.Clone(tmpl.Annotations)
	if a == nil {
		a = map[string]string{}
	}
	a[manifests.ConfigHashAnnotation] = manifests.ConfigHash(files)
	tmpl.Annotations = a
}

var (
	typeNamespace          = metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}
	typeServiceAccount     = metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}
	typeConfigMap          = metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}
	typeService            = metav1.TypeMeta{APIVersion: "v1", Kind: "Service"}
	typeDeployment         = metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}
	typeDaemonSet          = metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"}
	typeClusterRole        = metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRole"}
	typeClusterRoleBinding = metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRoleBinding"}
	typeRole               = metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "Role"}
	typeRoleBinding        = metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "RoleBinding"}
)

func serviceAccount(ns, name string, labels map[string]string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		TypeMeta:   typeServiceAccount,
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
	}
}

// serviceAccountSubject is the RBAC subject for a service account.
func serviceAccountSubject(ns, name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}
}

func clusterRoleBinding(name, role string, labels map[string]string, subjects ...rbacv1.Subject) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		TypeMeta:   typeClusterRoleBinding,
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   subjects,
	}
}

// hostPathVolume is a hostPath volume; an empty pathType does no checks on the host.
func hostPathVolume(name, path string, pathType corev1.HostPathType) corev1.Volume {
	hp := &corev1.HostPathVolumeSource{Path: path}
	if pathType != "" {
		hp.Type = &pathType
	}
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{HostPath: hp}}
}

func configMapVolume(name, configMap string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
		ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: configMap}},
	}}
}

// tolerateEverything lets a node-level DaemonSet run on every node, whatever its taints.
var tolerateEverything = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}

// linuxOnly is the node selector for pods whose images are linux only.
func linuxOnly() map[string]string {
	return map[string]string{corev1.LabelOSStable: "linux"}
}

// fieldEnv is an environment variable from the pod's own fields ("spec.nodeName").
func fieldEnv(name, fieldPath string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
		FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: fieldPath},
	}}
}
