package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kpbench/kpbench/runs"
)

// PointConfig says what to collect over one measured point.
type PointConfig struct {
	// CPUs are the client node's CPUs (empty: all).
	CPUs []int
	// KubeProxyPID is sampled as a process when non-zero.
	KubeProxyPID int
	// NetnsPID is a process inside the client node's network namespace
	// (kube-proxy's PID will do); its /proc/PID/net gives the node's
	// conntrack table. 0 reads the collector's own namespace.
	NetnsPID int
	// Interval between CPU readings (1s when zero).
	Interval time.Duration
	// KubeProxy, when set, is scraped at Start and Stop.
	KubeProxy *KubeProxyScraper
	// NoProcesses leaves out the per-process attribution
	// (PointResult.Processes), whose scans are the collector's own CPU.
	NoProcesses bool
}

// PointResult is what the collector contributes to a point.
type PointResult struct {
	CPU       runs.CPU       `json:"cpu"`
	Conntrack runs.Conntrack `json:"conntrack"`
	// Sync is kube-proxy's syncs during the window (zero without a
	// scraper). A run wanting the sync that programmed a Service step
	// scrapes around the scale step with KubeProxyDelta instead.
	Sync   runs.Sync `json:"sync"`
	Series *Series   `json:"series"`
	// Processes is the node's CPU per process, per sample (nil where
	// it could not be sampled: Problems says why).
	Processes *ProcessSeries `json:"processes,omitempty"`
	// CPUWindow is the span CPU covers when it was narrowed to the load's
	// measured window (the samples InWindow keeps); nil when
	// CPU is the whole series.
	CPUWindow *Span            `json:"cpuWindow,omitempty"`
	KubeProxy *KubeProxyWindow `json:"kubeProxy,omitempty"`
	// ConntrackBefore and ConntrackAfter are the raw readings (nil when
	// conntrack could not be read).
	ConntrackBefore *ConntrackStats `json:"conntrackBefore,omitempty"`
	ConntrackAfter  *ConntrackStats `json:"conntrackAfter,omitempty"`
	SoftnetDelta    *SoftnetStats   `json:"softnetDelta,omitempty"`
	// MetricsBefore and MetricsAfter are kube-proxy's /metrics text.
	MetricsBefore []byte `json:"-"`
	MetricsAfter  []byte `json:"-"`
	// Problems are the parts that could not be collected; the rest is
	// still valid.
	Problems []string `json:"problems,omitempty"`
}

// PointMeasurement collects a point's node-side numbers between Start and
// Stop: CPU samples, conntrack and softnet deltas, kube-proxy metrics.
type PointMeasurement struct {
	fs      FS
	cfg     PointConfig
	sampler *Sampler
	procs   *ProcessSampler

	ctBefore      *ConntrackStats
	snBefore      *SoftnetStats
	kpBefore      *KubeProxyMetrics
	metricsBefore []byte
	problems      []string
}

// StartPoint starts collecting. Only the CPU sampler is essential: if it
// cannot start (a CPU or process is missing) StartPoint fails; conntrack
// or kube-proxy metrics that cannot be read are recorded as problems.
func (fs FS) StartPoint(ctx context.Context, cfg PointConfig) (*PointMeasurement, error) {
	m := &PointMeasurement{fs: fs, cfg: cfg}
	var procs []Process
	if cfg.KubeProxyPID > 0 {
		procs = append(procs, Process{Name: ProcessKubeProxy, PID: cfg.KubeProxyPID})
	}
	s, err := fs.NewSampler(SamplerConfig{CPUs: cfg.CPUs, Processes: procs, Interval: cfg.Interval})
	if err != nil {
		return nil, err
	}
	m.sampler = s
	if cfg.KubeProxy != nil {
		kp, raw, err := cfg.KubeProxy.Scrape(ctx)
		if err != nil {
			m.problem("kube-proxy metrics before: %v", err)
		}
		m.kpBefore, m.metricsBefore = kp, raw
	}
	if ct, err := fs.Conntrack(cfg.NetnsPID); err != nil {
		m.problem("conntrack before: %v", err)
	} else {
		m.ctBefore = &ct
	}
	if sn, err := fs.Softnet(cfg.NetnsPID); err != nil {
		m.problem("softnet before: %v", err)
	} else {
		m.snBefore = &sn
	}
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	// Per-process attribution is never essential.
	if !cfg.NoProcesses {
		ps := NewProcessSampler(fs.root, cfg.CPUs, cfg.Interval)
		if err := ps.Start(ctx); err != nil {
			m.problem("per-process CPU: %v", err)
		} else {
			m.procs = ps
		}
	}
	return m, nil
}

func (m *PointMeasurement) problem(format string, args ...any) {
	m.problems = append(m.problems, fmt.Sprintf(format, args...))
}

// Stop ends the window and gathers the result.
func (m *PointMeasurement) Stop(ctx context.Context) (*PointResult, error) {
	ser, err := m.sampler.Stop()
	var procs *ProcessSeries
	if m.procs != nil {
		procs = m.procs.Stop()
	}
	if err != nil {
		return nil, err
	}
	r := &PointResult{Series: ser, CPU: ser.Summary.CPU(), MetricsBefore: m.metricsBefore, Processes: procs}
	for _, p := range ser.Problems {
		m.problem("cpu: %s", p)
	}
	if m.ctBefore != nil {
		if ct, err := m.fs.Conntrack(m.cfg.NetnsPID); err != nil {
			m.problem("conntrack after: %v", err)
		} else {
			r.ConntrackBefore, r.ConntrackAfter = m.ctBefore, &ct
			r.Conntrack = ConntrackWindow(*m.ctBefore, ct)
		}
	}
	if m.snBefore != nil {
		if sn, err := m.fs.Softnet(m.cfg.NetnsPID); err != nil {
			m.problem("softnet after: %v", err)
		} else {
			d := sn.Sub(*m.snBefore)
			r.SoftnetDelta = &d
		}
	}
	if m.cfg.KubeProxy != nil {
		after, raw, err := m.cfg.KubeProxy.Scrape(ctx)
		r.MetricsAfter = raw
		switch {
		case err != nil:
			m.problem("kube-proxy metrics after: %v", err)
		case m.kpBefore != nil:
			w, err := KubeProxyDelta(m.kpBefore, after)
			if err != nil {
				m.problem("kube-proxy metrics: %v", err)
				break
			}
			r.KubeProxy = &w
			r.Sync = w.RunsSync()
		}
	}
	r.Problems = m.problems
	return r, nil
}

// Raw file names WriteRaw writes under raw/<point-id>/.
const (
	RawCPUCSV        = "cpu.csv"
	RawCollectorJSON = "collector.json"
	RawMetricsBefore = "kube-proxy-metrics-before.txt"
	RawMetricsAfter  = "kube-proxy-metrics-after.txt"
)

// WriteRaw writes the point's raw collector data into dir (created if
// needed): the CPU samples as CSV, kube-proxy's metrics text before and
// after, and the whole result as JSON.
func (r *PointResult) WriteRaw(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing raw collector data: %w", err)
	}
	var errs []error
	if r.Series != nil {
		f, err := os.Create(filepath.Join(dir, RawCPUCSV))
		if err == nil {
			err = r.Series.WriteCSV(f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		errs = append(errs, err)
	}
	for name, b := range map[string][]byte{RawMetricsBefore: r.MetricsBefore, RawMetricsAfter: r.MetricsAfter} {
		if b != nil {
			errs = append(errs, os.WriteFile(filepath.Join(dir, name), b, 0o644))
		}
	}
	doc := struct {
		SchemaVersion int `json:"schemaVersion"`
		*PointResult
	}{runs.SchemaVersion, r}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, RawCollectorJSON), append(b, '\n'), 0o644)
	}
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("writing raw collector data to %s: %w", dir, err)
	}
	return nil
}
