package preflight

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDetectHostFacts(t *testing.T) {
	tests := []struct {
		name       string
		files      map[string]string
		want       HostFacts
		wantDriver string
	}{
		{
			name: "cgroup v2 with systemd",
			files: map[string]string{
				"/proc/self/mountinfo": mountinfoV2,
				"/proc/self/status":    statusAllCaps,
				"/proc/1/comm":         "systemd\n",
			},
			want:       HostFacts{Cgroup: CgroupV2, CapSysResource: true, PID1: "systemd", Systemd: true},
			wantDriver: CgroupDriverSystemd,
		},
		{
			name: "testbed VM",
			files: map[string]string{
				"/proc/self/mountinfo": mountinfoHybrid,
				"/proc/self/status":    statusNoSysRes,
				"/proc/1/comm":         "process_api\n",
			},
			want:       HostFacts{Cgroup: CgroupHybrid, PID1: "process_api"},
			wantDriver: CgroupDriverCgroupfs,
		},
		{
			name: "cgroup v1 with systemd",
			files: map[string]string{
				"/proc/self/mountinfo": mountinfoV1,
				"/proc/1/comm":         "systemd\n",
			},
			want:       HostFacts{Cgroup: CgroupV1, PID1: "systemd", Systemd: true},
			wantDriver: CgroupDriverCgroupfs,
		},
		{
			name: "cgroup2 mounted over a v1 tree hides it",
			files: map[string]string{
				"/proc/self/mountinfo": mountinfoHybrid + "50 22 0:40 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
			},
			want:       HostFacts{Cgroup: CgroupV2},
			wantDriver: CgroupDriverCgroupfs,
		},
		{
			name: "v1 mounts outside /sys/fs/cgroup do not count",
			files: map[string]string{
				"/proc/self/mountinfo": "31 30 0:28 / /mnt/cg rw - cgroup cgroup rw,cpu\n",
			},
			want: HostFacts{},
		},
		{
			name:  "no mountinfo, v2 directory",
			files: map[string]string{"/sys/fs/cgroup/cgroup.controllers": "cpu memory\n"},
			want:  HostFacts{Cgroup: CgroupV2},
		},
		{
			name: "no mountinfo, hybrid directory",
			files: map[string]string{
				"/sys/fs/cgroup/memory/tasks":               "",
				"/sys/fs/cgroup/unified/cgroup.controllers": "",
			},
			want: HostFacts{Cgroup: CgroupHybrid},
		},
		{
			name:  "no mountinfo, v1 directory",
			files: map[string]string{"/sys/fs/cgroup/memory/tasks": ""},
			want:  HostFacts{Cgroup: CgroupV1},
		},
		{
			name:       "nothing readable",
			want:       HostFacts{},
			wantDriver: CgroupDriverCgroupfs,
		},
		{
			name:  "malformed CapEff",
			files: map[string]string{"/proc/self/status": "CapEff:\tzz\n"},
			want:  HostFacts{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := DetectHostFacts(&fakeSystem{files: tc.files})
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("DetectHostFacts (-want +got):\n%s", diff)
			}
			if tc.wantDriver != "" && got.CgroupDriver() != tc.wantDriver {
				t.Errorf("CgroupDriver() = %q, want %q", got.CgroupDriver(), tc.wantDriver)
			}
		})
	}
}

func TestCgroupVersionIsV1(t *testing.T) {
	for v, want := range map[CgroupVersion]bool{CgroupV1: true, CgroupHybrid: true, CgroupV2: false, CgroupUnknown: false} {
		if got := v.IsV1(); got != want {
			t.Errorf("%q.IsV1() = %v, want %v", v, got, want)
		}
	}
}

func TestParseMountinfo(t *testing.T) {
	tests := []struct {
		line       string
		mountPoint string
		fsType     string
		ok         bool
	}{
		{line: "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue", mountPoint: "/mnt2", fsType: "ext3", ok: true},
		{line: "33 25 0:28 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw", mountPoint: "/sys/fs/cgroup", fsType: "cgroup2", ok: true},
		{line: "33 25 0:28 / /x rw shared:1 master:2 - cgroup cgroup rw,cpu", mountPoint: "/x", fsType: "cgroup", ok: true},
		{line: "33 25 0:28 / /x rw shared:1", ok: false},
		{line: "33 25 0:28 / /x rw -", ok: false},
		{line: "", ok: false},
	}
	for _, tc := range tests {
		mp, fst, ok := parseMountinfo(tc.line)
		if mp != tc.mountPoint || fst != tc.fsType || ok != tc.ok {
			t.Errorf("parseMountinfo(%q) = %q, %q, %v; want %q, %q, %v", tc.line, mp, fst, ok, tc.mountPoint, tc.fsType, tc.ok)
		}
	}
}
