package nodecleanup

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Mount is one line of /proc/self/mountinfo.
type Mount struct {
	ID, Parent int
	// Point is where it is mounted, its octal escapes decoded.
	Point string
	// FSType and Source say what is mounted: "tmpfs tmpfs", "ext4 /dev/sdb1".
	FSType, Source string
}

func (m Mount) String() string {
	return fmt.Sprintf("%s (%s %s)", m.Point, m.FSType, m.Source)
}

// ParseMountinfo reads the lines of /proc/<pid>/mountinfo (proc(5)); malformed lines are
// skipped.
func ParseMountinfo(s string) []Mount {
	var mounts []Mount
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if len(f) < 5 || sep < 5 {
			continue
		}
		id, err1 := strconv.Atoi(f[0])
		parent, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			continue
		}
		m := Mount{ID: id, Parent: parent, Point: unescapeMount(f[4])}
		if len(f) > sep+2 {
			m.FSType, m.Source = f[sep+1], unescapeMount(f[sep+2])
		}
		mounts = append(mounts, m)
	}
	return mounts
}

// AtOrBelow returns the mounts at path or anywhere below it.
func AtOrBelow(mounts []Mount, path string) []Mount {
	var out []Mount
	for _, m := range mounts {
		if m.Point == path || strings.HasPrefix(m.Point, strings.TrimSuffix(path, "/")+"/") {
			out = append(out, m)
		}
	}
	return out
}

// readMountinfo reads this process's mount table.
func readMountinfo() (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	return string(b), err
}

// mountsUnder lists what reset unmounts for dir, deepest first: every mount strictly
// below it (pod volumes), and the mounts stacked on dir itself except the lowest (the
// kubelet bind-mounts its root dir onto itself). The lowest mount at dir is never
// touched: it may be a dedicated disk or a bind mount the host depends on.
func mountsUnder(dir string) []string {
	info, err := readMountinfo()
	if err != nil {
		return nil
	}
	return mountsToUnmount(info, dir)
}

func mountsToUnmount(mountinfo, dir string) []string {
	var below []string
	atDir := 0
	for _, m := range AtOrBelow(ParseMountinfo(mountinfo), dir) {
		if m.Point == dir {
			atDir++
		} else {
			below = append(below, m.Point)
		}
	}
	slices.SortFunc(below, func(a, b string) int {
		if d := strings.Count(b, "/") - strings.Count(a, "/"); d != 0 {
			return d // deepest first
		}
		return strings.Compare(a, b)
	})
	out := slices.Compact(below)
	for i := 1; i < atDir; i++ {
		out = append(out, dir)
	}
	return out
}

// unescapeMount decodes the octal escapes (\040 for a space) of /proc/self/mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
