package preflight

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/kforge/kforge/config"
)

// CgroupVersion is the cgroup layout of a host.
type CgroupVersion string

// Cgroup layouts.
const (
	// CgroupUnknown means neither /proc/self/mountinfo nor /sys/fs/cgroup told.
	CgroupUnknown CgroupVersion = ""
	// CgroupV1 is v1 controllers only.
	CgroupV1 CgroupVersion = "v1"
	// CgroupHybrid is v1 controllers plus a cgroup2 mount beside them (often
	// /sys/fs/cgroup/unified). The kubelet treats it as v1.
	CgroupHybrid CgroupVersion = "hybrid"
	// CgroupV2 is the unified hierarchy mounted at /sys/fs/cgroup.
	CgroupV2 CgroupVersion = "v2"
)

// IsV1 reports whether the kubelet will see cgroup v1 (v1 or hybrid), and so needs
// failCgroupV1: false from Kubernetes 1.34 on.
func (v CgroupVersion) IsV1() bool { return v == CgroupV1 || v == CgroupHybrid }

// Cgroup drivers.
const (
	CgroupDriverCgroupfs = "cgroupfs"
	CgroupDriverSystemd  = "systemd"
)

// capSysResource is the bit of CAP_SYS_RESOURCE in the capability sets of
// /proc/<pid>/status (see capabilities(7)).
const capSysResource = 24

// HostFacts are the properties of a host that decide how kforge configures containerd and
// the kubelet there. DetectHostFacts finds them; SystemVerification reports them.
type HostFacts struct {
	// Cgroup is the cgroup layout under /sys/fs/cgroup.
	Cgroup CgroupVersion
	// CapSysResource reports whether this process holds CAP_SYS_RESOURCE in its effective
	// set. Root without it (unprivileged LXC, nested VMs) cannot lower oom_score_adj, so
	// containerd needs restrict_oom_score_adj = true and the kubelet oomScoreAdj: 0.
	// It is false when /proc/self/status cannot be read; the restricted settings work
	// either way.
	CapSysResource bool
	// PID1 is the command name of PID 1 (/proc/1/comm), "" if it cannot be read.
	PID1 string
	// Systemd reports whether PID 1 is systemd. Without it nothing starts services, and
	// kforge must start and supervise the kubelet and containerd itself.
	Systemd bool
}

// CgroupDriver is the driver kforge uses when kubelet.cgroup_driver is empty: systemd on a
// cgroup v2 host run by systemd, cgroupfs otherwise.
func (f HostFacts) CgroupDriver() string {
	if f.Systemd && f.Cgroup == CgroupV2 {
		return CgroupDriverSystemd
	}
	return CgroupDriverCgroupfs
}

// DetectHostFacts reads HostFacts from /proc and /sys. It never fails: what it cannot read
// stays at its zero value.
func DetectHostFacts(sys System) HostFacts {
	f := HostFacts{Cgroup: detectCgroup(sys)}
	if b, err := sys.ReadFile("/proc/self/status"); err == nil {
		if eff, ok := statusCaps(string(b), "CapEff"); ok {
			f.CapSysResource = eff&(1<<capSysResource) != 0
		}
	}
	if b, err := sys.ReadFile("/proc/1/comm"); err == nil {
		f.PID1 = strings.TrimSpace(string(b))
		f.Systemd = f.PID1 == "systemd"
	}
	return f
}

// statusCaps returns a capability set ("CapEff", "CapPrm", ...) from /proc/<pid>/status.
func statusCaps(status, field string) (uint64, bool) {
	for line := range strings.Lines(status) {
		v, ok := strings.CutPrefix(line, field+":")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		return n, err == nil
	}
	return 0, false
}

const cgroupRoot = "/sys/fs/cgroup"

// detectCgroup tells the cgroup layout the way the kubelet sees it: cgroup2 mounted at
// /sys/fs/cgroup is v2; v1 controllers under it are v1, or hybrid with a cgroup2 mount
// beside them.
func detectCgroup(sys System) CgroupVersion {
	if b, err := sys.ReadFile("/proc/self/mountinfo"); err == nil {
		var rootType string
		var v1, v2 bool
		for line := range strings.Lines(string(b)) {
			mountPoint, fsType, ok := parseMountinfo(line)
			if !ok {
				continue
			}
			if mountPoint == cgroupRoot {
				// A later mount on the same point hides the earlier one.
				rootType = fsType
				continue
			}
			if !strings.HasPrefix(mountPoint, cgroupRoot+"/") {
				continue
			}
			switch fsType {
			case "cgroup":
				v1 = true
			case "cgroup2":
				v2 = true
			}
		}
		switch {
		case rootType == "cgroup2":
			return CgroupV2
		case v1 && v2:
			return CgroupHybrid
		case v1:
			return CgroupV1
		}
	}
	// No mountinfo, or nothing cgroup in it: look at the directory itself.
	if _, err := sys.ReadFile(cgroupRoot + "/cgroup.controllers"); err == nil {
		return CgroupV2
	}
	names, err := sys.ReadDir(cgroupRoot)
	if err != nil || len(names) == 0 {
		return CgroupUnknown
	}
	if slices.Contains(names, "unified") {
		return CgroupHybrid
	}
	return CgroupV1
}

// parseMountinfo returns the mount point and file system type of a /proc/<pid>/mountinfo
// line: "36 35 98:0 /root /mnt opts [optional fields...] - fstype source superopts".
func parseMountinfo(line string) (mountPoint, fsType string, ok bool) {
	fields := strings.Fields(line)
	if len(fields) < 6 {
		return "", "", false
	}
	sep := slices.Index(fields[6:], "-")
	if sep < 0 || 6+sep+1 >= len(fields) {
		return "", "", false
	}
	return fields[4], fields[6+sep+1], true
}

// systemVerification reports the host quirks that change how kforge sets up the node.
func systemVerification(sys System, c *config.Cluster) func(context.Context) ([]error, []error) {
	return func(context.Context) (warnings, errs []error) {
		f := DetectHostFacts(sys)
		driver := c.Kubelet.CgroupDriver
		chosen := "the configured"
		if driver == "" {
			driver = f.CgroupDriver()
			chosen = "the"
		}
		switch {
		case f.Cgroup == CgroupUnknown:
			warnings = append(warnings, fmt.Errorf("cannot tell the cgroup version from /proc/self/mountinfo or %s: the kubelet may fail to start; check that cgroups are mounted there", cgroupRoot))
		case f.Cgroup.IsV1():
			layout := "cgroup v1"
			if f.Cgroup == CgroupHybrid {
				layout = "cgroup v1 (hybrid, with a cgroup2 mount beside the v1 controllers)"
			}
			warnings = append(warnings, fmt.Errorf("the host uses %s: kforge will use %s %s cgroup driver and set failCgroupV1: false in the kubelet config; cgroup v1 is deprecated, move the host to cgroup v2 when you can",
				layout, chosen, driver))
		}
		if c.Kubelet.CgroupDriver == CgroupDriverSystemd && f.PID1 != "" && !f.Systemd {
			errs = append(errs, fmt.Errorf("kubelet.cgroup_driver is %q but PID 1 is %q, not systemd: set cgroup_driver = %q in cluster.toml, or leave it empty to detect",
				CgroupDriverSystemd, f.PID1, CgroupDriverCgroupfs))
		}
		if sys.Euid() == 0 && !f.CapSysResource {
			warnings = append(warnings, fmt.Errorf("root lacks CAP_SYS_RESOURCE here (an unprivileged container or nested VM?): kforge will set restrict_oom_score_adj = true for containerd and oomScoreAdj: 0 for the kubelet, else every pod sandbox fails"))
		}
		return warnings, errs
	}
}
