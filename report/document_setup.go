package report

// The report's tables of where and what was measured: environment,
// scenario, and the reset between points.

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// formatRules is the rules column: IPVS shows its virtual and real
// servers, other modes their rule count.
func formatRules(r runs.Rules) string {
	if r.VirtualServers > 0 {
		return fmt.Sprintf("%s virtual / %s real servers", formatCount(r.VirtualServers), formatCount(r.Total))
	}
	return formatCount(r.Total)
}

// acceleratorNote says how a VM client node's figures may be read.
func acceleratorNote(e runs.Environment) string {
	switch e.Accelerator {
	case "tcg":
		return fmt.Sprintf("The client node is a qemu VM under TCG (software emulation; guest kernel %s): every figure of this run is emulated. It is valid for function (which mode works, rule counts) and for comparisons within this run, not as the absolute cost of a real node; rerun with KVM for that.", e.Kernel)
	case "kvm":
		return fmt.Sprintf("The client node is a qemu VM under KVM (guest kernel %s): the node's CPU is the guest's, and the host's qemu CPU is in points.csv as vmHost.", e.Kernel)
	}
	return ""
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func environmentTable(r *runs.Run, points []runs.Point) table {
	e := r.Environment
	rows := [][]string{
		{"Run", r.ID},
		{"Provider", strings.TrimSpace(r.Provider.Name + " " + r.Provider.Cluster)},
		{"Kernel", e.Kernel},
	}
	if e.Accelerator != "" {
		rows = append(rows, []string{"Client node", fmt.Sprintf("qemu VM under %s, guest kernel %s on host kernel %s", strings.ToUpper(e.Accelerator), e.Kernel, orDash(e.HostKernel))})
	}
	rows = append(rows, [][]string{
		{"CPU", e.CPUModel},
		{"Cores", fmt.Sprint(e.Cores)},
	}...)
	if e.MemoryBytes > 0 {
		rows = append(rows, []string{"Memory", fmt.Sprintf("%.1f GiB", float64(e.MemoryBytes)/(1<<30))})
	}
	rows = append(rows,
		[]string{"Kubernetes", e.KubernetesVersion},
		[]string{"kube-proxy", e.KubeProxyVersion},
		[]string{"iptables backend", e.IPTablesBackend},
		[]string{"Go", e.GoVersion},
		[]string{"kpbench", r.KpbenchVersion},
	)
	rows = append(rows, []string{"Client-node CPU", nodeCPUCovers(points)})
	if r.Pinning != nil {
		rows = append(rows, []string{"CPU pinning", fmt.Sprintf("client node on %s; everything else on %s", cpuList(r.Pinning.NodeCPUs), cpuList(r.Pinning.OtherCPUs))})
	}
	var keys []string
	for k := range r.Provider.Details {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		rows = append(rows, []string{detailLabel(k), r.Provider.Details[k]})
	}
	rows = append(rows, []string{"Started", r.StartedAt.UTC().Format(time.RFC3339)})
	if r.FinishedAt != nil {
		since := fmt.Sprintf("%s after the start", r.FinishedAt.Sub(r.StartedAt).Round(time.Second))
		if len(r.Resumes) == 0 {
			since = r.FinishedAt.Sub(r.StartedAt).Round(time.Second).String()
		}
		rows = append(rows, []string{"Finished", fmt.Sprintf("%s (%s)", r.FinishedAt.UTC().Format(time.RFC3339), since)})
	}
	for _, res := range r.Resumes {
		rows = append(rows, []string{"Resumed", fmt.Sprintf("%s, with %s already measured (kpbench %s)", res.At.UTC().Format(time.RFC3339), count(res.Measured, "point", "points"), orDash(res.KpbenchVersion))})
	}
	rows = append(rows, []string{"Status", r.Status})
	if len(r.Command) > 0 {
		rows = append(rows, []string{"Command", strings.Join(r.Command, " ")})
	}
	for i := range rows {
		rows[i][1] = orDash(rows[i][1])
	}
	return table{header: []string{"", ""}, rows: rows}
}

// count writes n with its noun: "1 point", "12 points".
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// cpuList names CPUs for a sentence: "CPU 1", "CPUs 0,2".
func cpuList(xs []int) string {
	if len(xs) == 1 {
		return "CPU " + ints(xs)
	}
	return "CPUs " + ints(xs)
}

// detailLabel turns a provider detail's key (etcdVersion) into a row label
// (etcd version).
func detailLabel(k string) string {
	var b strings.Builder
	for i, r := range k {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte(' ')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	label := b.String()
	if label == "" || strings.HasPrefix(label, "etcd") {
		return label // a name spelt in lower case
	}
	return strings.ToUpper(label[:1]) + label[1:]
}

func ints(xs []int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprint(x)
	}
	if len(parts) == 0 {
		return "—"
	}
	return strings.Join(parts, ",")
}

func scenarioTable(r *runs.Run, points []runs.Point) table {
	s := r.Scenario.Spec
	var modes []string
	for _, m := range s.Modes {
		modes = append(modes, string(m))
	}
	var svc []string
	for _, n := range s.Services {
		svc = append(svc, formatCount(n))
	}
	var rpcs []string
	for _, n := range s.Load.RequestsPerConn {
		rpcs = append(rpcs, fmt.Sprintf("%d (%s)", n, describeRPC(n)))
	}
	rows := [][]string{
		{"Name", r.Scenario.Metadata.Name},
		{"Modes", strings.Join(modes, ", ")},
		{"Services", strings.Join(svc, ", ")},
		{"Endpoints per Service", fmt.Sprint(s.EndpointsPerService)},
		{"Backend pods", fmt.Sprint(s.Backends)},
		{"Request rate", formatTick(s.Load.Rate) + " req/s"},
		{"Pacing", describePacing(points)},
		{"Measured window", s.Load.Duration.String()},
		{"Warm-up", s.Load.WarmupDuration().String()},
		{"Requests per connection", strings.Join(rpcs, ", ")},
		{"Targets", s.Load.Targets.String()},
		{"Request timeout", s.Load.Timeout.String()},
		{"Max in flight", fmt.Sprint(s.Load.MaxInflight)},
		{"Repetitions", fmt.Sprint(s.Repetitions)},
		{"Order", describeOrder(r)},
		{"CPU sampling interval", s.Sampling.Interval.String()},
	}
	for i := range rows {
		rows[i][1] = orDash(rows[i][1])
	}
	return table{header: []string{"", ""}, rows: rows}
}

// describeOrder says how a run visited its points and what its
// independent unit is; runs written before the order field existed ran
// mode by mode, and runs written before designs were recorded ran order
// steps in a fixed rotation.
func describeOrder(r *runs.Run) string {
	d := r.DesignOrImplied()
	if d.Order == scenarios.OrderSteps {
		if r.Design == nil {
			return "steps (each step scaled once, every mode measured at it, the modes taking turns going first)"
		}
		return fmt.Sprintf("steps (each repetition a block: the steps in a random order, at each step the modes in a random order, "+
			"and the connection variants and placements in a random order; seed %d); independent unit: the %s", d.Seed, d.Unit)
	}
	unit := ""
	if r.Design != nil {
		unit = fmt.Sprintf("; seed %d", d.Seed)
	}
	return fmt.Sprintf("modes (each mode measured at every step before the next mode%s); independent unit: the %s", unit, d.Unit)
}

// resetStatement says what is and is not reset between repetitions, so
// that a reader can judge how independent they are.
func resetStatement(points []runs.Point) string {
	flushed := 0
	var before []float64
	for _, p := range points {
		if p.Conntrack.FlushedBefore {
			flushed++
		}
		before = append(before, float64(p.Conntrack.EntriesBefore))
	}
	var b strings.Builder
	b.WriteString("Between repetitions: ")
	switch {
	case flushed == len(points) && flushed > 0:
		b.WriteString("the client node's conntrack table is flushed before each point's warm-up (in the node's own network namespace or VM only)")
	case flushed > 0:
		fmt.Fprintf(&b, "the client node's conntrack table was flushed before %d of %d points", flushed, len(points))
	default:
		b.WriteString("the client node's conntrack table is not flushed (kpbench empties only the tables of nodes it owns, the lab's)")
	}
	if len(before) > 0 {
		s := Summarize(before)
		fmt.Fprintf(&b, "; every point records the entries at its start (here %s to %s)", formatCount(int(s.Min)), formatCount(int(s.Max)))
	}
	b.WriteString(". Not reset: kube-proxy (one process per mode, restarted only by a mode switch), its rules and their order — so the " +
		"target's depth — within a Service step, the backends and their sockets, and the machine's caches. With order \"steps\" the " +
		"repetitions of the modes are interleaved in time; with order \"modes\" each mode's repetitions run back to back.")
	return b.String()
}

// describePacing says how the load clients spaced their requests, from
// what each point recorded (rate.tickSeconds): each at its own due time,
// or in batches (kpbench load --tick; by default 1 ms batches above 1,000
// req/s).
func describePacing(points []runs.Point) string {
	ticks := map[float64]int{}
	for _, p := range points {
		ticks[p.Rate.TickSeconds]++
	}
	if len(ticks) == 0 {
		return ""
	}
	var parts []string
	for _, t := range slices.Sorted(maps.Keys(ticks)) {
		what := "each request at its own due time"
		if t > 0 {
			what = "in batches every " + time.Duration(t*float64(time.Second)).Round(time.Microsecond).String() +
				" (every request due before the next batch sent at once; latency counts from the batch's start)"
		}
		if len(ticks) > 1 {
			unit := "points"
			if ticks[t] == 1 {
				unit = "point"
			}
			what += fmt.Sprintf(" (%d %s)", ticks[t], unit)
		}
		parts = append(parts, what)
	}
	return strings.Join(parts, "; ")
}
