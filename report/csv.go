package report

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kpbench/kpbench/runs"
)

// PointsCSV writes one row per point with every field of runs.Point
// flattened into columns named by their JSON paths (latency.meanUs,
// cpu.node.total, ...). errors.byKind becomes one column per kind seen in
// any point; invalidReasons are joined with "; ". Walking the type keeps the
// columns in step with the schema.
func PointsCSV(points []runs.Point) ([]byte, error) {
	kinds := map[string]bool{}
	for _, p := range points {
		for k := range p.Errors.ByKind {
			kinds[k] = true
		}
	}
	var kindList []string
	for k := range kinds {
		kindList = append(kindList, k)
	}
	sort.Strings(kindList)

	var header []string
	flatten(reflect.TypeOf(runs.Point{}), "", func(name string, _ []int) {
		if name == "errors.byKind" {
			for _, k := range kindList {
				header = append(header, name+"."+k)
			}
			return
		}
		header = append(header, name)
	}, nil)

	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.Write(header); err != nil {
		return nil, err
	}
	for i := range points {
		v := reflect.ValueOf(points[i])
		var row []string
		flatten(v.Type(), "", func(name string, index []int) {
			f, err := v.FieldByIndexErr(index)
			if err != nil { // inside an absent optional section
				row = append(row, "")
				return
			}
			if name == "errors.byKind" {
				m := f.Interface().(map[string]int64)
				for _, k := range kindList {
					row = append(row, strconv.FormatInt(m[k], 10))
				}
				return
			}
			row = append(row, formatCell(f))
		}, nil)
		if err := w.Write(row); err != nil {
			return nil, err
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return nil, fmt.Errorf("writing CSV: %w", err)
	}
	return buf.Bytes(), nil
}

var timeType = reflect.TypeOf(time.Time{})

// flatten calls leaf for every non-struct field of t (times are leaves),
// with its dotted JSON path and field index.
func flatten(t reflect.Type, prefix string, leaf func(name string, index []int), index []int) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := strings.Split(f.Tag.Get("json"), ",")[0]
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if prefix != "" {
			name = prefix + "." + name
		}
		idx := append(append([]int(nil), index...), i)
		ft := f.Type
		if ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct {
			ft = ft.Elem() // optional sections (depth): empty cells when absent
		}
		if ft.Kind() == reflect.Struct && ft != timeType {
			flatten(ft, name, leaf, idx)
			continue
		}
		leaf(name, idx)
	}
}

func formatCell(v reflect.Value) string {
	if ns, ok := v.Interface().(runs.NodeShare); ok {
		return ns.Node + "=" + strconv.FormatFloat(ns.Total, 'g', -1, 64)
	}
	if ps, ok := v.Interface().(runs.ProcessShare); ok {
		return processLabel(ps) + "=" + strconv.FormatFloat(ps.Cores, 'g', -1, 64)
	}
	if v.Type() == timeType {
		t := v.Interface().(time.Time)
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	switch v.Kind() {
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(v.Uint(), 10)
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.String:
		return v.String()
	case reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = formatCell(v.Index(i))
		}
		return strings.Join(parts, "; ")
	}
	return fmt.Sprint(v.Interface())
}
