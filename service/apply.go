package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/kforge/kforge/internal/crashpoint"
	"github.com/kforge/kforge/internal/fileutil"
)

// PendingDir holds a marker for each service whose files changed and which has not been
// restarted since. It outlives a killed kforge, so the next run restarts the service.
const PendingDir = "/var/lib/kforge/restart-pending"

// File is a file a service reads: its configuration, flags, or systemd unit.
type File struct {
	Path    string
	Data    []byte
	Mode    fs.FileMode
	DirMode fs.FileMode // of the directories created for it
}

// Change is a change to a service's files and the restart that applies it.
type Change struct {
	Spec Spec
	// Files are written (under Root) before the restart; the manager's own files for Spec
	// (Manager.Files, not under Root) are added to them.
	Files []File
	// Root prefixes every path written, the marker's too: "" on a real run, a scratch
	// directory on a dry run.
	Root string
	// StartStopped also starts the service when it is not running, although nothing
	// changed.
	StartStopped bool
}

// Written is one file Apply wrote.
type Written struct {
	Path   string // as given, without Change.Root
	Result fileutil.Result
}

// Applied says what Apply did.
type Applied struct {
	// Written lists the files that were created or updated.
	Written []Written
	// Resumed is true when an earlier run had changed the files and died before the
	// restart that applies them.
	Resumed bool
	// Restarted is true when the service was (re)started.
	Restarted bool
}

// Apply writes c's files and restarts the service when any of them changed, and converges
// if it is killed between the two: before it writes a changed file it records that a
// restart is pending (atomically, in PendingDir), and it removes that record only once the
// restart succeeded. A later Apply that finds the record restarts the service, though the
// files on disk are already the new ones.
func Apply(ctx context.Context, m Manager, c Change) (Applied, error) {
	var a Applied
	// c's files are under Root; the manager's own (systemd's units) are where it reads them.
	var files []File
	for _, f := range c.Files {
		f.Path = filepath.Join(c.Root, f.Path)
		files = append(files, f)
	}
	files = append(files, m.Files(c.Spec)...)
	changed := false
	for _, f := range files {
		res, err := fileutil.Compare(f.Path, f.Data, f.Mode)
		if err != nil {
			return a, err
		}
		changed = changed || res != fileutil.Unchanged
	}
	marker := filepath.Join(c.Root, PendingDir, c.Spec.Name)
	if changed {
		note := fmt.Sprintf("%s must restart: kforge changed its files and has not restarted it since\n", c.Spec.Name)
		if _, err := fileutil.WriteAtomic(marker, []byte(note), 0o644, 0o755); err != nil {
			return a, fmt.Errorf("recording the pending restart of %s: %w", c.Spec.Name, err)
		}
		crashpoint.Here("service/" + c.Spec.Name + "/marked")
	} else if _, err := os.Stat(marker); err == nil {
		a.Resumed = true
	} else if !errors.Is(err, fs.ErrNotExist) {
		return a, fmt.Errorf("checking for a pending restart of %s: %w", c.Spec.Name, err)
	}
	for i, f := range files {
		res, err := fileutil.WriteAtomic(f.Path, f.Data, f.Mode, f.DirMode)
		if err != nil {
			return a, err
		}
		if res != fileutil.Unchanged {
			shown := f.Path
			if i < len(c.Files) {
				shown = c.Files[i].Path
			}
			a.Written = append(a.Written, Written{Path: shown, Result: res})
		}
	}
	if !changed && !a.Resumed {
		if !c.StartStopped {
			return a, nil
		}
		active, err := m.Active(ctx, c.Spec.Name)
		if err != nil {
			return a, err
		}
		if active {
			return a, nil
		}
	}
	crashpoint.Here("service/" + c.Spec.Name + "/written")
	if err := m.Restart(ctx, c.Spec); err != nil {
		return a, err
	}
	a.Restarted = true
	crashpoint.Here("service/" + c.Spec.Name + "/restarted")
	if err := os.Remove(marker); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return a, fmt.Errorf("clearing the pending restart of %s: %w", c.Spec.Name, err)
	}
	return a, nil
}
