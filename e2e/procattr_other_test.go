//go:build integration && !linux

package e2e

import "syscall"

// componentProcAttr puts a component in its own process group. Without Linux's
// Pdeathsig, a test binary killed before its cleanups leaves the components running.
func componentProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
