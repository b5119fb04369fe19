package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/kpbench/kpbench/loadgen"
)

func newLoadCmd(g *globals) *cobra.Command {
	var (
		cfg           loadgen.Config
		jsonOut       string
		timelineOut   string
		histogramsOut string
		requestsOut   string
		embed         bool
		failOnInvalid bool
		progress      string
		firstPacket   bool
	)
	cmd := &cobra.Command{
		Use:   "load [flags] URL [URL...]",
		Short: "Open-loop fixed-rate HTTP load",
		Long: `load sends HTTP/1.1 GET requests at a fixed rate (open loop: a slow server
never slows the schedule) and reports latency from each request's intended
send time (coordinated omission corrected), service time, TCP connect time,
schedule lag, errors by kind and the client's own CPU.

With several URLs, each new connection picks one uniformly at random.
--requests-per-conn 1 opens a new TCP connection per request, N closes each
connection after N requests, 0 keeps connections open.

The run ends at --warmup plus --duration, whatever the schedule still owes:
requests it could not send by then are counted as not sent, and requests in
flight get at most --timeout more. A rate the client cannot reach shows within
a second: a warning on stderr (and, with --abort-when-behind, the end of the
run). On a terminal a progress line shows every second (--progress).

The achieved rate counts answered requests (errors excluded); the sent rate
is shown beside it. Interrupted, the figures cover the time run.

A run is invalid when the achieved rate is below 99% of the target, more than
0.1% of requests fail, a send had to wait because --max-inflight requests
were in flight, requests were not sent, or it was interrupted or aborted.

--embed-histograms adds the four HDR histograms (latency, service time,
connect, lag; base64 HDR V2, ns, as --histograms writes them) to the JSON
summary under "histograms": what it takes to merge the summaries of several
clients exactly (loadgen.MergeSummaries), as in-cluster load clients do.

--first-packet loads the kernel probe (docs/firstpacket.md) before the load
starts and adds the kernel's time to first packet of this process's new
connections in the measured window to the JSON summary ("firstPacket"), with
the SYN-ACK's way back ("firstPacket.return"): how the lab's VM client node
times its guest kernel. Without root or BTF the
summary says why the probe could not run; the load runs either way.

--requests-log FILE writes one CSV line per request of the measured window,
by start time: start (Unix ns), connect time (ns; 0 on a reused connection
or a failed connect), whether it opened its connection, the address it was
sent to, the backend that answered (each request asks kpbench serve to name
itself in a Kpbench-Backend header) and its error kind. The records' room is allocated
before the window and the file is written after it.`,
		Example: `  kpbench load --rate 1000 --duration 30s --requests-per-conn 1 http://198.19.0.10/
  kpbench load --rate 10000 --json - --timeline tl.csv --histograms h.json http://127.0.0.1:8080/
  kpbench load --rate 500 --json - --embed-histograms http://198.19.0.10/`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return &ExitError{Code: 2, Err: errors.New("load needs at least one URL")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.URLs = args
			cfg.LogRequests = requestsOut != ""
			if err := cfg.Validate(); err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if embed && jsonOut == "" {
				return &ExitError{Code: 2, Err: errors.New("--embed-histograms needs --json (the table has no room for histograms)")}
			}
			g.logger.Debug("load starting", "urls", len(cfg.URLs), "rate", cfg.Rate, "duration", cfg.Duration, "warmup", cfg.Warmup, "requestsPerConn", cfg.RequestsPerConn)
			show, err := loadProgress(g, progress, cfg.AbortWhenBehind)
			if err != nil {
				return badInput(err)
			}
			cfg.Progress = show.report
			var fp *loadFirstPacket
			if firstPacket {
				fp = beginFirstPacket(cmd.Context())
			}
			res, err := loadgen.Run(cmd.Context(), cfg)
			show.done()
			if err == nil && fp != nil {
				fp.end(context.WithoutCancel(cmd.Context()), &res.Summary)
			}
			if err != nil {
				if errors.Is(err, loadgen.ErrInvalidConfig) {
					return &ExitError{Code: 2, Err: err}
				}
				return err
			}
			if embed {
				if res.Summary.Histograms, err = res.Histograms.Encode(); err != nil {
					return err
				}
			}
			if err := writeLoadOutputs(g, res, jsonOut, timelineOut, histogramsOut); err != nil {
				return err
			}
			if requestsOut != "" {
				if err := writeTo(g, requestsOut, func(w io.Writer) error { return loadgen.WriteRequestLog(w, res.Requests) }); err != nil {
					return err
				}
				if res.RequestsNotLogged > 0 {
					g.logger.Warn("requests log incomplete", "notLogged", res.RequestsNotLogged)
				}
			}
			if err := cmd.Context().Err(); err != nil {
				// The partial results are written; the exit status says so.
				return &ExitError{Code: ExitInterrupted, Err: fmt.Errorf("load interrupted after %.2fs of the %s window; the figures cover the time run", res.Summary.MeasuredSeconds, cfg.Duration)}
			}
			if failOnInvalid && !res.Summary.Valid {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	loadgen.BindFlags(f, &cfg)
	f.StringVar(&jsonOut, "json", "", "write the JSON summary to FILE ('-' for stdout) instead of the table")
	f.StringVar(&timelineOut, "timeline", "", "write the per-second timeline CSV to FILE")
	f.StringVar(&histogramsOut, "histograms", "", "write the HDR histograms (JSON of base64 HDR V2 encodings, ns) to FILE")
	f.StringVar(&requestsOut, "requests-log", "", "write one CSV line per request of the measured window to FILE: start, connect, new connection, target, answering backend, error kind")
	f.BoolVar(&embed, "embed-histograms", false, "also put the HDR histograms into the JSON summary (needs --json), so that summaries of several clients merge exactly")
	f.BoolVar(&failOnInvalid, "fail-invalid", false, "exit with status 1 when the run is invalid")
	f.BoolVar(&firstPacket, "first-packet", false, "time each new connection's first packet in this machine's kernel (eBPF; needs root and BTF) and put it in the JSON summary's firstPacket; a probe that cannot load says why there")
	f.StringVar(&progress, "progress", "auto", "progress line every second on stderr: auto (on a terminal), line, or none")
	return cmd
}

func writeLoadOutputs(g *globals, res *loadgen.Result, jsonOut, timelineOut, histogramsOut string) error {
	if jsonOut == "" {
		if err := res.Summary.WriteText(g.stdout); err != nil {
			return fmt.Errorf("writing summary: %w", err)
		}
	} else if err := writeTo(g, jsonOut, res.Summary.WriteJSON); err != nil {
		return err
	}
	if timelineOut != "" {
		if err := writeTo(g, timelineOut, func(w io.Writer) error { return loadgen.WriteTimelineCSV(w, res.Timeline) }); err != nil {
			return err
		}
	}
	if histogramsOut != "" {
		if err := writeTo(g, histogramsOut, res.Histograms.WriteJSON); err != nil {
			return err
		}
	}
	// The table carries its own warning; with --json say it on stderr.
	if jsonOut != "" && res.Summary.BehindSchedule() {
		g.logger.Warn("the schedule fell behind", "lagP99Us", res.Summary.Lag.P99Us, "lagMaxUs", res.Summary.Lag.MaxUs)
	}
	if jsonOut != "" && !res.Summary.Valid {
		g.logger.Warn("run is invalid", "reasons", strings.Join(res.Summary.InvalidReasons, "; "))
	}
	return nil
}

// writeTo writes with fn to path, or to stdout when path is "-".
func writeTo(g *globals, path string, fn func(io.Writer) error) error {
	if path == "-" {
		return fn(g.stdout)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	if err := fn(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// loadProgressView shows a load's progress: a line rewritten in place every
// second on a terminal (as vegeta's -every and fortio's periodic lines
// do), and one warning, in any case, once the client falls behind its
// schedule.
type loadProgressView struct {
	report func(loadgen.Progress)
	done   func()
}

func loadProgress(g *globals, mode string, aborting bool) (loadProgressView, error) {
	line := false
	switch mode {
	case "auto":
		line = isTerminal(g.stderr)
	case "line":
		line = true
	case "none":
	default:
		return loadProgressView{}, fmt.Errorf("--progress must be auto, line or none, got %q", mode)
	}
	var (
		mu      sync.Mutex
		warned  bool
		written bool
	)
	report := func(p loadgen.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if line {
			phase := "window"
			if p.Warmup {
				phase = "warm-up"
			}
			fmt.Fprintf(g.stderr, "\r\033[K%s %s: %d sent of %d due, %d answered, %d failed, %s behind",
				p.Elapsed.Round(time.Second), phase, p.Sent, p.Due, p.Answered, p.Failed, p.Behind.Round(time.Millisecond))
			written = true
		}
		if p.IsBehind && !warned {
			warned = true
			if written {
				fmt.Fprintln(g.stderr)
				written = false
			}
			next := "the run will be invalid; lower --rate, or pass --abort-when-behind to stop early"
			if aborting {
				next = "stopping (--abort-when-behind)"
			}
			g.logger.Warn(fmt.Sprintf("the client cannot keep this rate: %s behind its schedule after %s (%d of %d requests sent); %s",
				p.Behind.Round(time.Millisecond), p.Elapsed.Round(100*time.Millisecond), p.Sent, p.Due, next))
		}
	}
	done := func() {
		mu.Lock()
		defer mu.Unlock()
		if written {
			fmt.Fprintln(g.stderr)
		}
	}
	return loadProgressView{report: report, done: done}, nil
}
