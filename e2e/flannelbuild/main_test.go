package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFlagsFromEnv(t *testing.T) {
	var o options
	fs := newFlagSet(&o)
	if err := fs.Parse([]string{"--kube-subnet-mgr", "--iface=eth0"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"FLANNELD_IP_MASQ":         "true",
		"FLANNELD_IFACE":           "eth9", // given on the command line: ignored
		"FLANNELD_IPTABLES_RESYNC": "9",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := flagsFromEnv(fs, lookup); err != nil {
		t.Fatal(err)
	}
	if !o.kubeSubnetMgr || !o.ipMasq || o.iptablesResyncSeconds != 9 || len(o.ifaces) != 1 || o.ifaces[0] != "eth0" {
		t.Errorf("options = %+v", o)
	}
	env["FLANNELD_HEALTHZ_PORT"] = "x"
	if err := flagsFromEnv(newFlagSet(&options{}), lookup); err == nil {
		t.Error("a bad FLANNELD_HEALTHZ_PORT was accepted")
	}
}

func TestReadSubnetFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "subnet.env")
	data := "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_IPV6_SUBNET=fd00:10:244:3::1/64\nFLANNEL_MTU=1450\n"
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	s := readSubnetFile(p)
	if got := s.ip4("FLANNEL_SUBNET").String(); got != "10.244.3.0/24" {
		t.Errorf("FLANNEL_SUBNET = %s", got)
	}
	if got := s.ip4("FLANNEL_NETWORK").String(); got != "10.244.0.0/16" {
		t.Errorf("FLANNEL_NETWORK = %s", got)
	}
	if got := s.ip6("FLANNEL_IPV6_SUBNET").String(); got != "fd00:10:244:3::/64" {
		t.Errorf("FLANNEL_IPV6_SUBNET = %s", got)
	}
	if !s.ip4("FLANNEL_IPV6_NETWORK").Empty() || s.ip6("FLANNEL_SUBNET").PrefixLen != 0 {
		t.Error("a missing or wrong-family key gave a network")
	}
	if len(readSubnetFile(filepath.Join(t.TempDir(), "none"))) != 0 {
		t.Error("a missing file gave values")
	}
}
