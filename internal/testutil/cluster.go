package testutil

import (
	"testing"

	"github.com/kforge/kforge/config"
)

// Cluster returns a validated cluster.toml with the defaults and these hosts; without
// hosts, two control planes (cp1, cp2) and two workers (w1, w2) in 192.0.2.0/24.
func Cluster(t testing.TB, hosts ...config.Host) *config.Cluster {
	t.Helper()
	if len(hosts) == 0 {
		hosts = []config.Host{
			{Name: "cp1", Address: "192.0.2.10", Roles: []string{config.RoleControlPlane}},
			{Name: "cp2", Address: "192.0.2.11", Roles: []string{config.RoleControlPlane}},
			{Name: "w1", Address: "192.0.2.20", Roles: []string{config.RoleWorker}},
			{Name: "w2", Address: "192.0.2.21", Roles: []string{config.RoleWorker}},
		}
	}
	c := &config.Cluster{Hosts: hosts}
	config.SetDefaults(c)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}
