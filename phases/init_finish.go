package phases

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/kforge/kforge/fleet"
)

// finishPhase removes the record of an init under way (fleet.InitMarker, written by the
// in-progress phase) once every phase before it succeeded: the host now holds a finished
// cluster, which kforge up must not take for an unfinished init.
//
// Removes fleet.InitMarker under Data.Root.
func finishPhase() Phase {
	return Phase{
		Name:  "finish",
		Short: "Remove the record of an init under way: the init is complete",
		Run: func(_ context.Context, d *Data) error {
			err := os.Remove(d.Path(fleet.InitMarker))
			switch {
			case errors.Is(err, fs.ErrNotExist):
				return nil
			case err != nil:
				return fmt.Errorf("removing the record of the init in progress: %w", err)
			}
			d.Out.Say("removed %s: the init is complete", fleet.InitMarker)
			return nil
		},
	}
}
