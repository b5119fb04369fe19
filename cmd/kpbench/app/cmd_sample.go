package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kpbench/kpbench/collector"
	"github.com/kpbench/kpbench/internal/cpuset"
	"github.com/kpbench/kpbench/runs"
)

// SampleOutput is the JSON document `kpbench sample --json` writes.
type SampleOutput struct {
	SchemaVersion int    `json:"schemaVersion"`
	ProcRoot      string `json:"procRoot"`
	collector.Series
	// CPU is the summary mapped onto the results schema (what a run's
	// point records; processes named kube-proxy or client fill its
	// processes block).
	CPU runs.CPU `json:"cpu"`
}

func newSampleCmd(g *globals) *cobra.Command {
	var (
		interval, duration time.Duration
		cpuList, procRoot  string
		jsonOut            string
		pids               []int
	)
	cmd := &cobra.Command{
		Use:   "sample [--interval 1s] [--duration 10s] [--cpus LIST] [--pid PID]... [--proc-root DIR] [--json FILE|-]",
		Short: "Sample node and process CPU from /proc",
		Long: `sample reads /proc/stat and /proc/PID/stat every --interval for --duration
(0: until interrupted) and prints each interval's CPU use in cores (CPU-seconds
per wall-clock second) and a summary over the whole window: the mean (window
busy time / window wall time) and the busiest interval.

Node figures sum the CPUs of --cpus (taskset list syntax, e.g. "0-1,3"; default
every CPU): user, nice, system, irq, softirq, steal and their total; idle and
iowait are not busy. Guest time is already inside user (and guest_nice inside
nice) in /proc/stat and is not added again. Per-process figures (--pid, as many
as wanted) are utime and stime of all the process's threads, converted from
clock ticks (USER_HZ=100), children excluded.

--json writes the samples and summary as JSON to FILE, or to stdout with "-"
(then no table is printed). Ctrl-C stops early and still prints the summary.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval <= 0 {
				return &ExitError{Code: 2, Err: fmt.Errorf("--interval must be positive, got %s", interval)}
			}
			if duration < 0 {
				return &ExitError{Code: 2, Err: fmt.Errorf("--duration must not be negative, got %s", duration)}
			}
			fs, cpus, err := procFlags(procRoot, cpuList)
			if err != nil {
				return err
			}
			var procs []collector.Process
			for _, pid := range pids {
				p, err := fs.Proc(pid)
				if err != nil {
					return &ExitError{Code: 2, Err: fmt.Errorf("--pid %d: %w", pid, err)}
				}
				procs = append(procs, collector.Process{Name: p.Comm, PID: pid})
			}

			table := jsonOut != "-"
			var mu sync.Mutex
			cfg := collector.SamplerConfig{CPUs: cpus, Processes: procs, Interval: interval}
			if table {
				cfg.OnSample = func(s collector.Sample) {
					mu.Lock()
					defer mu.Unlock()
					writeSampleRow(g.stdout, s, procs)
				}
			}
			s, err := fs.NewSampler(cfg)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			ctx := cmd.Context()
			if err := s.Start(ctx); err != nil {
				if errors.Is(err, collector.ErrNoSuchCPU) || errors.Is(err, collector.ErrNoSuchProcess) {
					return &ExitError{Code: 2, Err: err}
				}
				return err
			}
			g.logger.Debug("sampling", "procRoot", fs.Root(), "interval", interval, "duration", duration)
			if table {
				mu.Lock()
				writeSampleHeader(g.stdout, procs)
				mu.Unlock()
			}
			var timeout <-chan time.Time
			if duration > 0 {
				timer := time.NewTimer(duration)
				defer timer.Stop()
				timeout = timer.C
			}
			select {
			case <-timeout:
			case <-ctx.Done():
				g.logger.Info("interrupted; summarizing what was sampled")
			}
			ser, err := s.Stop()
			if err != nil {
				return err
			}
			for _, p := range ser.Problems {
				g.logger.Warn("reading failed", "problem", p)
			}
			if table {
				mu.Lock()
				defer mu.Unlock()
				writeSampleSummary(g.stdout, ser)
			}
			if jsonOut == "" {
				return nil
			}
			out := SampleOutput{SchemaVersion: runs.SchemaVersion, ProcRoot: fs.Root(), Series: *ser, CPU: ser.Summary.CPU()}
			if jsonOut == "-" {
				return writeSampleJSON(g.stdout, out)
			}
			f, err := os.Create(jsonOut)
			if err != nil {
				return fmt.Errorf("writing samples: %w", err)
			}
			if err := writeSampleJSON(f, out); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return fmt.Errorf("writing samples: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.DurationVar(&interval, "interval", time.Second, "time between readings")
	f.DurationVar(&duration, "duration", 10*time.Second, "how long to sample (0: until interrupted)")
	f.StringVar(&cpuList, "cpus", "", `CPUs whose /proc/stat lines make the node figure, e.g. "0-1,3" (default all)`)
	f.IntSliceVar(&pids, "pid", nil, "also sample this process's CPU (repeatable)")
	f.StringVar(&procRoot, "proc-root", "/proc", "where the proc filesystem to read is mounted (e.g. /host/proc)")
	f.StringVar(&jsonOut, "json", "", `write samples and summary as JSON to FILE ("-": stdout, no table)`)
	return cmd
}

func writeSampleJSON(w io.Writer, out SampleOutput) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("writing samples JSON: %w", err)
	}
	return nil
}

var coreColumns = []string{"user", "nice", "system", "irq", "softirq", "steal", "total"}

func coreValues(c collector.Cores) []float64 {
	return []float64{c.User, c.Nice, c.System, c.IRQ, c.SoftIRQ, c.Steal, c.Total}
}

// The live table is written a row at a time, so its columns have fixed
// widths (a tabwriter would size each row on its own).
func procColumn(p collector.Process) string { return fmt.Sprintf("%s/%d", p.Name, p.PID) }

func writeSampleHeader(w io.Writer, procs []collector.Process) {
	fmt.Fprintf(w, "%-12s %7s", "time", "seconds")
	for _, c := range coreColumns {
		fmt.Fprintf(w, " %7s", c)
	}
	for _, p := range procs {
		fmt.Fprintf(w, " %*s", max(7, len(procColumn(p))), procColumn(p))
	}
	fmt.Fprintln(w)
}

func writeSampleRow(w io.Writer, s collector.Sample, procs []collector.Process) {
	fmt.Fprintf(w, "%-12s %7.3f", s.End.Local().Format("15:04:05.000"), s.Seconds)
	for _, v := range coreValues(s.Node) {
		fmt.Fprintf(w, " %7.3f", v)
	}
	for _, p := range procs {
		cell := "-"
		for _, pc := range s.Processes {
			if pc.PID == p.PID {
				cell = fmt.Sprintf("%.3f", pc.Total)
			}
		}
		fmt.Fprintf(w, " %*s", max(7, len(procColumn(p))), cell)
	}
	fmt.Fprintln(w)
}

func writeSampleSummary(w io.Writer, ser *collector.Series) {
	sum := ser.Summary
	fmt.Fprintf(w, "\nsummary: %d %s over %.3f s, %s %s, in cores\n", len(ser.Samples), plural(len(ser.Samples), "sample", "samples"), sum.Seconds,
		plural(len(sum.CPUs), "CPU", "CPUs"), cpuset.Format(sum.CPUs))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\t"+strings.Join(coreColumns, "\t")+"\tmax total\t")
	row := []string{"node mean"}
	for _, v := range coreValues(sum.Mean) {
		row = append(row, fmt.Sprintf("%.3f", v))
	}
	row = append(row, fmt.Sprintf("%.3f", sum.MaxTotal))
	fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	for _, p := range sum.Processes {
		name := fmt.Sprintf("%s/%d", p.Name, p.PID)
		if p.Exited {
			name += " (exited)"
		}
		fmt.Fprintf(tw, "%s\t%.3f\t\t%.3f\t\t\t\t%.3f\t%.3f\t\n", name, p.Mean.User, p.Mean.System, p.Mean.Total, p.Max)
	}
	_ = tw.Flush()
}

// procFlags opens --proc and parses --cpus (empty: every CPU), both usage
// errors (exit 2) when bad.
func procFlags(procRoot, cpuList string) (collector.FS, []int, error) {
	fs, err := collector.NewFS(procRoot)
	if err != nil {
		return collector.FS{}, nil, &ExitError{Code: 2, Err: err}
	}
	var cpus []int
	if cpuList != "" {
		if cpus, err = cpuset.Parse(cpuList); err != nil {
			return collector.FS{}, nil, &ExitError{Code: 2, Err: fmt.Errorf("--cpus: %w", err)}
		}
	}
	return fs, cpus, nil
}
