package phases

import (
	"context"
	"errors"
)

// resetPreflightPhase checks that reset can run here: as root, unless told otherwise.
//
// Reads Data.PreflightSystem, Data.IgnorePreflight and Data.Node.
func resetPreflightPhase() Phase {
	return Phase{
		Name:  "preflight",
		Short: "Check that reset can run here",
		Run: func(_ context.Context, d *Data) error {
			if d.PreflightSystem.Euid() != 0 && !d.IgnorePreflight.Has("IsPrivilegedUser") && !d.IgnorePreflight.All() {
				return errors.New("reset must run as root (or pass --ignore-preflight-errors=IsPrivilegedUser to try anyway)")
			}
			d.Out.Say("resetting host %q: the kubelet, its pods and every file init or join wrote will be removed", d.Node.Name)
			return nil
		},
	}
}
