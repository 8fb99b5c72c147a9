package config

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// This file walks the syntax tree of a cluster.toml against the Cluster type before go-toml
// decodes it. The walk does two jobs that go-toml's decoder cannot do for us:
//
//   - it records where every key is written, under the same dotted paths that validation
//     reports ("hosts[1].address"), so that validation errors can carry line numbers;
//   - it finds every unknown key and every value of the wrong type in one pass, where the
//     decoder stops at the first wrong type and reports unknown keys only when nothing else
//     is wrong.
//
// go-toml still decodes the document afterwards with DisallowUnknownFields, and anything it
// rejects that this walk let through (duplicate keys, redefined tables) is reported from there.

// keyPos is where a key is written: 1-based line and byte column.
type keyPos struct {
	line, col int
}

// docIndex is what the walk learns about one document.
type docIndex struct {
	data       []byte
	lineStarts []int             // byte offset of the start of each line
	keys       map[string]keyPos // key path -> position of its first mention
	arrays     map[string]int    // array-of-tables path -> number of elements so far
	problems   []Problem         // unknown keys and wrong types, in file order
	// stricter counts the problems found in things go-toml's decoder tolerates: keys that
	// match a known key except for letter case, and a [table] (or dotted key) where an array
	// of tables belongs, which go-toml takes as a one-element array. The fuzz test relies on it.
	stricter int
}

var clusterType = reflect.TypeFor[Cluster]()

// indexDocument parses data and walks it against the Cluster schema. A syntax error is
// returned as a single Problem; problems of shape are collected in the index.
func indexDocument(data []byte) (*docIndex, *Problem) {
	idx := &docIndex{
		data:   data,
		keys:   map[string]keyPos{},
		arrays: map[string]int{},
	}
	idx.lineStarts = append(idx.lineStarts, 0)
	for i, b := range data {
		if b == '\n' {
			idx.lineStarts = append(idx.lineStarts, i+1)
		}
	}

	var p unstable.Parser
	p.Reset(data)
	tablePath, tableType := "", clusterType
	for p.NextExpression() {
		expr := p.Expression()
		switch expr.Kind {
		case unstable.KeyValue:
			idx.keyValue(expr, tablePath, tableType)
		case unstable.Table, unstable.ArrayTable:
			tablePath, tableType = idx.tableHeader(expr)
		}
	}
	if err := p.Error(); err != nil {
		return idx, idx.syntaxProblem(err)
	}
	return idx, nil
}

// syntaxProblem turns a parser error into a positioned Problem.
func (idx *docIndex) syntaxProblem(err error) *Problem {
	pr := &Problem{Message: err.Error()}
	var perr *unstable.ParserError
	if errors.As(err, &perr) {
		pr.Message = perr.Message
		if off, ok := idx.offsetOf(perr.Highlight); ok {
			pos := idx.position(off)
			pr.Line, pr.Column = pos.line, pos.col
		}
	}
	return pr
}

// offsetOf returns the offset of b, a subslice of the document, within it.
func (idx *docIndex) offsetOf(b []byte) (int, bool) {
	if b == nil {
		return 0, false
	}
	off := cap(idx.data) - cap(b)
	if off < 0 || off > len(idx.data) {
		return 0, false
	}
	return off, true
}

// position converts a byte offset into a line and column.
func (idx *docIndex) position(off int) keyPos {
	i := sort.Search(len(idx.lineStarts), func(i int) bool { return idx.lineStarts[i] > off }) - 1
	i = max(i, 0)
	return keyPos{line: i + 1, col: off - idx.lineStarts[i] + 1}
}

// nodePos returns the position of a node, or fallback when the parser gave it no range
// (arrays carry none).
func (idx *docIndex) nodePos(n *unstable.Node, fallback keyPos) keyPos {
	if n.Raw.Length == 0 || int(n.Raw.Offset) > len(idx.data) {
		return fallback
	}
	return idx.position(int(n.Raw.Offset))
}

// line returns the line where path is written, or 0 when the file does not mention it.
func (idx *docIndex) line(path string) int {
	if idx == nil {
		return 0
	}
	return idx.keys[path].line
}

func (idx *docIndex) record(path string, pos keyPos) {
	if _, ok := idx.keys[path]; !ok {
		idx.keys[path] = pos
	}
}

// clipKey clips the key path among a problem's arguments: messages start with it, and a
// key can be as long as the file.
func clipKey(key string, args []any) []any {
	for i, a := range args {
		if a == any(key) {
			args[i] = clip(key)
		}
	}
	return args
}

func (idx *docIndex) problem(pos keyPos, key, format string, args ...any) {
	idx.problems = append(idx.problems, Problem{
		Line:    pos.line,
		Column:  pos.col,
		Key:     key,
		Message: fmt.Sprintf(format, clipKey(key, clipArgs(format, args))...),
	})
}

// tableHeader resolves a [table] or [[array table]] header to the path and type of the table
// that the following key/values fill. The type is nil when the header names something that
// is not in the schema (already reported).
func (idx *docIndex) tableHeader(expr *unstable.Node) (string, reflect.Type) {
	isArray := expr.Kind == unstable.ArrayTable
	path, t := "", clusterType
	it := expr.Key()
	for it.Next() {
		part := it.Node()
		last := it.IsLast()
		pos := idx.nodePos(part, keyPos{})
		name := string(part.Data)
		path = joinKey(path, name)
		idx.record(path, pos)
		if t != nil {
			t = idx.child(t, path, name, pos)
		}

		switch {
		case last && isArray:
			n := idx.arrays[path]
			idx.arrays[path] = n + 1
			if t != nil && !isArrayOfTables(t) {
				idx.problem(pos, path, "%s: want %s, not an array of tables", path, describeType(t, path))
				t = nil
			}
			path = fmt.Sprintf("%s[%d]", path, n)
			idx.record(path, pos)
			if t != nil {
				t = t.Elem()
			}
		case idx.arrays[path] > 0:
			// A header that goes through an array of tables refers to its last element.
			path = fmt.Sprintf("%s[%d]", path, idx.arrays[path]-1)
			switch {
			case t == nil:
			case isArrayOfTables(t):
				t = t.Elem()
			default:
				t = nil // [[path]] was reported as the wrong type already
			}
		default:
			if t != nil && !isTable(t) {
				idx.notTable(pos, path, t)
				t = nil
			}
		}
	}
	return path, t
}

// keyValue indexes and checks a key/value expression inside the table at base (of type t).
func (idx *docIndex) keyValue(expr *unstable.Node, base string, t reflect.Type) {
	path := base
	var pos keyPos
	it := expr.Key()
	for it.Next() {
		part := it.Node()
		pos = idx.nodePos(part, keyPos{})
		name := string(part.Data)
		path = joinKey(path, name)
		idx.record(path, pos)
		if t == nil {
			continue
		}
		t = idx.child(t, path, name, pos)
		if t != nil && !it.IsLast() && !isTable(t) {
			idx.notTable(pos, path, t)
			t = nil
		}
	}
	idx.value(expr.Value(), path, t, pos)
}

// notTable reports a table written where a value of type t belongs.
func (idx *docIndex) notTable(pos keyPos, path string, t reflect.Type) {
	if isArrayOfTables(t) {
		idx.stricter++
	}
	idx.problem(pos, path, "%s: want %s, not a table", path, describeType(t, path))
}

// value checks that the value n at path fits type t (nil: unknown, do not check).
func (idx *docIndex) value(n *unstable.Node, path string, t reflect.Type, pos keyPos) {
	if t == nil || !n.Valid() {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == unstable.Array {
		if t.Kind() != reflect.Slice {
			idx.problem(pos, path, "%s: want %s, not an array", path, describeType(t, path))
			return
		}
		i := 0
		elems := n.Children()
		for elems.Next() {
			e := elems.Node()
			p := fmt.Sprintf("%s[%d]", path, i)
			epos := idx.nodePos(e, pos)
			idx.record(p, epos)
			idx.value(e, p, t.Elem(), epos)
			i++
		}
		return
	}
	if n.Kind == unstable.InlineTable {
		if !isTable(t) {
			idx.problem(pos, path, "%s: want %s, not a table", path, describeType(t, path))
			return
		}
		kvs := n.Children()
		for kvs.Next() {
			if kv := kvs.Node(); kv.Kind == unstable.KeyValue {
				idx.keyValue(kv, path, t)
			}
		}
		return
	}

	// A scalar.
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		v := reflect.New(t).Interface().(encoding.TextUnmarshaler)
		if n.Kind != unstable.String {
			// go-toml hands the raw text of any scalar to UnmarshalText, so it takes the
			// integer 0 as a Duration ("0" is a Go duration). A bare number is not what the
			// schema means, so the walk refuses it on purpose.
			if v.UnmarshalText(n.Data) == nil {
				idx.stricter++
			}
			idx.problem(pos, path, "%s: want %s, not %s", path, describeType(t, path), describeKind(n.Kind))
			return
		}
		if err := v.UnmarshalText(n.Data); err != nil {
			idx.problem(pos, path, "%s: %v", path, err)
		}
		return
	}
	ok := false
	switch t.Kind() {
	case reflect.String:
		ok = n.Kind == unstable.String
	case reflect.Bool:
		ok = n.Kind == unstable.Bool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if n.Kind == unstable.Integer {
			idx.intRange(n, path, t, pos)
			return
		}
	case reflect.Interface:
		ok = true
	}
	if !ok {
		idx.problem(pos, path, "%s: want %s, not %s", path, describeType(t, path), describeKind(n.Kind))
	}
}

// intRange reports an integer that does not fit its field.
func (idx *docIndex) intRange(n *unstable.Node, path string, t reflect.Type, pos keyPos) {
	// TOML integers are Go integer literals as far as ParseInt with base 0 is concerned:
	// optional sign, 0x/0o/0b prefixes, underscores between digits.
	_, err := strconv.ParseInt(string(n.Data), 0, t.Bits())
	if err == nil {
		return
	}
	if errors.Is(err, strconv.ErrRange) {
		hi := int64(1)<<(t.Bits()-1) - 1
		idx.problem(pos, path, "%s: %s is out of range; want at most %d", path, n.Data, hi)
		return
	}
	// The parser accepted it, so it is a valid TOML integer ParseInt does not read; let the
	// decoder have the last word.
}

var textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()

// child returns the type of key name inside a value of type t, reporting an unknown key.
func (idx *docIndex) child(t reflect.Type, path, name string, pos keyPos) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Map:
		return t.Elem()
	case reflect.Struct:
		if f, ok := fieldByKey(t, name); ok {
			return f.Type
		}
		msg := fmt.Sprintf("unknown key %s", quoteValue(path))
		if hint := suggest(t, path, name); hint != "" {
			msg += fmt.Sprintf("; did you mean %s?", quoteValue(hint))
		}
		for _, k := range tomlKeys(t) {
			if strings.ToLower(name) == k {
				idx.stricter++
				break
			}
		}
		idx.problems = append(idx.problems, Problem{Line: pos.line, Column: pos.col, Key: path, Message: msg})
		return nil
	}
	// Not a table: the caller reports the wrong type.
	return t
}

// isTable reports whether values of type t are written as TOML tables.
func isTable(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return false
	}
	return t.Kind() == reflect.Struct || t.Kind() == reflect.Map
}

func isArrayOfTables(t reflect.Type) bool {
	return t.Kind() == reflect.Slice && isTable(t.Elem())
}

// describeType says in words what a value of type t looks like in TOML.
func describeType(t reflect.Type, path string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[Duration]() {
		return `a duration string such as "365d", "10y" or "8760h"`
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Slice:
		if isTable(t.Elem()) {
			return fmt.Sprintf("an array of tables ([[%s]])", stripIndexes(path))
		}
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(describeType(t.Elem(), path), "a "), "an ") + "s"
	case reflect.Map:
		return "a table of " + strings.TrimPrefix(describeType(t.Elem(), path), "a ") + "s"
	case reflect.Struct:
		return fmt.Sprintf("a table ([%s])", stripIndexes(path))
	}
	return "a value"
}

// stripIndexes turns "hosts[1].ssh" into "hosts.ssh", the way table headers name it.
func stripIndexes(path string) string {
	var b strings.Builder
	depth := 0
	for _, r := range path {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// describeKind names a TOML value kind with its article.
func describeKind(k unstable.Kind) string {
	switch k {
	case unstable.String:
		return "a string"
	case unstable.Bool:
		return "a boolean"
	case unstable.Integer:
		return "an integer"
	case unstable.Float:
		return "a float"
	case unstable.Array:
		return "an array"
	case unstable.InlineTable, unstable.Table:
		return "a table"
	case unstable.ArrayTable:
		return "an array of tables"
	case unstable.LocalDate, unstable.LocalTime, unstable.LocalDateTime, unstable.DateTime:
		return "a date or time"
	}
	return "a " + strings.ToLower(k.String())
}

// fieldByKey finds the field of struct type t whose toml tag is name, exactly.
func fieldByKey(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if tomlKey(f) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// tomlKey returns the key a struct field is written under, or "" for none.
func tomlKey(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

// tomlKeys lists the keys of struct type t in declaration order.
func tomlKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		if k := tomlKey(t.Field(i)); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// joinKey appends one key to a dotted path, quoting it when it is not a bare TOML key, so
// that paths read the way the key is written: `hosts[0].labels."example.com/zone"`.
func joinKey(prefix, key string) string {
	if !isBareKey(key) {
		key = strconv.Quote(key)
	}
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func isBareKey(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// suggest returns the key the user probably meant by name, written as a path, or "". It
// looks first for a sibling that is a small edit away ("locall" for "local", "pod-cidr" for
// "pod_cidr"), then for a key of that exact name one or two tables further down
// ("pod_cidr" at the top level for "networking.pod_cidr").
func suggest(t reflect.Type, path, name string) string {
	parent := strings.TrimSuffix(path, joinKey("", name))
	parent = strings.TrimSuffix(parent, ".")
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }

	best, bestDist := "", -1
	for _, k := range tomlKeys(t) {
		d := editDistance(norm(name), k)
		if bestDist < 0 || d < bestDist {
			best, bestDist = k, d
		}
	}
	if bestDist >= 0 && bestDist <= max(1, len(name)/4) {
		return joinKey(parent, best)
	}

	var found []string
	var walk func(t reflect.Type, rel string, depth int)
	walk = func(t reflect.Type, rel string, depth int) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || depth > 2 || reflect.PointerTo(t).Implements(textUnmarshalerType) {
			return
		}
		for i := range t.NumField() {
			f := t.Field(i)
			k := tomlKey(f)
			if k == "" {
				continue
			}
			if depth > 0 && k == norm(name) {
				found = append(found, joinKey(rel, k))
			}
			walk(f.Type, joinKey(rel, k), depth+1)
		}
	}
	walk(t, "", 0)
	if len(found) == 1 {
		if parent == "" {
			return found[0]
		}
		return parent + "." + found[0]
	}
	return ""
}

// editDistance is the optimal string alignment distance between a and b, in bytes: the
// Levenshtein distance, with swapping two adjacent bytes counting as one edit.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return max(len(a), len(b))
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// schemaPaths lists every key path of the schema, with "[0]" for array elements and without
// map entries: "hosts[0].ssh.port". Tests use it to check PrintDefaults covers the schema.
func schemaPaths() []string {
	var out []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch {
		case t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(textUnmarshalerType):
			for i := range t.NumField() {
				f := t.Field(i)
				if k := tomlKey(f); k != "" {
					p := joinKey(prefix, k)
					out = append(out, p)
					walk(f.Type, p)
				}
			}
		case isArrayOfTables(t):
			walk(t.Elem(), prefix+"[0]")
		}
	}
	walk(clusterType, "")
	return slices.Clip(out)
}
