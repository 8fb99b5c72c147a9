package images

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kforge/kforge/addons"
	"github.com/kforge/kforge/config"
)

// testCluster is the default configuration with one control-plane host, validated.
func testCluster(t *testing.T, edit func(c *config.Cluster)) *config.Cluster {
	t.Helper()
	c := &config.Cluster{Hosts: []config.Host{{Name: "cp1", Address: "10.77.0.11", Roles: []string{config.RoleControlPlane}}}}
	if edit != nil {
		edit(c)
	}
	config.SetDefaults(c)
	if err := c.Validate(); err != nil {
		t.Fatalf("test configuration is invalid: %v", err)
	}
	return c
}

// needHost skips the test unless this machine has what Plan copies from it.
func needHost(t *testing.T) {
	t.Helper()
	needIPTables(t)
	if static, err := IsStatic(BusyboxPath); err != nil || !static {
		t.Skipf("%s is not a static busybox (install busybox-static): %v", BusyboxPath, err)
	}
}

func fakeBin(name string) string { return "/built/" + name }

// specFS is what one image holds, for checks: files and symlinks by path.
type specFS struct {
	files map[string]File
	links map[string]string
}

func fsOf(s Spec) specFS {
	fs := specFS{files: map[string]File{}, links: s.Symlinks}
	for _, f := range s.Files {
		fs.files[f.Dst] = f
	}
	return fs
}

// resolve follows symlinks to a file of the image.
func (fs specFS) resolve(p string) (File, bool) {
	for range 10 {
		if f, ok := fs.files[p]; ok {
			return f, true
		}
		target, ok := fs.links[p]
		if !ok {
			return File{}, false
		}
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(p), target)
		}
		p = target
	}
	return File{}, false
}

// onPath finds a program the way a shell does, through DefaultPath.
func (fs specFS) onPath(tool string) (File, bool) {
	for _, d := range strings.Split(DefaultPath, ":") {
		if f, ok := fs.resolve(path.Join(d, tool)); ok {
			return f, true
		}
	}
	return File{}, false
}

func TestPlanCoversEveryImage(t *testing.T) {
	needHost(t)
	for _, tc := range []struct {
		name string
		edit func(c *config.Cluster)
	}{
		{"defaults", nil},
		{"mirror, add-ons off, host-gw", func(c *config.Cluster) {
			c.ImageRepository = "mirror.example:5000/k8s"
			c.Addons.DNS.Disabled = true
			c.Addons.KubeProxy.Disabled = true
			c.Addons.CNI.FlannelBackend = "host-gw"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testCluster(t, tc.edit)
			specs, err := Plan(c, fakeBin)
			if err != nil {
				t.Fatal(err)
			}
			byRef := map[string]Spec{}
			for _, s := range specs {
				byRef[s.Ref] = s
			}

			// The control plane and pause, at the paths the static pods' commands find.
			for _, want := range []struct {
				ref   string
				files map[string]string // image path: built program
			}{
				{c.Image(config.ImagePause), map[string]string{"/pause": BinPause}},
				{c.Image(config.ImageEtcd), map[string]string{"/usr/local/bin/etcd": BinEtcd, "/usr/local/bin/etcdctl": BinEtcdctl}},
				{c.Image(config.ImageAPIServer), map[string]string{"/usr/local/bin/kube-apiserver": BinKubeAPIServer}},
				{c.Image(config.ImageControllerManager), map[string]string{"/usr/local/bin/kube-controller-manager": BinKubeControllerManager}},
				{c.Image(config.ImageScheduler), map[string]string{"/usr/local/bin/kube-scheduler": BinKubeScheduler}},
			} {
				s, ok := byRef[want.ref]
				if !ok {
					t.Errorf("no image %s", want.ref)
					continue
				}
				fs := fsOf(s)
				for dst, bin := range want.files {
					if f := fs.files[dst]; f.Src != fakeBin(bin) || f.Mode != 0o755 {
						t.Errorf("%s: %s is %+v, want %s mode 0755", want.ref, dst, f, fakeBin(bin))
					}
					if strings.HasPrefix(dst, "/usr/local/bin/") {
						if _, ok := fs.onPath(path.Base(dst)); !ok {
							t.Errorf("%s: %s is not on PATH", want.ref, path.Base(dst))
						}
					}
				}
			}
			if pause := byRef[c.Image(config.ImagePause)]; !slices.Equal(pause.Entrypoint, []string{"/pause"}) {
				t.Errorf("pause entrypoint %q", pause.Entrypoint)
			}

			// Every add-on image, with every file and tool addons says it must hold.
			for _, im := range addons.AllImages(c) {
				s, ok := byRef[im.Ref]
				if !ok {
					t.Errorf("no image %s (add-on %s)", im.Ref, im.Addon)
					continue
				}
				if !slices.Equal(s.Entrypoint, im.Entrypoint) {
					t.Errorf("%s: entrypoint %q, want %q", im.Ref, s.Entrypoint, im.Entrypoint)
				}
				fs := fsOf(s)
				for _, f := range im.Files {
					if got, ok := fs.files[f]; !ok || got.Mode != 0o755 {
						t.Errorf("%s: no executable %s", im.Ref, f)
					}
				}
				for _, tool := range im.Tools {
					f, ok := fs.onPath(tool)
					if !ok {
						t.Errorf("%s: tool %s is not on PATH", im.Ref, tool)
						continue
					}
					if interp, _ := elfInterpreter(f.Src); interp != "" {
						if _, ok := fs.files[interp]; !ok {
							t.Errorf("%s: %s needs %s, which the image lacks", im.Ref, tool, interp)
						}
					}
				}
			}
			if s := byRef[c.Image(config.ImageCoreDNS)]; s.Files[0].Src != fakeBin(BinCoreDNS) {
				t.Errorf("coredns image: %+v", s.Files)
			}
			if fs := fsOf(byRef[addons.FlannelCNIPluginImage(c)]); fs.files["/bin/cp"].Src != BusyboxPath || fs.files["/flannel"].Src != fakeBin(BinFlannelCNI) {
				t.Errorf("flannel CNI plugin image: %+v", fs.files)
			}
			if f := fsOf(byRef[c.Image(config.ImageFlannel)]).files["/opt/bin/flanneld"]; f.Src != fakeBin(BinFlanneld) {
				t.Errorf("flannel image: flanneld is %+v", f)
			}

			// The test image: busybox and its applets.
			test, ok := byRef[TestBusyboxRef]
			if !ok {
				t.Fatalf("no test image %s", TestBusyboxRef)
			}
			fs := fsOf(test)
			for _, a := range []string{"sh", "nc", "nslookup", "wget", "sleep", "httpd", "cat", "echo", "ip", "mkdir", "hostname", "awk", "grep", "printf"} {
				if f, ok := fs.onPath(a); !ok || f.Src != BusyboxPath {
					t.Errorf("test image: %s is not busybox on PATH", a)
				}
			}
			if f, ok := fs.resolve("/bin/sh"); !ok || f.Src != BusyboxPath {
				t.Error("test image: no /bin/sh")
			}

			if len(specs) != len(byRef) {
				t.Errorf("%d specs for %d references", len(specs), len(byRef))
			}
		})
	}
}

func TestBusyboxAppletsExist(t *testing.T) {
	needHost(t)
	out, err := exec.Command(BusyboxPath, "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	have := strings.Fields(string(out))
	for _, a := range BusyboxApplets {
		if !slices.Contains(have, a) {
			t.Errorf("%s has no applet %s", BusyboxPath, a)
		}
	}
}

func TestPlanFailsWithoutSources(t *testing.T) {
	needHost(t)
	old := BusyboxPath
	t.Cleanup(func() { BusyboxPath = old })
	// A dynamically linked program stands for Debian's non-static busybox.
	BusyboxPath = "/bin/sh"
	if static, err := IsStatic(BusyboxPath); err != nil || static {
		t.Skipf("%s is not a dynamically linked program here", BusyboxPath)
	}
	if _, err := Plan(testCluster(t, nil), fakeBin); err == nil || !strings.Contains(err.Error(), "busybox-static") {
		t.Errorf("Plan with a dynamic busybox = %v, want advice to install busybox-static", err)
	}
}

// TestPlanWrites writes every planned image, with small stand-ins for the built programs,
// and reads each back.
func TestPlanWrites(t *testing.T) {
	needHost(t)
	dir := t.TempDir()
	bin := func(name string) string { return filepath.Join(dir, "bin", name) }
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{BinPause, BinEtcd, BinEtcdctl, BinKubeAPIServer, BinKubeControllerManager, BinKubeScheduler, BinKubeProxy, BinCoreDNS, BinFlanneld, BinFlannelCNI} {
		writeFile(t, bin(n), "#!/bin/sh\n# "+n+"\n", 0o755)
	}
	c := testCluster(t, nil)
	specs, err := Plan(c, bin)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range specs {
		out := filepath.Join(dir, "images", strings.NewReplacer("/", "_", ":", "_").Replace(s.Ref)+".tar")
		if err := Write(s, out); err != nil {
			t.Fatal(err)
		}
		cfg, entries, _ := readImage(t, out, s.Ref)
		for _, f := range s.Files {
			if e, ok := entries[strings.TrimPrefix(f.Dst, "/")]; !ok || e.Type != '0' {
				t.Errorf("%s: no file %s in the layer", s.Ref, f.Dst)
			}
		}
		for l, target := range s.Symlinks {
			if e := entries[strings.TrimPrefix(l, "/")]; e.Linkname != target {
				t.Errorf("%s: %s links to %q, want %q", s.Ref, l, e.Linkname, target)
			}
		}
		if !slices.Equal(cfg.Config.Entrypoint, s.Entrypoint) || cfg.Config.Env[0] != "PATH="+DefaultPath {
			t.Errorf("%s: config %+v", s.Ref, cfg.Config)
		}
		if i == 0 && entries["pause"].Content != "#!/bin/sh\n# pause\n" {
			t.Errorf("%s: /pause holds %q", s.Ref, entries["pause"].Content)
		}
	}
}

// TestPlanOtherProxyModes: the nftables and ipvs modes need nft and ipset, copied from
// this machine when it has them.
func TestPlanOtherProxyModes(t *testing.T) {
	needHost(t)
	for mode, tool := range map[string]string{"nftables": "nft", "ipvs": "ipset"} {
		c := testCluster(t, func(c *config.Cluster) { c.Addons.KubeProxy.Mode = mode })
		specs, err := Plan(c, fakeBin)
		if _, lookErr := hostTool(tool); lookErr != nil {
			if err == nil || !strings.Contains(err.Error(), tool+" is not installed") {
				t.Errorf("mode %s without %s on this machine: Plan = %v, want an error naming it", mode, tool, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(specs, func(s Spec) bool { return s.Ref == c.Image(config.ImageKubeProxy) })
		if _, ok := fsOf(specs[i]).onPath(tool); !ok {
			t.Errorf("mode %s: no %s in the kube-proxy image", mode, tool)
		}
	}
}
