package config

import (
	"fmt"

	toml "github.com/pelletier/go-toml/v2"
)

// Encode renders a defaulted cluster as cluster.toml text that Decode reads back to the
// same value. kforge stores it in the cluster, so that a host can join from the cluster's
// own configuration without a copy of the file.
func Encode(c *Cluster) ([]byte, error) {
	b, err := toml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encoding the cluster configuration: %w", err)
	}
	return append([]byte("# The cluster configuration kforge init stored; kforge join reads it.\n"), b...), nil
}
