package config

import (
	"fmt"

	toml "github.com/pelletier/go-toml/v2"
)

// Encode renders a defaulted cluster as cluster.toml text that Decode reads back to the
// same value.
func Encode(c *Cluster) ([]byte, error) {
	b, err := toml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encoding the cluster configuration: %w", err)
	}
	return append([]byte("# The cluster configuration kforge init stored; kforge join reads it.\n"), b...), nil
}

// EncodeShared renders what any node may read of a defaulted cluster, as cluster.toml text
// that Decode reads: kforge stores it in the cluster (kube-system/kubeadm-config), where
// every node and every bootstrap token can read it, so that a host can join from the
// cluster's own configuration without a copy of the file.
//
// It keeps the cluster-wide settings and, of each host, only its name, its node address
// (as address) and its roles: what a joining node checks itself against. It leaves out what
// belongs to the operator's machine (how SSH reaches each host, the address it uses, the
// bundle path) and what only one host applies to itself (labels, taints, kubelet extra
// args): a joining host takes its own from its flags.
func EncodeShared(c *Cluster) ([]byte, error) {
	shared := *c
	shared.Bundle = ""
	shared.Hosts = make([]Host, len(c.Hosts))
	for i, h := range c.Hosts {
		shared.Hosts[i] = Host{Name: h.Name, Address: h.NodeIP(), Roles: append([]string(nil), h.Roles...)}
	}
	return Encode(&shared)
}

// EncodeForHosts renders the cluster.toml that `kforge up` installs on every host
// (/etc/kforge/cluster.toml), with the bundle at bundleDir on the host. A host needs every
// node's settings (its own labels, taints and kubelet args among them) but nothing of how
// the operator's machine reaches the hosts: each host's SSH user, port, key, known_hosts
// and bastion are left at their defaults, and its address is its node address.
func EncodeForHosts(c *Cluster, bundleDir string) ([]byte, error) {
	remote := *c
	if remote.Bundle != "" {
		remote.Bundle = bundleDir
	}
	remote.Hosts = make([]Host, len(c.Hosts))
	for i, h := range c.Hosts {
		h.Address, h.InternalAddress = h.NodeIP(), ""
		h.SSH = SSH{User: DefaultSSHUser, Port: DefaultSSHPort}
		remote.Hosts[i] = h
	}
	return Encode(&remote)
}
