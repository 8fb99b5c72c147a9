package config

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/pelletier/go-toml/v2"
)

func TestPrintDefaultsGolden(t *testing.T) {
	got := PrintDefaults()
	golden := filepath.Join("testdata", "print-defaults.golden")
	if os.Getenv("UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatalf("updating golden file: %v", err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("reading golden file (run with UPDATE_GOLDEN=1 to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("PrintDefaults() differs from %s (-want +got); rerun with UPDATE_GOLDEN=1 if intended:\n%s", golden, diff)
	}
}

// TestPrintDefaultsDecodes checks that the printed file is valid and holds exactly the
// defaults plus its example host.
func TestPrintDefaultsDecodes(t *testing.T) {
	got, err := Decode(PrintDefaults(), "defaults.toml")
	if err != nil {
		t.Fatalf("Decode(PrintDefaults()): %v", err)
	}
	want := defaulted(func(c *Cluster) {
		c.Hosts = []Host{{Name: "cp-1", Address: "192.0.2.10", Roles: []string{RoleControlPlane}}}
	})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Decode(PrintDefaults()) mismatch (-want +got):\n%s", diff)
	}
}

// exampleLine matches a commented-out example: "# key = value" or "# [table]".
var exampleLine = regexp.MustCompile(`(?m)^# ((\[)|([A-Za-z0-9_."-]+ = ))`)

// TestPrintDefaultsCoversSchema uncomments every example in the printed file and checks that
// the result fits the schema and mentions every key of it.
func TestPrintDefaultsCoversSchema(t *testing.T) {
	all := exampleLine.ReplaceAll(PrintDefaults(), []byte("$1"))

	idx, syntax := indexDocument(all)
	if syntax != nil {
		t.Fatalf("uncommented defaults do not parse: line %d: %s\n%s", syntax.Line, syntax.Message, all)
	}
	for _, p := range idx.problems {
		t.Errorf("uncommented defaults: line %d: %s", p.Line, p.Message)
	}
	var c Cluster
	if err := toml.NewDecoder(bytes.NewReader(all)).DisallowUnknownFields().Decode(&c); err != nil {
		t.Errorf("go-toml cannot decode the uncommented defaults: %v", err)
	}
	for _, p := range schemaPaths() {
		if _, ok := idx.keys[p]; !ok {
			t.Errorf("PrintDefaults() does not show key %s", p)
		}
	}
}

// TestSchemaPaths checks the reflection the coverage test relies on.
func TestSchemaPaths(t *testing.T) {
	paths := schemaPaths()
	for _, p := range []string{"version", "etcd.local.data_dir", "etcd.external.ca_file", "hosts[0].ssh.bastion", "apiserver.extra_volumes[0].path_type", "certificates.ca_validity"} {
		found := false
		for _, q := range paths {
			found = found || q == p
		}
		if !found {
			t.Errorf("schemaPaths() lacks %s", p)
		}
	}
	if len(paths) < 70 {
		t.Errorf("schemaPaths() has %d paths, want the whole schema (70 or more)", len(paths))
	}
}
