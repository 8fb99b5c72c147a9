// Package addons builds the cluster add-ons kforge installs (kube-proxy, CoreDNS and the
// flannel pod network) as typed Kubernetes API objects. It reads a validated
// *config.Cluster and returns values; applying them to a cluster is the phases' job.
package addons

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/kforge/kforge/config"
)

// Add-on names, as the phases and --skip-phases see them ("addon/coredns").
const (
	CoreDNS   = "coredns"
	KubeProxy = "kube-proxy"
	Flannel   = "flannel"
)

// Object is a typed API object with its TypeMeta set: a *corev1.ConfigMap, an
// *appsv1.DaemonSet, and so on.
type Object interface {
	metav1.Object
	runtime.Object
}

// Addon is one add-on: how to tell whether the cluster wants it and how to build it.
type Addon struct {
	// Name is the kebab-case phase name: "coredns", "kube-proxy", "flannel".
	Name string
	// Title is how progress lines name it: "CoreDNS".
	Title string
	// Disabled reports why c does not install the add-on, if it does not.
	Disabled func(c *config.Cluster) (reason string, disabled bool)
	// Objects builds the add-on's objects in apply order (namespaces first).
	Objects func(c *config.Cluster) ([]Object, error)
}

// All lists the add-ons in install order.
func All() []Addon {
	return []Addon{
		{
			Name:  CoreDNS,
			Title: "CoreDNS",
			Disabled: func(c *config.Cluster) (string, bool) {
				return "addons.dns.disabled is true", c.Addons.DNS.Disabled
			},
			Objects: CoreDNSObjects,
		},
		{
			Name:  KubeProxy,
			Title: "kube-proxy",
			Disabled: func(c *config.Cluster) (string, bool) {
				return "addons.kube_proxy.disabled is true", c.Addons.KubeProxy.Disabled
			},
			Objects: KubeProxyObjects,
		},
		{
			Name:  Flannel,
			Title: "flannel",
			Disabled: func(c *config.Cluster) (string, bool) {
				if c.Addons.CNI.Plugin != config.CNIFlannel {
					return fmt.Sprintf("addons.cni.plugin is %q", c.Addons.CNI.Plugin), true
				}
				return "", false
			},
			Objects: FlannelObjects,
		},
	}
}

// ErrUnknownAddon is returned for an add-on name that is not in All.
var ErrUnknownAddon = errors.New("unknown add-on")

// Lookup returns the add-on called name.
func Lookup(name string) (Addon, error) {
	var names []string
	for _, a := range All() {
		if a.Name == name {
			return a, nil
		}
		names = append(names, a.Name)
	}
	return Addon{}, fmt.Errorf("%w %q; want one of %q", ErrUnknownAddon, name, names)
}

// Objects builds the objects of the add-on called name, whether or not c enables it.
func Objects(c *config.Cluster, name string) ([]Object, error) {
	a, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	return a.Objects(c)
}

// Render writes objects as one YAML stream, "---" between documents, keys sorted and no
// status, so the same objects always render to the same bytes.
func Render(objs []Object) ([]byte, error) {
	var b bytes.Buffer
	for i, o := range objs {
		m, err := ToMap(o)
		if err != nil {
			return nil, err
		}
		y, err := yaml.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("rendering %s: %w", Describe(o), err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(y)
	}
	return b.Bytes(), nil
}

// ToMap encodes o as the generic JSON map the API server would see, without the fields a
// client never sets: status. Numbers stay exact. It fails
// if o's TypeMeta is not set.
func ToMap(o Object) (map[string]any, error) {
	gvk := o.GetObjectKind().GroupVersionKind()
	if gvk.Kind == "" || gvk.Version == "" {
		return nil, fmt.Errorf("encoding %s: apiVersion and kind are not set", Describe(o))
	}
	j, err := json.Marshal(o)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", Describe(o), err)
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("encoding %s: %w", Describe(o), err)
	}
	delete(m, "status")
	return m, nil
}

// Describe names an object for messages: "DaemonSet kube-system/kube-proxy".
func Describe(o Object) string {
	kind := o.GetObjectKind().GroupVersionKind().Kind
	if kind == "" {
		kind = fmt.Sprintf("%T", o)
	}
	if ns := o.GetNamespace(); ns != "" {
		return kind + " " + ns + "/" + o.GetName()
	}
	return kind + " " + o.GetName()
}
