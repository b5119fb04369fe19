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
// crash loses at most the point being measured. A torn last line (a writer
// that died mid-append: bytes after the last newline) is cut off first;
// appended after it, the new point would glue onto the torn bytes into one
// bad line in the middle of the file, which no reader could skip.
func AppendPoint(dir string, p *Point) error {
	p.SchemaVersion = SchemaVersion
	data, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encoding point %s: %w", p.ID, err)
	}
	path := filepath.Join(dir, PointsFile)
	if err := truncateTorn(path); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
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

// truncateTorn cuts path after its last newline when bytes follow it.
// Every complete line ends with one (AppendPoint writes line and newline in
// one write), so what follows the last is an unfinished point.
func truncateTorn(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening points: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("points: %w", err)
	}
	size := fi.Size()
	if size == 0 {
		return nil
	}
	// Scan back from the end in blocks for the last newline.
	const block = 64 * 1024
	buf := make([]byte, block)
	end := size
	for end > 0 {
		start := max(end-block, 0)
		n, err := f.ReadAt(buf[:end-start], start)
		if err != nil && n < int(end-start) {
			return fmt.Errorf("reading points: %w", err)
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			cut := start + int64(i) + 1
			if cut == size {
				return nil // ends with a newline: nothing torn
			}
			return truncateAt(f, cut)
		}
		end = start
	}
	return truncateAt(f, 0) // one torn line and nothing else
}

func truncateAt(f *os.File, size int64) error {
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("cutting the torn last line of points: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing points: %w", err)
	}
	return nil
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
