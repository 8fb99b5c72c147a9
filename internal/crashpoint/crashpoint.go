//go:build !crashpoints

// Package crashpoint names the moments at which a killed kforge must still converge on
// the next run: between recording a pending restart, writing a service's files and
// restarting it, and between writing a static pod manifest and the kubelet applying it.
//
// In a normal build Here does nothing and costs nothing. Built with the tag crashpoints
// (the e2e tier's crash matrix does that), Here kills kforge with SIGKILL when the
// environment variable KFORGE_CRASHPOINT names the point: a real kill -9 at an exact
// place, where killing from outside on a log line would race the next step.
package crashpoint

// Here marks the crash point name.
func Here(name string) {}
