//go:build tools

// Package cniflannelbuild lists the flannel CNI plugin the test bundle builds.
package cniflannelbuild

import (
	_ "github.com/containernetworking/plugins/plugins/meta/flannel"
)
