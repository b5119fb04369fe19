package report

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"errors"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kpbench/kpbench/runs"
)

// generated holds one report of the sweep fixture, written once per test
// binary into a temporary copy.
func generateSweep(t *testing.T) (*Data, *Result) {
	t.Helper()
	dir := copyFixture(t, "sweep")
	d, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Generate(d)
	if err != nil {
		t.Fatal(err)
	}
	return d, res
}

func TestGenerateWritesEveryPlot(t *testing.T) {
	d, res := generateSweep(t)
	wantPlots := []string{"latency", "cpu", "connect", "sync", "rules"}
	if len(res.Plots) != len(wantPlots)+1 {
		t.Fatalf("got %d plots, want %d", len(res.Plots), len(wantPlots)+1)
	}
	// The fixture's points predate the depth: that figure says why it is
	// not drawn (depth_test.go draws it).
	if last := res.Plots[len(wantPlots)]; last.Name != "depth" || !strings.Contains(last.Skipped, "depth") {
		t.Errorf("last plot %q skipped %q, want depth skipped for want of depths", last.Name, last.Skipped)
	}
	for i, name := range wantPlots {
		t.Run(name, func(t *testing.T) {
			if res.Plots[i].Name != name || res.Plots[i].Skipped != "" {
				t.Fatalf("plot %d = %q (skipped %q), want %q drawn", i, res.Plots[i].Name, res.Plots[i].Skipped, name)
			}
			pngPath := filepath.Join(d.Dir, runs.PlotsDir, name+".png")
			data, err := os.ReadFile(pngPath)
			if err != nil {
				t.Fatal(err)
			}
			if len(data) < 20_000 {
				t.Errorf("%s is only %d bytes", pngPath, len(data))
			}
			img, err := png.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("%s does not decode: %v", pngPath, err)
			}
			b := img.Bounds()
			if b.Dx() < 1000 || b.Dy() < 500 {
				t.Errorf("%s is %dx%d, want at least 1000x500", pngPath, b.Dx(), b.Dy())
			}
			// Non-trivial: the modes' colours are drawn, and a real share
			// of the image is not background.
			counts := colorCounts(img)
			for mode, c := range map[string]color.Color{"iptables": modeColors["iptables"], "nftables": modeColors["nftables"]} {
				if counts[toRGBA(c)] < 200 {
					t.Errorf("%s has %d pixels of %s's colour, want a drawn line", pngPath, counts[toRGBA(c)], mode)
				}
			}
			if counts[toRGBA(modeColors["ipvs"])] != 0 {
				t.Errorf("%s draws the skipped mode ipvs", pngPath)
			}
			white := counts[color.RGBA{255, 255, 255, 255}]
			if total := b.Dx() * b.Dy(); white > total*98/100 {
				t.Errorf("%s is %d%% white", pngPath, 100*white/total)
			}

			svgPath := filepath.Join(d.Dir, runs.PlotsDir, name+".svg")
			svg, err := os.ReadFile(svgPath)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(svg, []byte("<svg")) || len(svg) < 5_000 {
				t.Errorf("%s is not a plausible SVG (%d bytes)", svgPath, len(svg))
			}
			if !bytes.Contains(svg, []byte("iptables")) {
				t.Errorf("%s has no legend entry for iptables", svgPath)
			}
		})
	}
}

func toRGBA(c color.Color) color.RGBA {
	r, g, b, a := c.RGBA()
	return color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), uint8(a >> 8)}
}

func colorCounts(img image.Image) map[color.RGBA]int {
	out := map[color.RGBA]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			out[toRGBA(img.At(x, y))]++
		}
	}
	return out
}

func TestReportContainsEveryPoint(t *testing.T) {
	d, _ := generateSweep(t)
	md, err := os.ReadFile(filepath.Join(d.Dir, MarkdownFile))
	if err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(filepath.Join(d.Dir, HTMLFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Points) != 80 {
		t.Fatalf("fixture has %d points, want 80", len(d.Points))
	}
	for _, doc := range []struct {
		name string
		text string
	}{{"report.md", string(md)}, {"report.html", string(html)}} {
		t.Run(doc.name, func(t *testing.T) {
			for _, p := range d.Points {
				// Each point is a table row starting with its id.
				if !strings.Contains(doc.text, "| "+p.ID+" |") && !strings.Contains(doc.text, "<td>"+p.ID+"</td>") {
					t.Errorf("point %s missing", p.ID)
				}
			}
			for _, want := range []string{
				"Mode ipvs skipped: kernel has no IP_VS support",
				"Point iptables-s10000-rpc1-r2 invalid: " + runs.ReasonRateShort,
				"kube-proxy restarted once during mode switch to nftables",
				"Headline findings", "Environment", "Methodology", "Summary by condition",
				"6.12.48-1-amd64", "v1.36.3", "Intel(R) Xeon(R) CPU @ 2.20GHz",
				"1, 100, 1,000, 5,000, 10,000",
				"coordinated omission",
				"At 10,000 Services with a new connection per request, client-node CPU was 0.408 cores with iptables vs 0.132 cores with nftables",
			} {
				if !strings.Contains(doc.text, want) {
					t.Errorf("missing %q", want)
				}
			}
		})
	}
	for _, name := range []string{"latency", "cpu", "connect", "sync", "rules"} {
		if !strings.Contains(string(md), "](plots/"+name+".png)") {
			t.Errorf("report.md does not show plots/%s.png", name)
		}
	}
}

var (
	srcAttr  = regexp.MustCompile(`(?i)\s(src|href)\s*=\s*"([^"]*)"`)
	urlInCSS = regexp.MustCompile(`(?i)url\(|@import`)
)

// TestHTMLSelfContained checks that report.html references nothing outside
// itself and that every embedded image decodes.
func TestHTMLSelfContained(t *testing.T) {
	d, _ := generateSweep(t)
	html, err := os.ReadFile(filepath.Join(d.Dir, HTMLFile))
	if err != nil {
		t.Fatal(err)
	}
	if urlInCSS.Match(html) {
		t.Error("report.html loads something through CSS")
	}
	refs := srcAttr.FindAllSubmatch(html, -1)
	images := 0
	for _, m := range refs {
		attr, val := string(m[1]), string(m[2])
		const prefix = "data:image/png;base64,"
		if !strings.HasPrefix(val, prefix) {
			t.Errorf("%s=%.60q is an external reference", attr, val)
			continue
		}
		data, err := base64.StdEncoding.DecodeString(val[len(prefix):])
		if err != nil {
			t.Errorf("embedded image: %v", err)
			continue
		}
		if _, err := png.Decode(bytes.NewReader(data)); err != nil {
			t.Errorf("embedded image does not decode: %v", err)
		}
		images++
	}
	if images != 5 {
		t.Errorf("report.html embeds %d images, want 5", images)
	}
}

func TestPointsCSV(t *testing.T) {
	d, _ := generateSweep(t)
	f, err := os.Open(filepath.Join(d.Dir, CSVFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(d.Points)+1 {
		t.Fatalf("%d rows, want header + %d points", len(rows), len(d.Points))
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for _, h := range []string{"id", "mode", "services", "requestsPerConn", "targets", "repetition", "rate.achieved",
		"latency.meanUs", "latency.p999Us", "serviceTime.p99Us", "connect.p01Us", "lag.maxUs", "errors.total",
		"errors.byKind.timeout", "cpu.node.softirq", "cpu.node.total", "cpu.processes.kubeProxy", "conntrack.entriesAfter",
		"rules.total", "rules.chainLength", "sync.lastDurationSeconds", "timeToProgrammedSeconds", "valid", "invalidReasons"} {
		if _, ok := col[h]; !ok {
			t.Errorf("no column %q", h)
		}
	}
	for i, p := range d.Points {
		row := rows[i+1]
		if row[col["id"]] != p.ID {
			t.Fatalf("row %d is %s, want %s", i+1, row[col["id"]], p.ID)
		}
		for name, want := range map[string]float64{
			"latency.meanUs": p.Latency.MeanUs, "cpu.node.total": p.CPU.Node.Total, "services": float64(p.Services),
			"errors.byKind.timeout": float64(p.Errors.ByKind["timeout"]),
		} {
			got, err := strconv.ParseFloat(row[col[name]], 64)
			if err != nil || got != want {
				t.Errorf("%s %s = %q, want %v", p.ID, name, row[col[name]], want)
			}
		}
		if got := row[col["valid"]]; got != strconv.FormatBool(p.Valid) {
			t.Errorf("%s valid = %s", p.ID, got)
		}
	}
}

func TestLoadRejectsBadInput(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T) string
		wantErr string
		is      error
	}{
		{"missing directory", func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope") }, "does not exist", nil},
		{"no run.json", func(t *testing.T) string { return t.TempDir() }, "not a kpbench results directory", ErrNoRun},
		{"broken run.json", func(t *testing.T) string {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, runs.RunFile), []byte("{not json"), 0o644)
			return dir
		}, "decoding", nil},
		{"unknown schema", func(t *testing.T) string {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, runs.RunFile), []byte(`{"schemaVersion": 99}`), 0o644)
			return dir
		}, "schemaVersion", runs.ErrUnknownSchema},
		{"broken points line", func(t *testing.T) string {
			dir := copyFixture(t, "compare-base")
			f, _ := os.OpenFile(filepath.Join(dir, runs.PointsFile), os.O_APPEND|os.O_WRONLY, 0)
			f.WriteString("garbage\n{}\n")
			f.Close()
			return dir
		}, "line 25", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.setup(t))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Load() error = %v, want one containing %q", err, tc.wantErr)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
		})
	}
}

func TestGenerateWithoutPoints(t *testing.T) {
	dir := copyFixture(t, "compare-base")
	os.Remove(filepath.Join(dir, runs.PointsFile))
	d, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Generate(d)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Plots {
		if p.Skipped == "" {
			t.Errorf("plot %s drawn without points", p.Name)
		}
	}
	md, _ := os.ReadFile(filepath.Join(dir, MarkdownFile))
	if !strings.Contains(string(md), "No valid points") {
		t.Error("report.md does not say there are no valid points")
	}
}

// TestGenerateSparseRuns draws reports of runs a sweep can leave behind:
// one point, persistent connections only (no connect times), a zero
// Service count written by hand.
func TestGenerateSparseRuns(t *testing.T) {
	tests := []struct {
		name        string
		points      []runs.Point
		wantDrawn   []string
		wantSkipped []string
	}{
		{"single point", []runs.Point{withConnects(point("nftables", 1000, 1, 1, 0.1))},
			[]string{"latency", "cpu", "connect"}, nil},
		{"persistent connections only", []runs.Point{point("iptables", 1, 0, 1, 0.1), point("iptables", 100, 0, 1, 0.1)},
			[]string{"latency", "cpu"}, []string{"connect", "sync", "rules"}},
		{"zero Services", []runs.Point{point("iptables", 0, 1, 1, 0.1), point("iptables", 10, 1, 1, 0.1)},
			[]string{"latency", "cpu"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyFixture(t, "compare-base")
			os.Remove(filepath.Join(dir, runs.PointsFile))
			for i := range tc.points {
				if err := runs.AppendPoint(dir, &tc.points[i]); err != nil {
					t.Fatal(err)
				}
			}
			d, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Generate(d)
			if err != nil {
				t.Fatal(err)
			}
			state := map[string]string{}
			for _, p := range res.Plots {
				state[p.Name] = p.Skipped
			}
			for _, n := range tc.wantDrawn {
				if state[n] != "" {
					t.Errorf("plot %s skipped: %s", n, state[n])
				}
				if _, err := os.Stat(filepath.Join(dir, runs.PlotsDir, n+".png")); err != nil {
					t.Error(err)
				}
			}
			for _, n := range tc.wantSkipped {
				if state[n] == "" {
					t.Errorf("plot %s drawn without data", n)
				}
			}
			md, _ := os.ReadFile(filepath.Join(dir, MarkdownFile))
			for _, p := range tc.points {
				if !strings.Contains(string(md), "| "+p.ID+" |") {
					t.Errorf("report.md lacks point %s", p.ID)
				}
			}
		})
	}
}

func withConnects(p runs.Point) runs.Point {
	p.Connect = runs.Connect{Count: 100, P01Us: 20, P50Us: 50, P90Us: 80, P99Us: 120}
	return p
}

// BenchmarkGenerate draws the full report of the sweep fixture (80 points,
// five figures in PNG and SVG, Markdown, HTML, CSV).
func BenchmarkGenerate(b *testing.B) {
	dir := copyFixture(b, "sweep")
	d, err := Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := Generate(d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompare compares the 6-repetition fixtures on every metric.
func BenchmarkCompare(b *testing.B) {
	base, err := Load(fixtureDir(b, "compare-base"))
	if err != nil {
		b.Fatal(err)
	}
	next, err := Load(fixtureDir(b, "compare-regressed"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Compare(base, next, CompareOptions{Metrics: Metrics, Threshold: 0.1}); err != nil {
			b.Fatal(err)
		}
	}
}
