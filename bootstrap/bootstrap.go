// Package bootstrap builds the API objects that let nodes join a kforge control plane the
// way they join a kubeadm one: the kubeadm-config and kubelet-config ConfigMaps, bootstrap
// token Secrets, cluster-info and its JWS check, the sealed kubeadm-certs Secret, the
// control-plane node marks, and the RBAC that joining relies on. It takes values and returns
// objects; it reads no files and talks to no apiserver.
package bootstrap

import (
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"

	"github.com/kforge/kforge/tokens"
)

// Namespaces and object names of the bootstrap contract.
const (
	NamespaceSystem = metav1.NamespaceSystem
	NamespacePublic = metav1.NamespacePublic

	// KubeadmConfigName is the ConfigMap holding the ClusterConfiguration under
	// ClusterConfigurationKey.
	KubeadmConfigName       = "kubeadm-config"
	ClusterConfigurationKey = "ClusterConfiguration"
	// KubeletConfigName is the ConfigMap holding the cluster's KubeletConfiguration under
	// KubeletConfigKey.
	KubeletConfigName = "kubelet-config"
	KubeletConfigKey  = "kubelet"
	// ClusterInfoName is the kube-public ConfigMap discovery reads.
	ClusterInfoName = bootstrapapi.ConfigMapClusterInfo
	// CertsSecretName is the Secret holding the sealed shared control-plane certificates.
	CertsSecretName = "kubeadm-certs"
)

// Users, groups and roles the RBAC refers to.
const (
	// BootstrappersGroup is the group of the default join token.
	BootstrappersGroup = tokens.DefaultNodeGroup
	// NodesGroup is the group of every kubelet's client certificate.
	NodesGroup = "system:nodes"
	// AnonymousUser is who discovery reads cluster-info as.
	AnonymousUser = "system:anonymous"
	// ClusterAdminsGroup is admin.conf's group, bound to cluster-admin.
	ClusterAdminsGroup = "kubeadm:cluster-admins"

	NodesKubeadmConfigRole    = "kubeadm:nodes-kubeadm-config"
	KubeletConfigRole         = "kubeadm:kubelet-config"
	ClusterAdminsBindingName  = "kubeadm:cluster-admins"
	KubeletBootstrapBinding   = "kubeadm:kubelet-bootstrap"
	NodeAutoApproveBinding    = "kubeadm:node-autoapprove-bootstrap"
	NodeAutoRotateBinding     = "kubeadm:node-autoapprove-certificate-rotation"
	GetNodesRole              = "kubeadm:get-nodes"
	ClusterInfoRole           = "kubeadm:bootstrap-signer-clusterinfo"
	CertsRole                 = "kubeadm:kubeadm-certs"
	nodeBootstrapperRole      = "system:node-bootstrapper"
	nodeClientApproverRole    = "system:certificates.k8s.io:certificatesigningrequests:nodeclient"
	selfNodeClientApproveRole = "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient"
)

// KubeadmConfigRBAC returns the Role and RoleBinding kubeadm:nodes-kubeadm-config that let
// joining nodes and kubelets read the kubeadm-config ConfigMap.
func KubeadmConfigRBAC() []runtime.Object {
	return readOneRBAC(NamespaceSystem, NodesKubeadmConfigRole, "configmaps", KubeadmConfigName,
		group(BootstrappersGroup), group(NodesGroup))
}

// KubeletConfigRBAC returns the Role and RoleBinding kubeadm:kubelet-config that let
// joining nodes and kubelets read the kubelet-config ConfigMap.
func KubeletConfigRBAC() []runtime.Object {
	return readOneRBAC(NamespaceSystem, KubeletConfigRole, "configmaps", KubeletConfigName,
		group(BootstrappersGroup), group(NodesGroup))
}

// ClusterInfoRBAC returns the kube-public Role and RoleBinding
// kubeadm:bootstrap-signer-clusterinfo that let anonymous discovery read cluster-info.
func ClusterInfoRBAC() []runtime.Object {
	return readOneRBAC(NamespacePublic, ClusterInfoRole, "configmaps", ClusterInfoName, user(AnonymousUser))
}

// CertsRBAC returns the Role and RoleBinding kubeadm:kubeadm-certs that let joining
// control-plane nodes read the kubeadm-certs Secret (still sealed with the certificate key).
func CertsRBAC() []runtime.Object {
	return readOneRBAC(NamespaceSystem, CertsRole, "secrets", CertsSecretName, group(BootstrappersGroup))
}

// ClusterAdminsBinding is the ClusterRoleBinding kubeadm:cluster-admins that makes
// admin.conf's group cluster-admin. Only a system:masters client (super-admin.conf) can
// create it, and admin.conf is powerless until it exists.
func ClusterAdminsBinding() *rbacv1.ClusterRoleBinding {
	return clusterRoleBinding(ClusterAdminsBindingName, "cluster-admin", group(ClusterAdminsGroup))
}

// NodeJoinRBAC returns the cluster-wide RBAC the TLS bootstrap of joining kubelets relies
// on: the default token's group may create CSRs and have node client certificates
// auto-approved, nodes may renew their own, and the token may read Nodes (join checks that
// its node name is free).
func NodeJoinRBAC() []runtime.Object {
	return []runtime.Object{
		clusterRoleBinding(KubeletBootstrapBinding, nodeBootstrapperRole, group(BootstrappersGroup)),
		clusterRoleBinding(NodeAutoApproveBinding, nodeClientApproverRole, group(BootstrappersGroup)),
		clusterRoleBinding(NodeAutoRotateBinding, selfNodeClientApproveRole, group(NodesGroup)),
		&rbacv1.ClusterRole{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRole"},
			ObjectMeta: metav1.ObjectMeta{Name: GetNodesRole},
			Rules: []rbacv1.PolicyRule{{
				APIGroups: []string{""},
				Resources: []string{"nodes"},
				Verbs:     []string{"get"},
			}},
		},
		clusterRoleBinding(GetNodesRole, GetNodesRole, group(BootstrappersGroup)),
	}
}

// readOneRBAC is a Role allowed to get one named object, and its RoleBinding of the same
// name.
func readOneRBAC(ns, name, resource, objectName string, subjects ...rbacv1.Subject) []runtime.Object {
	return []runtime.Object{
		&rbacv1.Role{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "Role"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Rules: []rbacv1.PolicyRule{{
				APIGroups:     []string{""},
				Resources:     []string{resource},
				ResourceNames: []string{objectName},
				Verbs:         []string{"get"},
			}},
		},
		&rbacv1.RoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "RoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
			Subjects:   subjects,
		},
	}
}

func clusterRoleBinding(name, role string, subjects ...rbacv1.Subject) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   subjects,
	}
}

func group(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: name}
}

func user(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}
}

// The environment variables kforge init and join read their secrets from when the flags
// are not given, so that they stay out of process listings and shell history; kforge up
// sets them for the kforge it runs on a host (sent on stdin). kforge unsets them at startup.
const (
	EnvToken          = "KFORGE_TOKEN"
	EnvCertificateKey = "KFORGE_CERTIFICATE_KEY"
)
