package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDirProblem(t *testing.T) {
	tests := []struct {
		dir  string
		want string // a word of the problem; "" for acceptable
	}{
		{"/var/lib/etcd", ""},
		{"/etc/kubernetes", ""},
		{"/etc/kubernetes/pki", ""},
		{"/data/etcd", ""},
		{"/srv/etcd-data", ""},
		{"/var/library", ""}, // a sibling of /var/lib, not a parent
		{"", "is empty"},
		{"var/lib/etcd", "not an absolute path"},
		{"./etcd", "not an absolute path"},
		{"/var/lib/etcd/", "not a clean path"},
		{"/var/lib/etcd/.", "not a clean path"},
		{"/var/lib/../lib/etcd", "not a clean path"},
		{"//var/lib/etcd", "not a clean path"},
		{"/var/lib/etcd ", "white space"},
		{" /var/lib/etcd", "white space"},
		{"/var/lib/etcd\n", "control characters"},
		{"/var/lib/et\x00cd", "control characters"},
		{"/", "root directory"},
		{"/var", "system directory"},
		{"/var/lib", "system directory"},
		{"/etc", "system directory"},
		{"/usr", "system directory"},
		{"/usr/local", "system directory"},
		{"/home", "system directory"},
		{"/root", "system directory"},
		{"/opt", "system directory"},
		{"/srv", "system directory"},
		{"/tmp", "system directory"},
		{"/boot", "system directory"},
		{"/dev", "system directory"},
		{"/proc", "system directory"},
		{"/sys", "system directory"},
		{"/run", "system directory"},
		{"/bin", "system directory"},
		{"/sbin", "system directory"},
		{"/lib", "system directory"},
	}
	for _, tc := range tests {
		t.Run(tc.dir, func(t *testing.T) {
			got := DirProblem(tc.dir, DefaultEtcdDataDir)
			if tc.want == "" {
				if got != "" {
					t.Fatalf("DirProblem(%q) = %q, want it accepted", tc.dir, got)
				}
				return
			}
			if !strings.Contains(got, tc.want) || !strings.Contains(got, "want") || !strings.Contains(got, `"/var/lib/etcd"`) {
				t.Fatalf("DirProblem(%q) = %q, want a message saying %q, what is wanted and the example", tc.dir, got, tc.want)
			}
		})
	}
}

// TestDecodeDataDirSystem is issue 10, item 1: data_dir = "/var/lib" passed validation, and
// reset then emptied /var/lib.
func TestDecodeDataDirSystem(t *testing.T) {
	for _, dir := range []string{"/var/lib", "/", "/var/lib/", "/var/lib/etcd/../..", "/usr"} {
		t.Run(dir, func(t *testing.T) {
			doc := "name = \"lab\"\n\n[etcd.local]\ndata_dir = " + quoteValue(dir) + "\n"
			got := validationErrors(t, doc)
			var paths []string
			var lines []int
			for _, fe := range got {
				paths = append(paths, fe.Path)
				lines = append(lines, fe.Line)
			}
			if diff := cmp.Diff([]string{"etcd.local.data_dir"}, paths); diff != "" {
				t.Fatalf("paths (-want +got):\n%s", diff)
			}
			if lines[0] != 4 {
				t.Errorf("line = %d, want 4", lines[0])
			}
		})
	}
}

// TestDecodeNodeAddresses is issue 10, item 19: config validate accepted addresses that
// init then refused without a file or line.
func TestDecodeNodeAddresses(t *testing.T) {
	doc := `[[hosts]]
name = "a"
address = "999.1.2.3"
roles = ["control-plane"]

[[hosts]]
name = "b"
address = "10.0.0.2"
internal_address = "10.0.0.300"
roles = ["worker"]

[[hosts]]
name = "c"
address = "10.0.0.3"
internal_address = "lb.example.com"
roles = ["worker"]

[[hosts]]
name = "d"
address = "d.example.com"
roles = ["worker"]
`
	var got []string
	for _, fe := range validationErrors(t, doc) {
		got = append(got, fmt.Sprintf("%d %s", fe.Line, fe.Path))
	}
	want := []string{"3 hosts[0].address", "9 hosts[1].internal_address", "15 hosts[2].internal_address", "20 hosts[3].internal_address"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}
