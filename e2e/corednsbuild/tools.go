//go:build tools

// Package corednsbuild lists the CoreDNS command the test bundle builds.
package corednsbuild

import (
	_ "github.com/coredns/coredns"
)
