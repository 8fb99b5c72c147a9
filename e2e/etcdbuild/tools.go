//go:build tools

// Package etcdbuild lists the etcd commands the test bundle builds.
package etcdbuild

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/server/v3"
)
