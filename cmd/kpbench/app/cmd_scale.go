package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/clusters/lab"
	"github.com/kpbench/kpbench/scaler"
)

// scaleFlags are kpbench scale's flags as plain values.
type scaleFlags struct {
	services            int
	servicesSet         bool // --services given (on the command line, in the environment or the config file)
	endpointsPerService int
	endpointIPs         []string
	namespace           string
	kubeconfig          string
	kubeContext         string
	concurrency         int
	qps                 float32
	burst               int
	port, targetPort    int32
	wait                bool
	waitTimeout         time.Duration
	kubeProxyMetrics    string
	yes                 bool
	output              string
	progress            string
	labName             string
	force               bool
}

func newScaleCmd(g *globals) *cobra.Command {
	var f scaleFlags
	cmd := &cobra.Command{
		Use:   "scale --services N",
		Short: "Bring the number of synthetic Services to exactly N",
		Long: `scale creates or deletes synthetic Services in a namespace until there are
exactly N (named kpb-svc-00000, kpb-svc-00001, ... in creation order). Each is
a selector-less ClusterIP Service on port 80 with one EndpointSlice listing
--endpoints-per-service of the backend IPs, so every Service answers. Running
it again with the same N writes nothing; scaling down deletes the highest
indexes first; --services 0 removes every synthetic object kpbench made in the
namespace (objects without kpbench's labels are never touched).

On a cluster that is not a kpbench lab (the kubeconfig context or cluster name
does not start with "kpbench-lab") it refuses unless --yes is given.

--wait returns only once kube-proxy has programmed the change: its pending
Service and endpoint changes are zero, its last sync ended after the last
write, and a TCP connect to the last Service's ClusterIP succeeds. It reports
the time from the last write to that point and kube-proxy's sync duration.`,
		Example: `  kpbench scale --services 1000 --wait            # on the lab that is up: its kubeconfig, backends and client node
  kpbench scale --services 1000 --endpoint-ips 198.18.0.10,198.18.0.11 --endpoints-per-service 2 --kubeconfig k.yaml
  kpbench scale --services 10000 --wait --kube-proxy-metrics http://127.0.0.1:10249
  kpbench scale --services 0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.servicesSet = cmd.Flags().Changed("services")
			return runScale(cmd.Context(), g, cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.services, "services", 0, "number of synthetic Services to have (required; 0 removes them all)")
	fl.IntVar(&f.endpointsPerService, "endpoints-per-service", scaler.DefaultEndpointsPerService, "endpoints in each Service's EndpointSlice (at most the number of endpoint IPs)")
	fl.StringSliceVar(&f.endpointIPs, "endpoint-ips", nil, "backend pod IPv4 addresses the endpoints point at (default: the lab's backends when the lab is up)")
	fl.StringVar(&f.namespace, "namespace", scaler.DefaultNamespace, "namespace of the synthetic Services (created if missing)")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG, then ~/.kube/config)")
	fl.StringVar(&f.kubeContext, "context", "", "kubeconfig context (default: the current context)")
	fl.IntVar(&f.concurrency, "concurrency", scaler.DefaultConcurrency, "API writes in flight")
	fl.Float32Var(&f.qps, "qps", 1000, "client-side request rate limit (requests per second)")
	fl.IntVar(&f.burst, "burst", 0, "client-side burst (default: twice --qps)")
	fl.Int32Var(&f.port, "port", scaler.DefaultPort, "Service port (TCP)")
	fl.Int32Var(&f.targetPort, "target-port", scaler.DefaultPort, "port the backends listen on")
	fl.BoolVar(&f.wait, "wait", false, "wait until kube-proxy has programmed the change")
	fl.DurationVar(&f.waitTimeout, "wait-timeout", 10*time.Minute, "give up waiting for kube-proxy after this long")
	fl.StringVar(&f.kubeProxyMetrics, "kube-proxy-metrics", "", "kube-proxy's metrics URL for --wait when kpbench runs on the node, e.g. http://127.0.0.1:10249 (default: the lab's client node)")
	fl.BoolVar(&f.yes, "yes", false, "allow scaling on a cluster that is not a kpbench lab")
	fl.BoolVar(&f.force, "force", false, "scale even while a run holds the lab")
	fl.StringVar(&f.labName, "lab-name", "kpbench", "the lab whose kubeconfig, backends and client node are the defaults when it is up and no --kubeconfig is given")
	fl.StringVarP(&f.output, "output", "o", "text", "summary format: text or json")
	fl.StringVar(&f.progress, "progress", "auto", "progress display: auto (a bar on a terminal, log lines otherwise), bar, log or none")
	return cmd
}

func (f *scaleFlags) validate() (ips []netip.Addr, err error) {
	var errs []error
	switch {
	case !f.servicesSet:
		errs = append(errs, errors.New("--services is required: the number of synthetic Services to have (0 removes them all)"))
	case f.services < 0:
		errs = append(errs, fmt.Errorf("--services must be 0 or more, got %d", f.services))
	case f.services > scaler.MaxServices:
		errs = append(errs, fmt.Errorf("--services must be at most %d, got %d", scaler.MaxServices, f.services))
	}
	for _, s := range f.endpointIPs {
		ip, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			errs = append(errs, fmt.Errorf("--endpoint-ips: %w", err))
			continue
		}
		ips = append(ips, ip)
	}
	if f.concurrency < 1 {
		errs = append(errs, fmt.Errorf("--concurrency must be at least 1, got %d", f.concurrency))
	}
	if f.qps <= 0 {
		errs = append(errs, fmt.Errorf("--qps must be positive, got %v", f.qps))
	}
	switch f.output {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("--output must be text or json, got %q", f.output))
	}
	switch f.progress {
	case "auto", "bar", "log", "none":
	default:
		errs = append(errs, fmt.Errorf("--progress must be auto, bar, log or none, got %q", f.progress))
	}
	return ips, errors.Join(errs...)
}

func runScale(ctx context.Context, g *globals, cmd *cobra.Command, f scaleFlags) error {
	ips, err := f.validate()
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	// When no kubeconfig is given and the lab is up, the lab is the
	// default: its kubeconfig, its backends as --endpoint-ips, and its
	// client node for --wait.
	var (
		labNode clusters.ClientNode
		labUp   bool
	)
	if f.kubeconfig == "" && os.Getenv("KUBECONFIG") == "" {
		if l, err := lab.Open(lab.Config{Name: f.labName}); err == nil {
			if err := labFree(g, l, f.force); err != nil {
				return err
			}
			if st, err := l.Status(ctx); err == nil && st.Healthy {
				f.kubeconfig = l.KubeconfigPath()
				labNode, labUp = l.ClientNode(), true
				if len(ips) == 0 {
					eps, err := l.Backends(ctx)
					if err != nil {
						return err
					}
					for _, e := range eps {
						ips = append(ips, e.Addr)
					}
					if len(eps) > 0 && !cmd.Flags().Changed("target-port") && eps[0].Port != 0 {
						f.targetPort = int32(eps[0].Port)
					}
				}
				if !cmd.Flags().Changed("endpoints-per-service") && len(ips) < f.endpointsPerService {
					f.endpointsPerService = len(ips) // a smaller lab: every backend once
				}
				g.logger.Info("using the lab", "name", f.labName, "backends", len(ips))
			}
		}
	}
	if !labUp {
		// A lab's kubeconfig given by path: its hold is beside its
		// directory.
		kc := f.kubeconfig
		if kc == "" {
			kc = os.Getenv("KUBECONFIG")
		}
		if kc != "" && !strings.Contains(kc, string(os.PathListSeparator)) {
			if h, err := lab.ReadHoldFile(lab.HoldFileOf(filepath.Dir(kc))); err == nil && h != nil {
				if err := holdVerdict(g, &lab.HeldError{Lab: filepath.Base(filepath.Dir(kc)), Hold: *h}, f.force); err != nil {
					return err
				}
			}
		}
	}
	if f.services > 0 && len(ips) == 0 {
		if !labUp && f.kubeconfig == "" && os.Getenv("KUBECONFIG") == "" {
			return badInput(errors.New("no lab is up: run `kpbench lab up` or pass --kubeconfig/--endpoint-ips (or --lab-name, for a lab of another name)"))
		}
		return badInput(errors.New("--endpoint-ips is required on a cluster that is not the lab: the backend pod IPs every Service's endpoints point at"))
	}
	client, target, err := scaler.NewClient(scaler.ClientOptions{
		Kubeconfig: f.kubeconfig, Context: f.kubeContext, QPS: f.qps, Burst: f.burst,
	})
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	if !target.Lab && !f.yes {
		return &ExitError{Code: 2, Err: fmt.Errorf("context %q (cluster %q at %s) is not a kpbench lab: scaling creates and deletes thousands of objects in namespace %s; pass --yes to do it anyway",
			target.Context, target.Cluster, target.Host, f.namespace)}
	}
	var node scaler.Node
	if f.wait {
		switch {
		case f.kubeProxyMetrics != "":
			node = scaler.LocalNode{MetricsURL: strings.TrimSuffix(f.kubeProxyMetrics, "/")}
		case labNode != nil:
			node = scaler.ClientNode{Node: labNode}
		default:
			return badInput(errors.New("--wait needs the lab up or --kube-proxy-metrics (kube-proxy's metrics URL, when kpbench runs on the node); bring the lab up with `kpbench lab up`"))
		}
	}

	progress := newScaleProgress(g, f.progress)
	s, err := scaler.New(client, scaler.Config{
		Namespace:           f.namespace,
		Port:                f.port,
		TargetPort:          f.targetPort,
		EndpointIPs:         ips,
		EndpointsPerService: f.endpointsPerService,
		Concurrency:         f.concurrency,
		Progress:            progress,
		Logger:              g.logger,
	})
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}

	var baseline *scaler.SyncState
	if node != nil {
		st, err := scaler.Scrape(ctx, node)
		if err != nil {
			return fmt.Errorf("before scaling: %w", err)
		}
		baseline = &st
	}
	g.logger.Info("scaling", "context", target.Context, "namespace", f.namespace, "services", f.services)
	res, err := s.Scale(ctx, f.services)
	if err != nil {
		if errors.Is(err, scaler.ErrInvalid) {
			return &ExitError{Code: 2, Err: err}
		}
		return err
	}
	rep := scaleReport{SchemaVersion: 1, Result: res}
	if node != nil {
		wctx, cancel := context.WithTimeout(ctx, f.waitTimeout)
		defer cancel()
		wc := scaler.WaitConfig{Baseline: baseline, LastWrite: res.LastWrite}
		if res.Last != nil {
			if ip, err := netip.ParseAddr(res.Last.ClusterIP); err == nil {
				wc.Probe = netip.AddrPortFrom(ip, uint16(f.port))
			}
		}
		p, err := scaler.Wait(wctx, node, wc)
		if err != nil {
			return err
		}
		rep.Programmed = &p
	}
	return rep.write(g.stdout, f.output)
}

// scaleReport is kpbench scale's summary; its JSON form is stable
// (schemaVersion).
type scaleReport struct {
	SchemaVersion int
	Result        scaler.Result
	Programmed    *scaler.Programmed
}

type scaleReportJSON struct {
	SchemaVersion   int                `json:"schemaVersion"`
	Namespace       string             `json:"namespace"`
	Before          int                `json:"before"`
	Services        int                `json:"services"`
	Created         int                `json:"created"`
	Updated         int                `json:"updated"`
	Deleted         int                `json:"deleted"`
	Strays          int                `json:"strays"`
	Retries         int                `json:"retries"`
	DurationSeconds float64            `json:"durationSeconds"`
	WritesPerSecond float64            `json:"writesPerSecond"`
	LastWrite       *time.Time         `json:"lastWrite,omitempty"`
	Last            *scaler.ServiceRef `json:"last,omitempty"`
	Programmed      *programmedJSON    `json:"programmed,omitempty"`
}

type programmedJSON struct {
	TimeToProgrammedSeconds float64 `json:"timeToProgrammedSeconds"`
	SyncedAfterWriteSeconds float64 `json:"syncedAfterWriteSeconds"`
	LastSyncSeconds         float64 `json:"lastSyncSeconds"`
	Syncs                   uint64  `json:"syncs"`
	MeanSyncSeconds         float64 `json:"meanSyncSeconds"`
	Probe                   string  `json:"probe,omitempty"`
}

func (r scaleReport) json() scaleReportJSON {
	res := r.Result
	j := scaleReportJSON{
		SchemaVersion: r.SchemaVersion, Namespace: res.Namespace, Before: res.Before, Services: res.Services,
		Created: res.Created, Updated: res.Updated, Deleted: res.Deleted, Strays: res.Strays, Retries: res.Retries,
		DurationSeconds: res.Duration.Seconds(), Last: res.Last,
	}
	if res.Duration > 0 {
		j.WritesPerSecond = float64(res.Writes()) / res.Duration.Seconds()
	}
	if !res.LastWrite.IsZero() {
		t := res.LastWrite.UTC()
		j.LastWrite = &t
	}
	if p := r.Programmed; p != nil {
		j.Programmed = &programmedJSON{
			TimeToProgrammedSeconds: p.TimeToProgrammed.Seconds(),
			SyncedAfterWriteSeconds: p.SyncedAfterWrite.Seconds(),
			LastSyncSeconds:         p.LastSyncDuration.Seconds(),
			Syncs:                   p.Syncs,
			MeanSyncSeconds:         p.MeanSyncDuration.Seconds(),
		}
		if p.Probe.IsValid() {
			j.Programmed.Probe = p.Probe.String()
		}
	}
	return j
}

func (r scaleReport) write(w io.Writer, format string) error {
	j := r.json()
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(j)
	}
	_, err := fmt.Fprintf(w, "namespace %s: %d → %d Services in %.1fs (%d created, %d updated, %d deleted, %d strays, %d retries; %.0f writes/s)\n",
		j.Namespace, j.Before, j.Services, j.DurationSeconds, j.Created, j.Updated, j.Deleted, j.Strays, j.Retries, j.WritesPerSecond)
	if err != nil || j.Programmed == nil {
		return err
	}
	p := j.Programmed
	_, err = fmt.Fprintf(w, "programmed: %.3fs after the last write (kube-proxy synced %.3fs after it); last sync took %.3fs, %d syncs averaging %.3fs\n",
		p.TimeToProgrammedSeconds, p.SyncedAfterWriteSeconds, p.LastSyncSeconds, p.Syncs, p.MeanSyncSeconds)
	return err
}

// newScaleProgress picks the progress display: a bar when stderr is a
// terminal, periodic log lines otherwise.
func newScaleProgress(g *globals, mode string) scaler.Progress {
	if mode == "auto" {
		mode = "log"
		if f, ok := g.stderr.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			mode = "bar"
		}
	}
	switch mode {
	case "bar":
		return &barProgress{w: g.stderr}
	case "log":
		return &scaler.LogProgress{Logger: g.logger}
	}
	return scaler.NopProgress{}
}

// barProgress draws one mpb bar per phase, with count, rate and ETA.
type barProgress struct {
	w   io.Writer
	p   *mpb.Progress
	bar *mpb.Bar
}

func (b *barProgress) Start(phase string, total int) {
	b.p = mpb.New(mpb.WithOutput(b.w), mpb.WithWidth(40), mpb.WithRefreshRate(150*time.Millisecond))
	b.bar = b.p.AddBar(int64(total),
		mpb.PrependDecorators(
			decor.Name(phase, decor.WC{W: 7, C: decor.DindentRight}),
			decor.CountersNoUnit("%d / %d", decor.WCSyncWidth),
		),
		mpb.AppendDecorators(
			decor.AverageSpeed(0, "%.0f/s", decor.WCSyncSpace),
			decor.OnComplete(decor.AverageETA(decor.ET_STYLE_GO, decor.WCSyncSpace), " done"),
		),
	)
}

func (b *barProgress) Add(n int) { b.bar.IncrBy(n) }

func (b *barProgress) Finish() {
	if b.p == nil {
		return
	}
	if !b.bar.Completed() {
		b.bar.Abort(false)
	}
	b.p.Wait()
	b.p = nil
}
