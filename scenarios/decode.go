package scenarios

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"
)

// FieldError is one problem with a scenario, located by its field path
// (e.g. "spec.load.rate" or "spec.services[2]").
type FieldError struct {
	Path    string
	Message string
}

func (e FieldError) Error() string { return e.Path + ": " + e.Message }

// ErrorList collects every problem found in a scenario.
type ErrorList []FieldError

func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = "  - " + e.Error()
	}
	noun := "problems"
	if len(l) == 1 {
		noun = "problem"
	}
	return fmt.Sprintf("%d %s:\n%s", len(l), noun, strings.Join(msgs, "\n"))
}

// Resolve reads, decodes, defaults and validates a scenario from a file or, when
// ref names no file, from the catalog.
func Resolve(ref string) (*Scenario, error) {
	if s, ok, err := FromCatalog(ref); ok || err != nil {
		if err == nil {
			// A directory is not a scenario: the repository's own churn/
			// package must not hide the churn scenario.
			if fi, statErr := os.Stat(ref); statErr == nil && !fi.IsDir() {
				return nil, fmt.Errorf("%q is both a catalog scenario and a file; use ./%s for the file", ref, ref)
			}
		}
		return s, err
	}
	data, err := os.ReadFile(ref)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no scenario file %q and no catalog scenario of that name (catalog: %s)", ref, strings.Join(CatalogNames(), ", "))
		}
		return nil, fmt.Errorf("reading scenario: %w", err)
	}
	s, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", ref, err)
	}
	return s, nil
}

// Parse decodes a scenario document strictly, applies defaults and validates
// it. Every problem (unknown fields, wrong types, invalid values) comes back
// at once as an ErrorList.
func Parse(data []byte) (*Scenario, error) {
	jsonData, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	var raw any
	dec := json.NewDecoder(bytes.NewReader(jsonData))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	if raw == nil {
		return nil, ErrorList{{Path: "(document)", Message: "empty scenario"}}
	}
	var errs ErrorList
	// Check the shape first and drop what does not fit, so that one bad
	// field does not hide the others.
	clean := checkShape(raw, reflect.TypeOf(Scenario{}), "", &errs)
	cleanJSON, err := json.Marshal(clean)
	if err != nil {
		return nil, fmt.Errorf("re-encoding scenario: %w", err)
	}
	var s Scenario
	if err := json.Unmarshal(cleanJSON, &s); err != nil {
		errs = append(errs, FieldError{Path: "(document)", Message: err.Error()})
	}
	SetDefaults(&s)
	errs = append(errs, Validate(&s)...)
	if len(errs) > 0 {
		sortErrors(errs)
		return nil, errs
	}
	return &s, nil
}

var (
	durationType   = reflect.TypeOf(Duration(0))
	placementsType = reflect.TypeOf(Placements(nil))
)

// checkShape walks a decoded JSON value against the Go type it will be
// decoded into, records unknown fields and type mismatches, and returns the
// value with the offending parts removed.
func checkShape(v any, t reflect.Type, path string, errs *ErrorList) any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	bad := func(want string) any {
		*errs = append(*errs, FieldError{Path: pathOr(path), Message: fmt.Sprintf("must be %s, got %s", want, describe(v))})
		return nil
	}
	if v == nil {
		return nil
	}
	switch {
	case t == durationType:
		s, ok := v.(string)
		if !ok {
			return bad(`a duration string such as "30s"`)
		}
		var d Duration
		if err := d.UnmarshalJSON([]byte(fmt.Sprintf("%q", s))); err != nil {
			*errs = append(*errs, FieldError{Path: pathOr(path), Message: err.Error()})
			return nil
		}
		return v
	case t == placementsType:
		// A single targets value or a list of them.
		if _, ok := v.(string); ok {
			return v
		}
		l, ok := v.([]any)
		if !ok {
			return bad("a targets value such as deepest, or a list of them")
		}
		out := make([]any, 0, len(l))
		for i, e := range l {
			if _, ok := e.(string); !ok {
				*errs = append(*errs, FieldError{Path: fmt.Sprintf("%s[%d]", path, i), Message: fmt.Sprintf("must be a string, got %s", describe(e))})
				continue
			}
			out = append(out, e)
		}
		return out
	case t.Kind() == reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return bad("an object")
		}
		fields := map[string]reflect.StructField{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := strings.Split(f.Tag.Get("json"), ",")[0]
			if name != "" && name != "-" {
				fields[name] = f
			}
		}
		out := map[string]any{}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			f, ok := fields[k]
			sub := join(path, k)
			if !ok {
				*errs = append(*errs, FieldError{Path: sub, Message: "unknown field" + suggest(k, fields)})
				continue
			}
			if c := checkShape(m[k], f.Type, sub, errs); c != nil {
				out[k] = c
			}
		}
		return out
	case t.Kind() == reflect.Slice:
		l, ok := v.([]any)
		if !ok {
			return bad("a list")
		}
		out := make([]any, 0, len(l))
		for i, e := range l {
			if c := checkShape(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs); c != nil {
				out = append(out, c)
			}
		}
		return out
	case t.Kind() == reflect.String:
		if _, ok := v.(string); !ok {
			return bad("a string")
		}
		return v
	case t.Kind() == reflect.Bool:
		if _, ok := v.(bool); !ok {
			return bad("true or false")
		}
		return v
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			return bad("an integer")
		}
		if _, err := n.Int64(); err != nil {
			return bad("an integer")
		}
		return v
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		n, ok := v.(json.Number)
		if !ok {
			return bad("a number")
		}
		if _, err := n.Float64(); err != nil {
			return bad("a number")
		}
		return v
	}
	return v
}

func describe(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("string %q", x)
	case json.Number:
		return "number " + x.String()
	case bool:
		return fmt.Sprintf("%t", x)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func suggest(k string, fields map[string]reflect.StructField) string {
	for name := range fields {
		if strings.EqualFold(name, k) {
			return fmt.Sprintf(" (did you mean %q?)", name)
		}
	}
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names)
	return " (known: " + strings.Join(names, ", ") + ")"
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func pathOr(p string) string {
	if p == "" {
		return "(document)"
	}
	return p
}

func sortErrors(errs ErrorList) {
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Path < errs[j].Path })
}

// Marshal writes the scenario as YAML with fields in the order the types
// declare them (JSON is YAML: decoding it into a yaml.Node keeps the order).
func Marshal(s *Scenario) ([]byte, error) {
	data, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var node yamlv3.Node
	if err := yamlv3.Unmarshal(data, &node); err != nil {
		return nil, err
	}
	clearStyle(&node)
	var buf bytes.Buffer
	enc := yamlv3.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&node); err != nil {
		return nil, err
	}
	return buf.Bytes(), enc.Close()
}

// clearStyle drops the flow style and quoting JSON input carries, so the
// output reads as ordinary block YAML.
func clearStyle(n *yamlv3.Node) {
	n.Style = 0
	for _, c := range n.Content {
		clearStyle(c)
	}
}
