package images

import (
	"fmt"
	"path"
	"slices"

	"github.com/kforge/kforge/addons"
	"github.com/kforge/kforge/config"
)

// Names of the built programs Plan asks its bin function for.
const (
	BinPause                 = "pause"
	BinEtcd                  = "etcd"
	BinEtcdctl               = "etcdctl"
	BinKubeAPIServer         = "kube-apiserver"
	BinKubeControllerManager = "kube-controller-manager"
	BinKubeScheduler         = "kube-scheduler"
	BinKubeProxy             = "kube-proxy"
	BinCoreDNS               = "coredns"
	BinFlanneld              = "flanneld"
	// BinFlannelCNI is the flannel CNI plugin, named as it is installed in /opt/cni/bin.
	BinFlannelCNI = "flannel"
)

// TestBusyboxRef is the image the e2e tests run their pods from.
const TestBusyboxRef = "kforge.test/busybox:1.36"

// BusyboxPath is the static busybox of this machine (Debian's busybox-static) that the
// test image and the flannel CNI plugin image's /bin/cp are copied from.
var BusyboxPath = "/bin/busybox"

// BusyboxApplets are the commands the test image links to busybox in /bin.
var BusyboxApplets = []string{
	"[", "awk", "basename", "cat", "chmod", "cp", "cut", "date", "df", "dirname", "du",
	"echo", "env", "false", "find", "grep", "head", "hostname", "httpd", "id", "ifconfig",
	"ip", "kill", "ln", "ls", "mkdir", "mv", "nc", "netstat", "nslookup", "ping", "printf",
	"ps", "pwd", "readlink", "rm", "route", "sed", "seq", "sh", "sleep", "sort", "stat",
	"tail", "tee", "test", "timeout", "touch", "tr", "true", "uname", "uniq", "wc", "wget",
	"which", "xargs",
}

// controlPlaneDir is where the control-plane images keep their programs: on PATH, which
// the static pods' commands rely on.
const controlPlaneDir = "/usr/local/bin"

// Plan returns the spec of every image a cluster configured like c runs, each under the
// exact reference c's manifests and add-ons use: pause, etcd, the control plane, the
// images of every add-on (addons.AllImages: installed by c or not), and the busybox test
// image. bin returns the path of a built program by name (the Bin* constants).
//
// The add-on images carry the files and tools addons.AllImages lists: programs from bin,
// /bin/cp from BusyboxPath, and the iptables tools (and any other tool) from this
// machine with their libraries; see IPTables and HostBinaryWithLibs.
func Plan(c *config.Cluster, bin func(name string) string) ([]Spec, error) {
	busybox, err := staticBusybox()
	if err != nil {
		return nil, err
	}
	local := func(dir string, names ...string) []File {
		var fs []File
		for _, n := range names {
			fs = append(fs, File{Src: bin(n), Dst: path.Join(dir, n), Mode: 0o755})
		}
		return fs
	}
	specs := []Spec{
		{
			Ref:        c.Image(config.ImagePause),
			Files:      []File{{Src: bin(BinPause), Dst: "/pause", Mode: 0o755}},
			Entrypoint: []string{"/pause"},
		},
		{Ref: c.Image(config.ImageEtcd), Files: local(controlPlaneDir, BinEtcd, BinEtcdctl)},
		{Ref: c.Image(config.ImageAPIServer), Files: local(controlPlaneDir, BinKubeAPIServer)},
		{Ref: c.Image(config.ImageControllerManager), Files: local(controlPlaneDir, BinKubeControllerManager)},
		{Ref: c.Image(config.ImageScheduler), Files: local(controlPlaneDir, BinKubeScheduler)},
	}

	// Where each file an add-on image must hold comes from.
	sources := map[string]string{
		controlPlaneDir + "/kube-proxy": bin(BinKubeProxy),
		"/coredns":                      bin(BinCoreDNS),
		"/opt/bin/flanneld":             bin(BinFlanneld),
		"/flannel":                      bin(BinFlannelCNI),
		"/bin/cp":                       busybox,
	}
	for _, im := range addons.AllImages(c) {
		s := Spec{Ref: im.Ref, Entrypoint: slices.Clone(im.Entrypoint)}
		for _, f := range im.Files {
			src, ok := sources[f]
			if !ok {
				return nil, fmt.Errorf("image %s (add-on %s) must hold %s, and the test bundle has nothing to put there", im.Ref, im.Addon, f)
			}
			s.Files = append(s.Files, File{Src: src, Dst: f, Mode: 0o755})
		}
		if err := addTools(&s, im.Tools); err != nil {
			return nil, fmt.Errorf("image %s (add-on %s): %w", im.Ref, im.Addon, err)
		}
		specs = append(specs, s)
	}

	test := Spec{
		Ref:      TestBusyboxRef,
		Files:    []File{{Src: busybox, Dst: "/bin/busybox", Mode: 0o755}},
		Symlinks: map[string]string{},
		Cmd:      []string{"/bin/sh"},
	}
	for _, a := range BusyboxApplets {
		test.Symlinks["/bin/"+a] = "busybox"
	}
	specs = append(specs, test)

	seen := map[string]bool{}
	for _, s := range specs {
		if seen[s.Ref] {
			return nil, fmt.Errorf("two images would be %s", s.Ref)
		}
		seen[s.Ref] = true
	}
	return specs, nil
}

// addTools puts the programs an add-on runs through PATH into s: this machine's iptables
// for the iptables tools, any other tool from this machine into /usr/sbin.
func addTools(s *Spec, tools []string) error {
	iptables := false
	for _, t := range tools {
		if slices.Contains(IPTablesTools, t) {
			iptables = true
			continue
		}
		p, err := hostTool(t)
		if err != nil {
			return err
		}
		files, err := HostBinaryWithLibs(p)
		if err != nil {
			return err
		}
		files[0].Dst = "/usr/sbin/" + t
		s.Files = mergeFiles(s.Files, files)
	}
	if !iptables {
		return nil
	}
	files, links, _, err := IPTables()
	if err != nil {
		return err
	}
	s.Files = mergeFiles(s.Files, files)
	if s.Symlinks == nil {
		s.Symlinks = map[string]string{}
	}
	for k, v := range links {
		s.Symlinks[k] = v
	}
	return nil
}

// mergeFiles appends the files whose destination is not in fs yet: two tools share
// their libraries.
func mergeFiles(fs, more []File) []File {
	for _, f := range more {
		if !slices.ContainsFunc(fs, func(o File) bool { return o.Dst == f.Dst }) {
			fs = append(fs, f)
		}
	}
	return fs
}

// staticBusybox checks that BusyboxPath is a static busybox, which runs in an image
// without libraries.
func staticBusybox() (string, error) {
	static, err := IsStatic(BusyboxPath)
	if err != nil {
		return "", fmt.Errorf("busybox: %w (install Debian's busybox-static)", err)
	}
	if !static {
		return "", fmt.Errorf("%s is dynamically linked; install Debian's busybox-static", BusyboxPath)
	}
	return BusyboxPath, nil
}
