package bundle

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseGoMod(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    *goMod
		wantErr string
	}{
		{
			name: "blocks and comments",
			in: `// Module kbuild pins things.
module github.com/kforge/kforge/e2e/kbuild // trailing

go 1.24.0

require k8s.io/kubernetes v1.34.4

require (
	cel.dev/expr v0.24.0 // indirect
	// a comment line
	k8s.io/api v0.34.4
)

replace (
	k8s.io/api => k8s.io/api v0.34.4
	k8s.io/kubectl => k8s.io/kubectl v0.34.4
)
`,
			want: &goMod{
				Module: "github.com/kforge/kforge/e2e/kbuild",
				Requires: map[string]string{
					"k8s.io/kubernetes": "v1.34.4",
					"cel.dev/expr":      "v0.24.0",
					"k8s.io/api":        "v0.34.4",
				},
			},
		},
		{
			name: "replace with a version wins",
			in: `module m
require (
	a.example/x v1.0.0
	b.example/y v1.0.0
	c.example/z v1.0.0
	d.example/w v1.0.0
)
replace a.example/x => a.example/x v1.0.1
replace b.example/y v1.0.0 => fork.example/y v1.2.0
replace c.example/z v0.9.0 => c.example/z v9.9.9
replace d.example/w => ../w
`,
			want: &goMod{Module: "m", Requires: map[string]string{
				"a.example/x": "v1.0.1",
				"b.example/y": "v1.2.0",
				"c.example/z": "v1.0.0", // the replace is for another version
				"d.example/w": "../w",
			}},
		},
		{name: "quoted module", in: "module \"q.example/m\"\n", want: &goMod{Module: "q.example/m", Requires: map[string]string{}}},
		{name: "no module", in: "go 1.24\nrequire a.example/x v1.0.0\n", wantErr: "no module directive"},
		{name: "unterminated block", in: "module m\nrequire (\n\ta.example/x v1.0.0\n", wantErr: "unterminated require block"},
		{name: "bad require", in: "module m\nrequire a.example/x\n", wantErr: "line 2: malformed require"},
		{name: "bad replace", in: "module m\nreplace a.example/x v1 v2\n", wantErr: "line 2: malformed replace"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseGoMod([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseGoMod() error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseGoMod() error = %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("parseGoMod() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadVersions(t *testing.T) {
	tests := []struct {
		name     string
		kbuild   string
		etcd     string
		want     Versions
		wantErrs []string
	}{
		{
			name:   "pinned",
			kbuild: "module k\nrequire k8s.io/kubernetes v1.34.4\n",
			etcd:   "module e\nrequire (\n\tgo.etcd.io/etcd/etcdctl/v3 v3.6.5\n\tgo.etcd.io/etcd/server/v3 v3.6.5\n)\n",
			want:   Versions{Kubernetes: "v1.34.4", Etcd: "v3.6.5"},
		},
		{
			name:     "etcd is not the release kforge's etcd image names",
			kbuild:   "module k\nrequire k8s.io/kubernetes v1.34.4\n",
			etcd:     "module e\nrequire (\n\tgo.etcd.io/etcd/etcdctl/v3 v3.6.4\n\tgo.etcd.io/etcd/server/v3 v3.6.4\n)\n",
			wantErrs: []string{"pins go.etcd.io/etcd/server/v3 v3.6.4, but the etcd image of Kubernetes v1.34.4 is tagged 3.6.5-0"},
		},
		{
			name:     "kubernetes missing",
			kbuild:   "module k\n",
			etcd:     "module e\n",
			wantErrs: []string{"does not require k8s.io/kubernetes"},
		},
		{
			name:     "kubernetes replaced by a directory",
			kbuild:   "module k\nrequire k8s.io/kubernetes v1.34.4\nreplace k8s.io/kubernetes => ../kubernetes\n",
			etcd:     "module e\n",
			wantErrs: []string{`replaces k8s.io/kubernetes with "../kubernetes"`},
		},
		{
			name:     "kubernetes pseudo-version",
			kbuild:   "module k\nrequire k8s.io/kubernetes v0.0.0-20250101000000-abcdefabcdef\n",
			etcd:     "module e\n",
			wantErrs: []string{"not a release version"},
		},
		{
			name:     "etcd server and etcdctl differ",
			kbuild:   "module k\nrequire k8s.io/kubernetes v1.34.4\n",
			etcd:     "module e\nrequire go.etcd.io/etcd/server/v3 v3.6.4\nrequire go.etcd.io/etcd/etcdctl/v3 v3.6.3\n",
			wantErrs: []string{"go.etcd.io/etcd/server/v3 v3.6.4 but go.etcd.io/etcd/etcdctl/v3 v3.6.3"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := fakeRepo(t, tc.kbuild, tc.etcd)
			got, err := readVersions(root)
			if tc.wantErrs != nil {
				if err == nil {
					t.Fatalf("readVersions() = %+v, want an error", got)
				}
				for _, w := range tc.wantErrs {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("readVersions() error = %v, want it to contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("readVersions() error = %v", err)
			}
			if got != tc.want {
				t.Errorf("readVersions() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestReadVersionsOfThisRepo checks that the real build modules parse.
func TestReadVersionsOfThisRepo(t *testing.T) {
	root, err := RepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	v, err := readVersions(root)
	if err != nil {
		t.Fatalf("readVersions(%s) error = %v", root, err)
	}
	if !isRelease(v.Kubernetes) || !isRelease(v.Etcd) {
		t.Errorf("readVersions(%s) = %+v, want two release versions", root, v)
	}
}

func TestRepoRoot(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "go.mod"), "module "+RepoModule+"\n\ngo 1.26.0\n")
	writeFile(t, filepath.Join(root, "e2e/kbuild/go.mod"), "module "+RepoModule+"/e2e/kbuild\n")
	deep := filepath.Join(root, "e2e", "kbuild", "sub", "dir")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{root, filepath.Join(root, "e2e"), deep} {
		got, err := RepoRoot(dir)
		if err != nil {
			t.Fatalf("RepoRoot(%s) error = %v", dir, err)
		}
		if got != root {
			t.Errorf("RepoRoot(%s) = %s, want %s", dir, got, root)
		}
	}

	other := t.TempDir()
	writeFile(t, filepath.Join(other, "go.mod"), "module example.com/other\n")
	if got, err := RepoRoot(other); err == nil {
		t.Errorf("RepoRoot(%s) = %s, want an error outside the repository", other, got)
	}
}
