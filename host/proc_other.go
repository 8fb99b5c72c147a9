//go:build !unix

package host

import (
	"io/fs"
	"os"
	"os/exec"
)

func setProcessGroup(cmd *exec.Cmd) {}

func exitStatus(ps *os.ProcessState) (code int, signal string) { return ps.ExitCode(), "" }

func fileOwner(fi fs.FileInfo) (uid, gid int, ok bool) { return 0, 0, false }
