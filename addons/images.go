package addons

import (
	"slices"

	"github.com/kforge/kforge/config"
)

// ImageSpec says what one add-on image must hold for kforge's manifests to work. The
// air-gap bundle builder reads these to assemble the images itself, so every path a
// container runs or copies from its image is listed here.
type ImageSpec struct {
	// Ref is the full reference the manifests use: "registry.k8s.io/kube-proxy:v1.34.4".
	Ref string
	// Addon is the add-on whose manifests use the image.
	Addon string
	// Entrypoint is the ENTRYPOINT the image must set, for containers that give only args.
	// Empty when every container using the image sets its own command.
	Entrypoint []string
	// Files are absolute paths that must exist in the image: the programs containers run
	// (executable) and the files they copy out of it.
	Files []string
	// Tools are programs the component runs through $PATH at run time. The image must
	// carry them, with their shared libraries, in a directory on PATH and set PATH. The
	// iptables tools must use the same backend (nft or legacy) as the hosts' own.
	Tools []string
}

// iptablesTools are what kube-proxy and flanneld run to program netfilter.
var iptablesTools = []string{
	"iptables", "iptables-save", "iptables-restore",
	"ip6tables", "ip6tables-save", "ip6tables-restore",
}

// Images lists the images of the add-ons c installs, in install order, each once.
func Images(c *config.Cluster) []ImageSpec { return images(c, false) }

// AllImages lists the images of every add-on, installed by c or not: what a bundle that
// serves any configuration must hold.
func AllImages(c *config.Cluster) []ImageSpec { return images(c, true) }

func images(c *config.Cluster, all bool) []ImageSpec {
	var out []ImageSpec
	add := func(s ImageSpec) {
		if !slices.ContainsFunc(out, func(o ImageSpec) bool { return o.Ref == s.Ref }) {
			out = append(out, s)
		}
	}
	for _, a := range All() {
		if _, off := a.Disabled(c); off && !all {
			continue
		}
		for _, s := range addonImages(c, a.Name, all) {
			add(s)
		}
	}
	return out
}

// addonImages lists the images of one add-on. With anyMode, kube-proxy's image carries the
// tools of every proxy mode, so that a bundle serves a cluster whose mode changes later.
func addonImages(c *config.Cluster, addon string, anyMode bool) []ImageSpec {
	switch addon {
	case CoreDNS:
		return []ImageSpec{{
			Ref:        c.Image(config.ImageCoreDNS),
			Addon:      CoreDNS,
			Entrypoint: []string{coreDNSBinary},
			Files:      []string{coreDNSBinary},
		}}
	case KubeProxy:
		modes := []string{c.Addons.KubeProxy.Mode}
		if anyMode {
			modes = config.KubeProxyModes
		}
		return []ImageSpec{{
			Ref:   c.Image(config.ImageKubeProxy),
			Addon: KubeProxy,
			Files: []string{kubeProxyBinary},
			Tools: kubeProxyTools(modes...),
		}}
	case Flannel:
		return []ImageSpec{
			{
				Ref:   c.Image(config.ImageFlannel),
				Addon: Flannel,
				Files: []string{flanneldBinary},
				Tools: slices.Clone(iptablesTools),
			},
			{
				// Both init containers run cp from this image: one copies the plugin out
				// of the image, the other copies the conflist from the mounted ConfigMap.
				Ref:   FlannelCNIPluginImage(c),
				Addon: Flannel,
				Files: []string{cpBinary, flannelCNIPluginSrc},
			},
		}
	}
	return nil
}

// kubeProxyTools lists what kube-proxy runs in any of the proxy modes. The iptables tools
// are in every list: the ipvs mode needs them too, and kube-proxy uses them to clean up
// the rules another mode left behind.
func kubeProxyTools(modes ...string) []string {
	tools := slices.Clone(iptablesTools)
	for _, mode := range modes {
		switch mode {
		case "ipvs":
			tools = append(tools, "ipset")
		case "nftables":
			tools = append(tools, "nft")
		}
	}
	return tools
}
