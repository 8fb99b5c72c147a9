package apiclient

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
)

// FieldChange is one field that differs between two versions of an object: its path
// ("spec.replicas", `metadata.labels["app.kubernetes.io/name"]`,
// "spec.template.spec.containers[0].image") and its JSON values before and after; nil
// where the field is absent.
type FieldChange struct {
	Path string `json:"path"`
	Old  any    `json:"old"`
	New  any    `json:"new"`
}

// String is "spec.replicas: 2 → 3", values in compact JSON, "(none)" for an absent one.
// Of a text of several lines (a Corefile, a component configuration) it shows only the
// lines that differ, from the first of them: `data.Corefile (line 14): "forward . /etc/resolv.conf {" → "forward . 1.1.1.1 {"`.
func (f FieldChange) String() string {
	a, aok := f.Old.(string)
	b, bok := f.New.(string)
	if aok && bok && (strings.Contains(a, "\n") || strings.Contains(b, "\n")) {
		al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
		pre := 0
		for pre < len(al) && pre < len(bl) && al[pre] == bl[pre] {
			pre++
		}
		suf := 0
		for suf < len(al)-pre && suf < len(bl)-pre && al[len(al)-1-suf] == bl[len(bl)-1-suf] {
			suf++
		}
		old := strings.Join(al[pre:len(al)-suf], "\n")
		new := strings.Join(bl[pre:len(bl)-suf], "\n")
		return fmt.Sprintf("%s (line %d): %s → %s", f.Path, pre+1, jsonValue(old), jsonValue(new))
	}
	return f.Path + ": " + jsonValue(f.Old) + " → " + jsonValue(f.New)
}

func jsonValue(v any) string {
	if v == nil {
		return "(none)"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// Redacted stands for the value of a Secret's key in a FieldChange.
const Redacted = "<redacted>"

// ignoredMetadata are the fields the apiserver keeps for itself; they change without
// anyone changing the object (resourceVersion, generation on a spec change that shows
// anyway) or never change (uid, creationTimestamp).
var ignoredMetadata = []string{"managedFields", "resourceVersion", "generation", "uid", "creationTimestamp"}

// FieldChanges lists the fields that differ between two versions of an object given as
// JSON maps (runtime.DefaultUnstructuredConverter's), sorted by path, leaving out status,
// the metadata the apiserver keeps for itself (ignoredMetadata), and apiVersion and kind,
// which a typed client may or may not fill in. Lists are compared item by
// item, by position. A Secret's data and stringData values are Redacted: a plan says which
// key changes, never what it holds.
func FieldChanges(before, after map[string]any) []FieldChange {
	var out []FieldChange
	diffValue("", strip(before), strip(after), &out)
	// A typed client's object may lack its kind: a Secret is recognised by either.
	if after["kind"] == "Secret" || before["kind"] == "Secret" {
		for i := range out {
			if secretValue.MatchString(out[i].Path) {
				out[i].Old, out[i].New = redact(out[i].Old), redact(out[i].New)
			}
		}
	}
	slices.SortFunc(out, func(a, b FieldChange) int {
		switch {
		case a.Path < b.Path:
			return -1
		case a.Path > b.Path:
			return 1
		}
		return 0
	})
	return out
}

// secretValue matches the paths of a Secret that hold its values.
var secretValue = regexp.MustCompile(`^(data|stringData)($|[.\[])`)

// redact hides a Secret's value, or every value of a map of them.
func redact(v any) any {
	switch m := v.(type) {
	case nil:
		return nil
	case map[string]any:
		out := make(map[string]any, len(m))
		for k := range m {
			out[k] = Redacted
		}
		return out
	}
	return Redacted
}

// strip copies m without status, apiVersion, kind and ignoredMetadata.
func strip(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for _, k := range []string{"status", "apiVersion", "kind"} {
		delete(out, k)
	}
	if md, ok := m["metadata"].(map[string]any); ok {
		c := make(map[string]any, len(md))
		for k, v := range md {
			c[k] = v
		}
		for _, k := range ignoredMetadata {
			delete(c, k)
		}
		out["metadata"] = c
	}
	return out
}

// plainKey is a map key written after a dot in a path; others are quoted in brackets.
var plainKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

func childPath(path, key string) string {
	if !plainKey.MatchString(key) {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// diffValue appends to out the fields under path that differ between a and b.
func diffValue(path string, a, b any, out *[]FieldChange) {
	am, aMap := a.(map[string]any)
	bm, bMap := b.(map[string]any)
	if aMap && bMap {
		keys := map[string]bool{}
		for k := range am {
			keys[k] = true
		}
		for k := range bm {
			keys[k] = true
		}
		for k := range keys {
			diffValue(childPath(path, k), am[k], bm[k], out)
		}
		return
	}
	al, aList := a.([]any)
	bl, bList := b.([]any)
	if aList && bList {
		for i := 0; i < max(len(al), len(bl)); i++ {
			var x, y any
			if i < len(al) {
				x = al[i]
			}
			if i < len(bl) {
				y = bl[i]
			}
			diffValue(path+"["+strconv.Itoa(i)+"]", x, y, out)
		}
		return
	}
	if !reflect.DeepEqual(a, b) {
		*out = append(*out, FieldChange{Path: path, Old: a, New: b})
	}
}

// objectChanges is FieldChanges of two versions of a typed object, each given its kind
// from the client scheme.
func objectChanges(before, after any) ([]FieldChange, error) {
	var maps [2]map[string]any
	for i, o := range []any{before, after} {
		ro, ok := o.(runtime.Object)
		if !ok {
			return nil, fmt.Errorf("comparing versions: %T is not an API object", o)
		}
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ro)
		if err != nil {
			return nil, fmt.Errorf("comparing versions: %w", err)
		}
		if kinds, _, err := scheme.Scheme.ObjectKinds(ro); err == nil {
			m["kind"] = kinds[0].Kind
		}
		maps[i] = m
	}
	return FieldChanges(maps[0], maps[1]), nil
}
