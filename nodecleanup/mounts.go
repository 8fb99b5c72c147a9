package nodecleanup

import (
	"fmt"
	"os"
	"slices"
	"strings"
)

// mountsUnder lists what reset unmounts for dir, deepest first: every mount strictly
// below it (pod volumes), and the mounts stacked on dir itself except the lowest (the
// kubelet bind-mounts its root dir onto itself). The lowest mount at dir is never
// touched: it may be a dedicated disk or a bind mount the host depends on.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	return mountsToUnmount(string(b), dir)
}

func mountsToUnmount(mountinfo, dir string) []string {
	var below []string
	atDir := 0
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		switch mp := unescapeMount(f[4]); {
		case mp == dir:
			atDir++
		case strings.HasPrefix(mp, dir+"/"):
			below = append(below, mp)
		}
	}
	slices.SortFunc(below, func(a, b string) int { return len(b) - len(a) })
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
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
