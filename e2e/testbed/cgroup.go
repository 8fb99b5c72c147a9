package testbed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// cgroupV1Mounts returns the mount points of the machine's cgroup v1 hierarchies (named
// ones such as name=systemd included; the unified cgroup2 mount excluded).
func cgroupV1Mounts() ([]string, error) { return cgroupMounts(false) }

// cgroupMounts returns the mount points of the cgroup v1 hierarchies and, with v2, of
// cgroup2 too (runc mirrors a container's cgroup in the unified hierarchy of a hybrid
// machine, so a host's subtree shows up there as well).
func cgroupMounts(v2 bool) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("reading mountinfo: %w", err)
	}
	defer f.Close()
	var mps []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		// "36 25 0:31 / /sys/fs/cgroup/cpu rw,relatime shared:15 - cgroup cgroup rw,cpu"
		pre, post, ok := strings.Cut(s.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 1 || pf[3] != "/" || !(qf[0] == "cgroup" || v2 && qf[0] == "cgroup2") {
			continue
		}
		mps = append(mps, unescapeMountinfo(pf[4]))
	}
	return mps, s.Err()
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			ok := true
			for _, d := range s[i+1 : i+4] {
				if d < '0' || d > '7' {
					ok = false
					break
				}
				c = c*8 + byte(d-'0')
			}
			if ok {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// createCgroups makes /<host> in every cgroup v1 hierarchy, the cgroupRoot a kubelet on
// the host is given, with cpuset.cpus and cpuset.mems copied from the root (a new cpuset
// is empty, and no task could run in it).
func createCgroups(host string) error {
	mps, err := cgroupV1Mounts()
	if err != nil {
		return err
	}
	for _, mp := range mps {
		dir := filepath.Join(mp, host)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("creating the cgroup %s: %w", dir, err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			b, err := os.ReadFile(filepath.Join(mp, f))
			if errors.Is(err, fs.ErrNotExist) {
				continue // not the cpuset hierarchy
			}
			if err != nil {
				return fmt.Errorf("reading %s: %w", filepath.Join(mp, f), err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
				return fmt.Errorf("writing %s: %w", filepath.Join(dir, f), err)
			}
		}
	}
	return nil
}

// removeCgroups removes /<host> and everything under it from every hierarchy, cgroup2
// included, the deepest first. Cgroups of processes that just died can stay busy for a
// moment, so it retries for a while.
func removeCgroups(ctx context.Context, host string) error {
	mps, err := cgroupMounts(true)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var errs []error
	for _, mp := range mps {
		if err := removeCgroupTree(ctx, filepath.Join(mp, host)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func removeCgroupTree(ctx context.Context, root string) error {
	for {
		var dirs []string
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("listing the cgroup %s: %w", root, err)
		}
		if len(dirs) == 0 {
			return nil
		}
		// Deepest first: a cgroup with children cannot go.
		slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
		var busy error
		for _, d := range dirs {
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
				busy = fmt.Errorf("removing the cgroup %s: %w (tasks: %s)", d, err, cgroupTasks(d))
			}
		}
		if busy == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return busy
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func cgroupTasks(dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	s := strings.Join(strings.Fields(string(b)), " ")
	if s == "" {
		return "none"
	}
	return s
}
