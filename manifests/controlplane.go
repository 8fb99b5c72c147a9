package manifests

import (
	"fmt"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/kforge/kforge/config"
)

// APIServer returns the kube-apiserver static pod.
func APIServer(p Params) (*corev1.Pod, error) {
	p, err := p.normalize()
	if err != nil {
		return nil, fmt.Errorf("building %s manifest: %w", NameAPIServer, err)
	}
	pod, err := apiServer(p)
	if err != nil {
		return nil, fmt.Errorf("building %s manifest: %w", NameAPIServer, err)
	}
	return pod, nil
}

func apiServer(p Params) (*corev1.Pod, error) {
	c := p.Cluster
	flags := map[string]string{
		"advertise-address":                  p.AdvertiseAddress,
		"allow-privileged":                   "true",
		"authorization-mode":                 "Node,RBAC",
		"client-ca-file":                     p.cert("ca.crt"),
		"enable-admission-plugins":           "NodeRestriction",
		"enable-bootstrap-token-auth":        "true",
		"kubelet-client-certificate":         p.cert("apiserver-kubelet-client.crt"),
		"kubelet-client-key":                 p.cert("apiserver-kubelet-client.key"),
		"kubelet-preferred-address-types":    "InternalIP,ExternalIP,Hostname",
		"proxy-client-cert-file":             p.cert("front-proxy-client.crt"),
		"proxy-client-key-file":              p.cert("front-proxy-client.key"),
		"requestheader-allowed-names":        "front-proxy-client",
		"requestheader-client-ca-file":       p.cert("front-proxy-ca.crt"),
		"requestheader-extra-headers-prefix": "X-Remote-Extra-",
		"requestheader-group-headers":        "X-Remote-Group",
		"requestheader-username-headers":     "X-Remote-User",
		"secure-port":                        strconv.Itoa(defaultAPIServerPort),
		"service-account-issuer":             "https://kubernetes.default.svc." + c.Networking.DNSDomain,
		"service-account-key-file":           p.cert("sa.pub"),
		"service-account-signing-key-file":   p.cert("sa.key"),
		"service-cluster-ip-range":           c.Networking.ServiceCIDR,
		"tls-cert-file":                      p.cert("apiserver.crt"),
		"tls-private-key-file":               p.cert("apiserver.key"),
	}
	vols := []volume{
		{name: "k8s-certs", hostPath: p.CertDir, readOnly: true, pathType: corev1.HostPathDirectoryOrCreate},
		{name: "ca-certs", hostPath: caCertsDir, readOnly: true, pathType: corev1.HostPathDirectoryOrCreate},
	}

	switch ext := c.Etcd.External; {
	case ext != nil:
		if len(ext.Endpoints) == 0 {
			return nil, fmt.Errorf("external etcd has no endpoints")
		}
		flags["etcd-servers"] = strings.Join(ext.Endpoints, ",")
		var dirs []string
		for _, f := range []struct{ flag, file string }{
			{"etcd-cafile", ext.CAFile}, {"etcd-certfile", ext.CertFile}, {"etcd-keyfile", ext.KeyFile},
		} {
			if f.file == "" {
				continue
			}
			if !path.IsAbs(f.file) {
				return nil, fmt.Errorf("external etcd file %q is not an absolute path", f.file)
			}
			flags[f.flag] = f.file
			if d := path.Dir(path.Clean(f.file)); !within(d, p.CertDir) && !within(d, caCertsDir) && !slices.Contains(dirs, d) {
				dirs = append(dirs, d)
			}
		}
		for i, d := range dirs {
			vols = append(vols, volume{name: "etcd-certs-" + strconv.Itoa(i), hostPath: d, readOnly: true, pathType: corev1.HostPathDirectoryOrCreate})
		}
	default:
		flags["etcd-cafile"] = p.cert("etcd/ca.crt")
		flags["etcd-certfile"] = p.cert("apiserver-etcd-client.crt")
		flags["etcd-keyfile"] = p.cert("apiserver-etcd-client.key")
		flags["etcd-servers"] = "https://" + net.JoinHostPort(p.loopback(), strconv.Itoa(EtcdClientPort))
	}

	if p.VerifyKubelets && c.Kubelet.ServerTLSBootstrap {
		flags["kubelet-certificate-authority"] = p.cert("ca.crt")
	}
	vols = securityFlags(p, flags, vols)
	annotations := map[string]string{}
	files, err := APIServerFiles(p)
	if err != nil {
		return nil, err
	}
	vols, err = withExtraVolumes(vols, c.APIServer.ExtraVolumes)
	if err != nil {
		return nil, err
	}
	final := mergeFlags(flags, c.APIServer.ExtraArgs)
	port, err := portFlag(final, "secure-port", defaultAPIServerPort)
	if err != nil {
		return nil, err
	}
	host := probeHost(final["advertise-address"], p.loopback())
	return pod(podSpec{
		name:        NameAPIServer,
		image:       c.Image(config.ImageAPIServer),
		command:     command("kube-apiserver", flags, c.APIServer.ExtraArgs),
		requests:    requests("250m", ""),
		liveness:    httpProbe(liveness, corev1.URISchemeHTTPS, host, port, "/livez"),
		readiness:   httpProbe(readiness, corev1.URISchemeHTTPS, host, port, "/readyz"),
		startup:     httpProbe(startup, corev1.URISchemeHTTPS, host, port, "/livez"),
		volumes:     vols,
		annotations: withAnnotation(annotations, APIServerEndpointAnnotation, net.JoinHostPort(host, strconv.Itoa(int(port)))),
		files:       files,
		inputs:      p.Inputs,
	})
}

// withAnnotation sets k to v in m and returns m.
func withAnnotation(m map[string]string, k, v string) map[string]string {
	m[k] = v
	return m
}

// ControllerManager returns the kube-controller-manager static pod.
func ControllerManager(p Params) (*corev1.Pod, error) {
	p, err := p.normalize()
	if err != nil {
		return nil, fmt.Errorf("building %s manifest: %w", NameControllerManager, err)
	}
	pod, err := controllerManager(p)
	if err != nil {
		return nil, fmt.Errorf("building %s manifest: %w", NameControllerManager, err)
	}
	return pod, nil
}

func controllerManager(p Params) (*corev1.Pod, error) {
	c := p.Cluster
	kubeconfig := path.Join(p.KubeconfigDir, controllerManagerConfFile)
	flags := map[string]string{
		"authentication-kubeconfig":        kubeconfig,
		"authorization-kubeconfig":         kubeconfig,
		"bind-address":                     "127.0.0.1",
		"client-ca-file":                   p.cert("ca.crt"),
		"cluster-name":                     c.Name,
		"controllers":                      "*,bootstrapsigner,tokencleaner",
		"kubeconfig":                       kubeconfig,
		"leader-elect":                     "true",
		"requestheader-client-ca-file":     p.cert("front-proxy-ca.crt"),
		"root-ca-file":                     p.cert("ca.crt"),
		"service-account-private-key-file": p.cert("sa.key"),
		"use-service-account-credentials":  "true",
	}
	if !p.ExternalCA {
		flags["cluster-signing-cert-file"] = p.cert("ca.crt")
		flags["cluster-signing-key-file"] = p.cert("ca.key")
	}
	profilingFlag(c, flags)
	if c.Networking.PodCIDR != "" {
		flags["allocate-node-cidrs"] = "true"
		flags["cluster-cidr"] = c.Networking.PodCIDR
		flags["service-cluster-ip-range"] = c.Networking.ServiceCIDR
	}
	vols, err := withExtraVolumes([]volume{
		{name: "k8s-certs", hostPath: p.CertDir, readOnly: true, pathType: corev1.HostPathDirectoryOrCreate},
		{name: "ca-certs", hostPath: caCertsDir, readOnly: true, pathType: corev1.HostPathDirectoryOrCreate},
		{name: "kubeconfig", hostPath: kubeconfig, readOnly: true, pathType: corev1.HostPathFile},
		{name: "flexvolume-dir", hostPath: flexVolumeDir, pathType: corev1.HostPathDirectoryOrCreate},
	}, c.ControllerManager.ExtraVolumes)
	if err != nil {
		return nil, err
	}
	final := mergeFlags(flags, c.ControllerManager.ExtraArgs)
	port, err := portFlag(final, "secure-port", ControllerManagerPort)
	if err != nil {
		return nil, err
	}
	host := probeHost(final["bind-address"], "127.0.0.1")
	return pod(podSpec{
		name:     NameControllerManager,
		image:    c.Image(config.ImageControllerManager),
		command:  command("kube-controller-manager", flags, c.ControllerManager.ExtraArgs),
		requests: requests("200m", ""),
		liveness: httpProbe(liveness, corev1.URISchemeHTTPS, host, port, "/healthz"),
		startup:  httpProbe(startup, corev1.URISchemeHTTPS, host, port, "/healthz"),
		volumes:  vols,
		inputs:   p.Inputs,
	})
}

// Scheduler returns the kube-scheduler static pod.
func Scheduler(p Params) (*corev1.Pod, error) {
	p, err := p.normalize()
	if err != nil {
		return nil, fmt.Errorf("building %s manifest: %w", NameScheduler, err)
	}
	pod, err := scheduler(p)
	if err != nil {
		return nil, fmt.Errorf("building %s manifest: %w", NameScheduler, err)
	}
	return pod, nil
}

func scheduler(p Params) (*corev1.Pod, error) {
	c := p.Cluster
	kubeconfig := path.Join(p.KubeconfigDir, schedulerConfFile)
	flags := map[string]string{
		"authentication-kubeconfig": kubeconfig,
		"authorization-kubeconfig":  kubeconfig,
		"bind-address":              "127.0.0.1",
		"kubeconfig":                kubeconfig,
		"leader-elect":              "true",
	}
	profilingFlag(c, flags)
	vols, err := withExtraVolumes([]volume{
		{name: "kubeconfig", hostPath: kubeconfig, readOnly: true, pathType: corev1.HostPathFile},
	}, c.Scheduler.ExtraVolumes)
	if err != nil {
		return nil, err
	}
	final := mergeFlags(flags, c.Scheduler.ExtraArgs)
	port, err := portFlag(final, "secure-port", SchedulerPort)
	if err != nil {
		return nil, err
	}
	host := probeHost(final["bind-address"], "127.0.0.1")
	return pod(podSpec{
		name:      NameScheduler,
		image:     c.Image(config.ImageScheduler),
		command:   command("kube-scheduler", flags, c.Scheduler.ExtraArgs),
		requests:  requests("100m", ""),
		liveness:  httpProbe(liveness, corev1.URISchemeHTTPS, host, port, "/livez"),
		readiness: httpProbe(readiness, corev1.URISchemeHTTPS, host, port, "/readyz"),
		startup:   httpProbe(startup, corev1.URISchemeHTTPS, host, port, "/livez"),
		volumes:   vols,
		inputs:    p.Inputs,
	})
}

// within reports whether dir is root or below it.
func within(dir, root string) bool {
	return dir == root || strings.HasPrefix(dir, strings.TrimSuffix(root, "/")+"/")
}
