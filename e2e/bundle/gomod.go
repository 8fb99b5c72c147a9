package bundle

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// errNoModule says a go.mod has no module line.
var errNoModule = errors.New("no module directive")

// goMod is the part of a go.mod file the bundle needs: the module path and, for each
// required module, the version that is built (a replace with a version wins over require).
type goMod struct {
	Module   string
	Requires map[string]string
}

// parseGoMod reads the module, require and replace directives of a go.mod file. It is a
// small parser for the files this repository writes, not a general one: it understands
// single-line directives, ( ) blocks and // comments, and ignores every other directive.
func parseGoMod(data []byte) (*goMod, error) {
	m := &goMod{Requires: map[string]string{}}
	type replace struct{ oldVersion, to string }
	replaces := map[string]replace{}
	block := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		verb := block
		if block == "" {
			verb, f = f[0], f[1:]
			if len(f) == 1 && f[0] == "(" {
				block = verb
				continue
			}
		} else if f[0] == ")" {
			block = ""
			continue
		}
		switch verb {
		case "module":
			if len(f) != 1 {
				return nil, fmt.Errorf("line %d: malformed module directive", n)
			}
			m.Module = strings.Trim(f[0], `"`)
		case "require":
			if len(f) != 2 {
				return nil, fmt.Errorf("line %d: malformed require directive", n)
			}
			m.Requires[f[0]] = f[1]
		case "replace":
			// "old [v] => new v" replaces with a module version; "old => ./dir" with a
			// directory, which is not a version this parser can report.
			i := indexOf(f, "=>")
			if i < 1 || i > 2 || len(f)-i-1 < 1 {
				return nil, fmt.Errorf("line %d: malformed replace directive", n)
			}
			r := replace{to: f[len(f)-1]}
			if i == 2 {
				r.oldVersion = f[1]
			}
			replaces[f[0]] = r
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if block != "" {
		return nil, fmt.Errorf("unterminated %s block", block)
	}
	if m.Module == "" {
		return nil, errNoModule
	}
	for mod, r := range replaces {
		if v, ok := m.Requires[mod]; ok && (r.oldVersion == "" || r.oldVersion == v) {
			m.Requires[mod] = r.to
		}
	}
	return m, nil
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// requiredVersion returns the version of mod that the go.mod at path builds.
func requiredVersion(path, mod string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	m, err := parseGoMod(data)
	if err != nil {
		return "", fmt.Errorf("parsing %s: %w", path, err)
	}
	v, ok := m.Requires[mod]
	if !ok {
		return "", fmt.Errorf("%s does not require %s", path, mod)
	}
	if !strings.HasPrefix(v, "v") {
		return "", fmt.Errorf("%s replaces %s with %q, not a module version", path, mod, v)
	}
	return v, nil
}

// RepoModule is the module path of the kforge repository.
const RepoModule = "github.com/kforge/kforge"

// RepoRoot walks up from dir to the directory whose go.mod declares RepoModule, skipping
// nested modules such as e2e/kbuild.
func RepoRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("locating the kforge repository: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		data, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil {
			if m, err := parseGoMod(data); err == nil && m.Module == RepoModule {
				return d, nil
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("locating the kforge repository: %w", err)
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod with module %s in %s or any parent", RepoModule, dir)
		}
	}
}
