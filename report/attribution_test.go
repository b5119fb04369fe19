package report

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// attributionFixture: iptables and nftables at 1 and 1,000 Services, a
// new connection per request, three repetitions. At 1,000 Services
// iptables' node CPU is 0.05 cores higher: 0.02 user, 0.01 system, 0.02
// softirq; its SYN path takes 0.04 cores against nftables' 0.012; its
// ksoftirqd is 0.02 busier and its load client 0.02.
func attributionFixture(withTop, withProbe bool) *Data {
	var pts []runs.Point
	for _, mode := range []scenarios.Mode{scenarios.ModeIPTables, scenarios.ModeNFTables} {
		for _, services := range []int{1, 1000} {
			for r := range 3 {
				p := runs.Point{Mode: mode, Services: services, RequestsPerConn: 1, Targets: scenarios.TargetsDeepest,
					Repetition: r, Valid: true, DurationSeconds: 10, Connect: runs.Connect{Count: 10000, P50Us: 50}}
				dr := 0.001 * float64(r)
				base := runs.NodeCPU{User: 0.18 + dr, System: 0.04, SoftIRQ: 0.02, IRQ: 0.01, Total: 0.25 + dr}
				top := &runs.ProcessTop{Covers: "the processes allowed on CPUs 1 of the client node",
					Processes: []runs.ProcessShare{
						{Name: "kpbench", PID: 100 + r, Role: "load client", Cores: 0.20},
						{Name: "kube-proxy", PID: 50, Role: "kube-proxy", Cores: 0.008},
						{Name: "ksoftirqd/1", PID: 24, KernelThread: true, Cores: 0.01},
					}, Other: 0.002, OtherCount: 4}
				fp := &runs.FirstPacket{Connections: 10000, ClientConnections: 10000, MeanUs: 12, P50Us: 11}
				if mode == scenarios.ModeIPTables && services == 1000 {
					base = runs.NodeCPU{User: 0.20 + dr, System: 0.05, SoftIRQ: 0.04, IRQ: 0.01, Total: 0.30 + dr}
					top.Processes = []runs.ProcessShare{
						{Name: "kpbench", PID: 100 + r, Role: "load client", Cores: 0.22},
						{Name: "ksoftirqd/1", PID: 24, KernelThread: true, Cores: 0.03},
						{Name: "kube-proxy", PID: 50, Role: "kube-proxy", Cores: 0.01, Children: 0.004},
						{Name: "kworker/1:*", Count: 2, KernelThread: true, Shared: true, Cores: 0.005},
					}
					fp.MeanUs, fp.P50Us = 40, 38
				}
				if services == 1 {
					base.Total += 1 // never shown: the section is at the top step
				}
				for _, sh := range top.Processes {
					top.Total += sh.Cores
				}
				top.Total += top.Other
				p.CPU.Node = base
				if withTop {
					p.CPU.Processes.Top = top
					if mode == scenarios.ModeNFTables && r == 2 {
						p.CPU.Processes.Top = &runs.ProcessTop{Unavailable: "no process sample was taken"}
					}
				}
				if withProbe {
					p.FirstPacket = fp
				}
				pts = append(pts, p)
			}
		}
	}
	run := &runs.Run{ID: "attr", Status: runs.StatusComplete}
	run.Scenario.Spec.Services = []int{1, 1000}
	return &Data{Dir: "attr", Run: run, Points: pts, groups: groupPoints(pts)}
}

// sectionTables returns the tables of the section, after its heading.
func sectionTables(t *testing.T, d *Data) ([]table, []string) {
	t.Helper()
	doc := &document{}
	doc.cpuAttribution(d)
	if len(doc.blocks) == 0 {
		t.Fatal("no section")
	}
	if h, ok := doc.blocks[0].(heading); !ok || h.text != "Where the client node's CPU goes" {
		t.Fatalf("first block %+v", doc.blocks[0])
	}
	var tabs []table
	var paras []string
	for _, b := range doc.blocks {
		switch b := b.(type) {
		case table:
			tabs = append(tabs, b)
		case para:
			paras = append(paras, b.text)
		}
	}
	return tabs, paras
}

func cell(t *testing.T, tab table, row, col string) string {
	t.Helper()
	c := slices.Index(tab.header, col)
	if c < 0 {
		t.Fatalf("no column %q in %v", col, tab.header)
	}
	for _, r := range tab.rows {
		if r[0] == row {
			return r[c]
		}
	}
	t.Fatalf("no row %q", row)
	return ""
}

func TestCPUAttributionSection(t *testing.T) {
	tabs, paras := sectionTables(t, attributionFixture(true, true))
	if len(tabs) != 3 {
		t.Fatalf("%d tables, want the split, the processes and the SYN path per step", len(tabs))
	}
	// Per step: 40 µs × 1,000 connections/s at iptables' 1,000 Services.
	steps := tabs[2]
	if len(steps.rows) != 4 {
		t.Fatalf("%d step rows, want 2 modes × 2 steps", len(steps.rows))
	}
	for _, r := range steps.rows {
		want := []string{"0.0120", "1.25", "1.0%"} // 0.012 of 1.25 cores
		if r[0] == "iptables" && r[2] == "1,000" {
			want = []string{"0.0400", "0.301", "13.3%"}
		} else if r[2] == "1,000" {
			want = []string{"0.0120", "0.251", "4.8%"}
		}
		if !strings.HasPrefix(r[6], want[0]) || !strings.HasPrefix(r[7], want[1]) || r[8] != want[2] || r[5] != "1000" {
			t.Errorf("step row %v, want SYN path %s, node %s, share %s at 1000 connections/s", r, want[0], want[1], want[2])
		}
	}
	if !strings.Contains(paras[0], "At 1,000 Services with a new connection per request") {
		t.Errorf("intro %q", paras[0])
	}
	split, procs := tabs[0], tabs[1]
	for _, c := range []struct{ row, col, prefix string }{
		{"iptables", "node total", "0.301 "},
		{"iptables", "user", "0.201 "},
		{"iptables", "softirq", "0.040"},
		{"nftables", "node total", "0.251 "},
		{"iptables", "SYN path", "0.0400"},
		{"nftables", "SYN path", "0.0120"},
		{"iptables", "processes counted", "0.267"},
		{"iptables", "not attributed", "0.034 "},
		// The differences of means.
		{"nftables − iptables", "node total", "-0.050"},
		{"nftables − iptables", "user", "-0.020"},
		{"nftables − iptables", "system", "-0.010"},
		{"nftables − iptables", "softirq", "-0.020"},
		{"nftables − iptables", "irq", "+0.000"},
		{"nftables − iptables", "SYN path", "-0.0280"},
	} {
		if got := cell(t, split, c.row, c.col); !strings.HasPrefix(got, c.prefix) {
			t.Errorf("%s / %s = %q, want %q…", c.row, c.col, got, c.prefix)
		}
	}
	var rows []string
	for _, r := range procs.rows {
		rows = append(rows, r[0])
	}
	want := []string{"load client (kpbench)", "ksoftirqd/1", "kube-proxy (kube-proxy)", "kworker/1:*", "kube-proxy (kube-proxy): its reaped children", "(other processes)"}
	if !slices.Equal(rows, want) {
		t.Errorf("process rows %v, want %v", rows, want)
	}
	for _, c := range []struct{ row, col, want string }{
		{"load client (kpbench)", "iptables", "0.220"},
		{"load client (kpbench)", "nftables", "0.200"},
		{"ksoftirqd/1", "notes", "kernel thread"},
		{"kworker/1:*", "notes", "kernel thread; also allowed on other CPUs"},
		{"load client (kpbench)", "notes", ""},
		{"ksoftirqd/1", "nftables − iptables", "-0.020"},
		{"kworker/1:*", "nftables", "0.000"},
		{"kworker/1:*", "nftables − iptables", "-0.005"},
		{"kube-proxy (kube-proxy)", "nftables − iptables", "-0.002"},
		{"kube-proxy (kube-proxy): its reaped children", "iptables", "0.004"},
		{"kube-proxy (kube-proxy): its reaped children", "nftables", "0.000"},
	} {
		if got := cell(t, procs, c.row, c.col); got != c.want {
			t.Errorf("%s / %s = %q, want %q", c.row, c.col, got, c.want)
		}
	}
	joined := strings.Join(paras, "\n")
	if !strings.Contains(joined, "nftables: 1 of 3 repetitions have none (no process sample was taken)") {
		t.Errorf("the repetition without a process list is not explained:\n%s", joined)
	}
}

func TestCPUAttributionWithoutProcessesOrProbe(t *testing.T) {
	tabs, paras := sectionTables(t, attributionFixture(false, false))
	if len(tabs) != 1 {
		t.Fatalf("%d tables, want only the split", len(tabs))
	}
	if slices.Contains(tabs[0].header, "SYN path") {
		t.Error("a SYN path column without the probe")
	}
	if !strings.Contains(strings.Join(paras, "\n"), "No per-process CPU: iptables: the run's points have no per-process CPU") {
		t.Errorf("no reason given: %q", paras)
	}
}

func TestFirstPacketCores(t *testing.T) {
	p := &runs.Point{DurationSeconds: 10, FirstPacket: &runs.FirstPacket{Connections: 10000, ClientConnections: 10000, MeanUs: 40}}
	// 40 µs × 1,000 connections per second.
	if v, ok := firstPacketCores(p); !ok || math.Abs(v-0.04) > 1e-12 {
		t.Errorf("firstPacketCores = %v, %v; want 0.04", v, ok)
	}
	p.FirstPacket.Unavailable = "not root"
	if _, ok := firstPacketCores(p); ok {
		t.Error("cores from an unavailable probe")
	}
}

func TestDataplanePlot(t *testing.T) {
	names := func(d *Data) map[string]Plot {
		pls, err := buildPlots(d)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]Plot{}
		for _, p := range pls {
			out[p.Name] = p
		}
		return out
	}
	with := names(attributionFixture(true, true))
	pl, ok := with["dataplane-cpu"]
	if !ok || pl.Skipped != "" || len(pl.PNG) == 0 || len(pl.SVG) == 0 {
		t.Fatalf("no SYN path plot: %+v", pl.Skipped)
	}
	if !strings.Contains(pl.Caption, "excludes the client's own work, the reply's path") {
		t.Errorf("caption %q", pl.Caption)
	}
	if _, ok := names(attributionFixture(true, false))["dataplane-cpu"]; ok {
		t.Error("a SYN path plot without the probe")
	}
}

// TestCPUAttributionCgroup: a kind node's CPU is its container's cgroup,
// which has no softirq or irq column; the section says so rather than
// showing zeros.
func TestCPUAttributionCgroup(t *testing.T) {
	d := attributionFixture(true, false)
	for i := range d.Points {
		d.Points[i].CPU.Node.Covers = "the client node container's cgroup (kind-worker)"
	}
	tabs, paras := sectionTables(t, d)
	if got := cell(t, tabs[0], "iptables", "softirq"); got != "–" {
		t.Errorf("softirq of a cgroup %q, want –", got)
	}
	if got := cell(t, tabs[0], "nftables − iptables", "user"); got != "-0.020" {
		t.Errorf("user difference %q", got)
	}
	if !strings.Contains(strings.Join(paras, "\n"), "cgroup counts user and system time only") {
		t.Error("no note on the cgroup's split")
	}
}

// TestPointsCSVProcesses: points.csv flattens the process list to
// name=cores cells, roles named.
func TestPointsCSVProcesses(t *testing.T) {
	p := runs.Point{ID: "x"}
	p.CPU.Processes.Top = &runs.ProcessTop{Covers: "c", Total: 0.3, Other: 0.05, OtherCount: 3, Processes: []runs.ProcessShare{
		{Name: "kpbench", PID: 7, Role: "load client", Cores: 0.2},
		{Name: "ksoftirqd/1", PID: 24, KernelThread: true, Cores: 0.05},
	}}
	got := csvFields(t, p)
	if got["cpu.processes.top.processes"] != "load client (kpbench)=0.2; ksoftirqd/1=0.05" || got["cpu.processes.top.total"] != "0.3" ||
		got["cpu.processes.top.otherCount"] != "3" {
		t.Errorf("processes %q, total %q, other count %q", got["cpu.processes.top.processes"], got["cpu.processes.top.total"], got["cpu.processes.top.otherCount"])
	}
}
