//go:build integration && linux

package e2e

import "syscall"

// componentProcAttr puts a component in its own process group, and has the kernel kill it
// if the test binary dies without running its cleanups (a SIGKILL, a crash), so that no
// etcd or apiserver is left holding the ports.
func componentProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
