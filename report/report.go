package report

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kpbench/kpbench/runs"
)

// Output file names inside a results directory.
const (
	MarkdownFile = "report.md"
	HTMLFile     = "report.html"
	CSVFile      = "points.csv"
)

// ErrNoRun is returned for a directory without run.json.
var ErrNoRun = errors.New("not a kpbench results directory (no run.json)")

// Data is a results directory as read from run.json and points.jsonl.
type Data struct {
	Dir    string
	Run    *runs.Run
	Points []runs.Point
	groups []*group
}

// Load reads a results directory. It needs only run.json and points.jsonl,
// so a report can be redrawn long after the run.
func Load(dir string) (*Data, error) {
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("results directory %s does not exist", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("results directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, runs.RunFile)); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, ErrNoRun)
	}
	run, err := runs.ReadRun(dir)
	if err != nil {
		return nil, err
	}
	points, err := runs.ReadPoints(dir)
	if err != nil {
		return nil, err
	}
	return &Data{Dir: dir, Run: run, Points: points, groups: groupPoints(points)}, nil
}

// Result lists what Generate wrote.
type Result struct {
	Files    []string
	Plots    []Plot
	Findings []Finding
}

// Generate writes plots/, report.md, report.html and points.csv into the
// results directory d was read from.
func Generate(d *Data) (*Result, error) {
	plots, err := buildPlots(d)
	if err != nil {
		return nil, fmt.Errorf("drawing plots: %w", err)
	}
	if err := writePlots(d.Dir, plots); err != nil {
		return nil, err
	}
	res := &Result{Plots: plots, Findings: Findings(d)}
	for _, p := range plots {
		if p.Skipped == "" {
			res.Files = append(res.Files, filepath.Join(d.Dir, runs.PlotsDir, p.Name+".png"), filepath.Join(d.Dir, runs.PlotsDir, p.Name+".svg"))
		}
	}
	doc := newDocument(d, plots, res.Findings)
	outputs := []struct {
		name  string
		write func() ([]byte, error)
	}{
		{CSVFile, func() ([]byte, error) { return PointsCSV(d.Points) }},
		{MarkdownFile, doc.markdown},
		{HTMLFile, doc.html},
	}
	for _, o := range outputs {
		data, err := o.write()
		if err != nil {
			return nil, fmt.Errorf("rendering %s: %w", o.name, err)
		}
		path := filepath.Join(d.Dir, o.name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return nil, fmt.Errorf("writing %s: %w", o.name, err)
		}
		res.Files = append(res.Files, path)
	}
	return res, nil
}
