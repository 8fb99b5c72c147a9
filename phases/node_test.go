package phases

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kforge/kforge/config"
)

func TestSelectNode(t *testing.T) {
	c := &config.Cluster{Hosts: []config.Host{
		{Name: "cp1", Address: "192.0.2.10", Roles: []string{config.RoleControlPlane}},
		{Name: "w1", Address: "192.0.2.20", InternalAddress: "10.0.0.20", Roles: []string{config.RoleWorker}},
	}}
	ips := func(s ...string) []net.IP {
		var out []net.IP
		for _, a := range s {
			out = append(out, net.ParseIP(a))
		}
		return out
	}
	tests := []struct {
		name, node string
		local      []net.IP
		want       string
		wantErr    string
	}{
		{name: "by name", node: "w1", want: "w1"},
		{name: "unknown name", node: "x", wantErr: `--node "x" is not in the file's hosts (cp1, w1)`},
		{name: "by address", local: ips("127.0.0.1", "192.0.2.10"), want: "cp1"},
		{name: "by internal address", local: ips("10.0.0.20"), want: "w1"},
		{name: "no match", local: ips("127.0.0.1"), wantErr: "pass --node NAME"},
		{name: "two matches", local: ips("192.0.2.10", "10.0.0.20"), wantErr: "hosts cp1, w1 all have addresses"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := SelectNode(c, tc.node, tc.local)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("SelectNode error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Name != tc.want {
				t.Errorf("SelectNode = %s, want %s", h.Name, tc.want)
			}
		})
	}
}

func TestDefaultRouteInterface(t *testing.T) {
	table := "Iface\tDestination\tGateway\tFlags\n" +
		"br0\t004D0A0A\t00000000\t0001\n" +
		"eth0\t00000000\t0102A8C0\t0003\n"
	path := filepath.Join(t.TempDir(), "route")
	if err := os.WriteFile(path, []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := defaultRouteInterface(path); got != "eth0" {
		t.Errorf("defaultRouteInterface = %q, want eth0", got)
	}
	if got := defaultRouteInterface(filepath.Join(t.TempDir(), "missing")); got != "" {
		t.Errorf("defaultRouteInterface(missing) = %q, want empty", got)
	}
}
