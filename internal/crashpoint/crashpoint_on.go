//go:build crashpoints

package crashpoint

import (
	"fmt"
	"os"
	"syscall"
)

// target is read once, at start-up, before kforge takes secrets out of its environment.
var target = os.Getenv("KFORGE_CRASHPOINT")

// Here kills this process with SIGKILL when name is KFORGE_CRASHPOINT.
func Here(name string) {
	if name == "" || name != target {
		return
	}
	fmt.Fprintf(os.Stderr, "crashpoint %s: kill -9\n", name)
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way
}
