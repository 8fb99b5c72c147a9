//go:build unix

package host

import (
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// setProcessGroup starts cmd in its own process group and makes context
// cancellation kill the whole group, so that children of a shell die too.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// exitStatus is the exit code of a finished process (128+n when killed by
// signal n) and the signal's name ("KILL"), if any.
func exitStatus(ps *os.ProcessState) (code int, signal string) {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), strings.TrimPrefix(unix.SignalName(ws.Signal()), "SIG")
	}
	return ps.ExitCode(), ""
}

// fileOwner returns the numeric owner of a file.
func fileOwner(fi fs.FileInfo) (uid, gid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}
