package runs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// File names inside a run directory.
const (
	RunFile    = "run.json"
	PointsFile = "points.jsonl"
	RawDir     = "raw"
	PlotsDir   = "plots"
)

// ErrUnknownSchema is returned for a document written by an incompatible
// version of kpbench.
var ErrUnknownSchema = errors.New("unknown schemaVersion")

// NewID returns the run id for a scenario started at t:
// 2006-01-02T150405_<scenario-name>.
func NewID(t time.Time, scenario string) string {
	return t.UTC().Format("2006-01-02T150405") + "_" + scenario
}

// WriteRun writes run.json atomically (temp file and rename), so a reader
// never sees half a document.
func WriteRun(dir string, r *Run) error {
	r.SchemaVersion = SchemaVersion
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding run.json: %w", err)
	}
	return writeAtomic(filepath.Join(dir, RunFile), append(data, '\n'))
}

// ReadRun reads run.json from a run directory.
func ReadRun(dir string) (*Run, error) {
	data, err := os.ReadFile(filepath.Join(dir, RunFile))
	if err != nil {
		return nil, fmt.Errorf("reading run: %w", err)
	}
	var r Run
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", filepath.Join(dir, RunFile), err)
	}
	if r.SchemaVersion != SchemaVersion {
		return nil, fmt.Errorf("%s: %w %d (this kpbench reads %d)", filepath.Join(dir, RunFile), ErrUnknownSchema, r.SchemaVersion, SchemaVersion)
	}
	return &r, nil
}

// AppendPoint appends one point to points.jsonl and syncs it to disk, so a
// crash loses at most the point being measured.
func AppendPoint(dir string, p *Point) error {
	p.SchemaVersion = SchemaVersion
	data, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encoding point %s: %w", p.ID, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, PointsFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening points: %w", err)
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("appending point %s: %w", p.ID, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing points: %w", err)
	}
	return f.Close()
}

// ReadPoints reads points.jsonl. A torn last line (the writer died while
// appending) is ignored; any other bad line is an error naming its number.
func ReadPoints(dir string) ([]Point, error) {
	path := filepath.Join(dir, PointsFile)
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading points: %w", err)
	}
	var points []Point
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var p Point
		if err := json.Unmarshal(b, &p); err != nil {
			if !bytes.HasSuffix(data, []byte("\n")) && isLastLine(data, line) {
				break // torn write of the last point
			}
			return nil, fmt.Errorf("%s line %d: %w", path, line, err)
		}
		if p.SchemaVersion != SchemaVersion {
			return nil, fmt.Errorf("%s line %d: %w %d (this kpbench reads %d)", path, line, ErrUnknownSchema, p.SchemaVersion, SchemaVersion)
		}
		points = append(points, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return points, nil
}

func isLastLine(data []byte, line int) bool {
	return bytes.Count(bytes.TrimRight(data, "\n"), []byte("\n"))+1 == line
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
