package config

import (
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// goModCache returns the Go module cache directory.
func goModCache(t *testing.T) string {
	t.Helper()
	if out, err := exec.Command("go", "env", "GOMODCACHE").Output(); err == nil && strings.TrimSpace(string(out)) != "" {
		return strings.TrimSpace(string(out))
	}
	return filepath.Join(build.Default.GOPATH, "pkg", "mod")
}

// TestPinsFollowKubeadm checks every supported minor release's etcd, pause and CoreDNS
// pins against the constants of the kubeadm release the table cites, read from that
// release's source in the module cache.
func TestPinsFollowKubeadm(t *testing.T) {
	cache := goModCache(t)
	for _, minor := range SupportedMinors() {
		pins, ok := Pins(minor)
		if !ok {
			t.Fatalf("Pins(%d) not found, but SupportedMinors lists it", minor)
		}
		t.Run(pins.Kubeadm, func(t *testing.T) {
			if m := (&Cluster{KubernetesVersion: pins.Kubeadm}).KubernetesMinor(); m != minor {
				t.Fatalf("the pins of 1.%d cite kubeadm %s, a release of another minor (%d)", minor, pins.Kubeadm, m)
			}
			src := filepath.Join(cache, "k8s.io", "kubernetes@"+pins.Kubeadm, "cmd", "kubeadm", "app", "constants", "constants.go")
			b, err := os.ReadFile(src)
			if os.IsNotExist(err) {
				t.Skipf("kubeadm's source for %s is not in the module cache (%s); "+
					"`cd e2e/kbuild && go mod download k8s.io/kubernetes` fetches it when e2e/kbuild pins that release", pins.Kubeadm, src)
			}
			if err != nil {
				t.Fatal(err)
			}
			constant := func(name string) string {
				t.Helper()
				m := regexp.MustCompile(`(?m)^\s*` + name + `\s*=\s*"([^"]+)"`).FindSubmatch(b)
				if m == nil {
					t.Fatalf("%s: no constant %s", src, name)
				}
				return string(m[1])
			}
			etcdMap := regexp.MustCompile(`(?s)SupportedEtcdVersion = map\[uint8\]string\{(.*?)\}`).FindSubmatch(b)
			if etcdMap == nil {
				t.Fatalf("%s: no SupportedEtcdVersion map", src)
			}
			m := regexp.MustCompile(`(?m)^\s*` + strconv.Itoa(minor) + `:\s*"([^"]+)"`).FindSubmatch(etcdMap[1])
			if m == nil {
				t.Fatalf("%s: SupportedEtcdVersion has no entry for 1.%d", src, minor)
			}
			for _, c := range []struct{ what, got, want string }{
				{"etcd", pins.Etcd, string(m[1])},
				{"pause", pins.Pause, constant("PauseVersion")},
				{"CoreDNS", pins.CoreDNS, constant("CoreDNSVersion")},
			} {
				if c.got != c.want {
					t.Errorf("1.%d pins %s %s; kubeadm %s pins %s (%s)", minor, c.what, c.got, pins.Kubeadm, c.want, src)
				}
			}
		})
	}
}
