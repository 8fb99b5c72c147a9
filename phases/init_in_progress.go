package phases

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/kforge/kforge/fleet"
	"github.com/kforge/kforge/internal/fileutil"
)

// inProgressPhase records on the host that an init is under way (fleet.InitMarker), before
// any phase writes to the host, so that kforge up can tell the state a killed init leaves
// from a cluster's and resume it. A host that already holds cluster state without the
// marker (a re-run of a finished init, or another cluster) gets no marker: only an init that
// began on an empty host is resumable.
//
// Reads Data.Cluster, Data.Node and Data.Now; writes fleet.InitMarker under Data.Root.
func inProgressPhase() Phase {
	return Phase{
		Name:  "in-progress",
		Short: "Record on this host that an init is under way, until it finishes",
		Run: func(_ context.Context, d *Data) error {
			marker := d.Path(fleet.InitMarker)
			old, err := readFileIfExists(marker)
			if err != nil {
				return err
			}
			if old != nil {
				d.Out.Say("resuming an unfinished init (%s: %s)", fleet.InitMarker, strings.TrimSpace(string(old)))
				return nil
			}
			var held []string
			for _, p := range fleet.StatePaths(d.Cluster) {
				if _, err := os.Stat(d.Path(p)); err == nil {
					held = append(held, p)
				} else if !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("checking for cluster state: %w", err)
				}
			}
			if len(held) > 0 {
				d.Out.Say("this host already holds cluster state (%s): not recording an init in progress", strings.Join(held, ", "))
				return nil
			}
			data := fmt.Sprintf("kforge init of node %s began at %s\n", d.Node.Name, d.Now().UTC().Format(time.RFC3339))
			if _, err := fileutil.WriteAtomic(marker, []byte(data), 0o644, 0o755); err != nil {
				return fmt.Errorf("recording the init in progress: %w", err)
			}
			d.Out.Say("recorded the init in progress in %s", fleet.InitMarker)
			return nil
		},
	}
}
