package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runKpbench runs a kpbench command line: the binary at $KPBENCH_BIN when
// set (make test builds it), else in process.
func runSampleCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	if bin := os.Getenv("KPBENCH_BIN"); bin != "" {
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			code = exit.ExitCode()
		case err != nil:
			t.Fatal(err)
		}
		return out.String(), errb.String(), code
	}
	code = Run(context.Background(), strings.NewReader(""), &out, &errb, args)
	return out.String(), errb.String(), code
}

func TestSampleBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{name: "zero interval", args: []string{"--interval", "0s"}, want: "--interval"},
		{name: "negative duration", args: []string{"--duration", "-1s"}, want: "--duration"},
		{name: "bad cpu list", args: []string{"--cpus", "0-x"}, want: "bad CPU list"},
		{name: "unknown cpu", args: []string{"--cpus", "4095"}, want: "no such CPU"},
		{name: "unknown pid", args: []string{"--pid", "2147483646"}, want: "no such process"},
		{name: "missing proc root", args: []string{"--proc-root", "/nonexistent/proc"}, want: "/nonexistent/proc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"sample", "--duration", "200ms", "--interval", "100ms"}, tc.args...)
			_, stderr, code := runSampleCLI(t, args...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 mentioning %q", code, stderr, tc.want)
			}
		})
	}
}

// sampleJSON is the part of `kpbench sample --json` the tests read.
type sampleJSON struct {
	SchemaVersion int    `json:"schemaVersion"`
	ProcRoot      string `json:"procRoot"`
	CPUs          []int  `json:"cpus"`
	Samples       []struct {
		Seconds float64 `json:"seconds"`
		Node    struct {
			Total float64 `json:"total"`
		} `json:"node"`
	} `json:"samples"`
	Summary struct {
		Seconds float64 `json:"seconds"`
		Mean    struct {
			User, System, SoftIRQ, Total float64
		} `json:"mean"`
		MaxTotal  float64 `json:"maxTotal"`
		Processes []struct {
			Name string `json:"name"`
			PID  int    `json:"pid"`
		} `json:"processes"`
	} `json:"summary"`
	CPU struct {
		Node struct {
			Total float64 `json:"total"`
		} `json:"node"`
	} `json:"cpu"`
}

func TestSampleFixtureProcRoot(t *testing.T) {
	root, err := filepath.Abs("../../../collector/testdata/proc-t0")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "cpu.json")
	stdout, stderr, code := runSampleCLI(t, "sample", "--proc-root", root, "--duration", "300ms", "--interval", "100ms",
		"--cpus", "1", "--pid", "4242", "--json", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "kube-proxy/4242") || !strings.Contains(stdout, "summary:") {
		t.Errorf("table output lacks the process column or summary:\n%s", stdout)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got sampleJSON
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	// A fixture tree never changes: every figure is zero.
	if got.SchemaVersion != 1 || got.ProcRoot != root || len(got.CPUs) != 1 || got.CPUs[0] != 1 ||
		got.Summary.Mean.Total != 0 || len(got.Summary.Processes) != 1 || got.Summary.Processes[0].Name != "kube-proxy" {
		t.Errorf("json = %s", b)
	}
}

// procStatBusy reads /proc/stat's aggregate cpu line directly (not through
// the collector): busy and total jiffies.
func procStatBusy(t *testing.T) (busy, user, system float64) {
	t.Helper()
	f, err := os.Open("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 9 || fields[0] != "cpu" {
			continue
		}
		v := make([]float64, 8)
		for i := range v {
			if v[i], err = strconv.ParseFloat(fields[i+1], 64); err != nil {
				t.Fatal(err)
			}
		}
		// user nice system idle iowait irq softirq steal, in USER_HZ ticks.
		busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
		return busy / 100, v[0] / 100, v[2] / 100
	}
	t.Fatal("no cpu line in /proc/stat")
	return
}

// TestSampleAgreesWithProcStat runs `kpbench sample --duration 3s --json -`
// and compares its node figures with a /proc/stat delta the test takes
// around the same window.
func TestSampleAgreesWithProcStat(t *testing.T) {
	if os.Getenv("KPBENCH_SKIP_INTEGRATION") == "1" || testing.Short() {
		t.Skip("integration test: KPBENCH_SKIP_INTEGRATION=1 or -short")
	}
	b0, u0, s0 := procStatBusy(t)
	t0 := time.Now()
	stdout, stderr, code := runSampleCLI(t, "sample", "--duration", "3s", "--json", "-")
	wall := time.Since(t0).Seconds()
	b1, u1, s1 := procStatBusy(t)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got sampleJSON
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("stdout is not the JSON document: %v\n%s", err, stdout)
	}
	direct := map[string]float64{"total": (b1 - b0) / wall, "user": (u1 - u0) / wall, "system": (s1 - s0) / wall}
	sampled := map[string]float64{"total": got.Summary.Mean.Total, "user": got.Summary.Mean.User, "system": got.Summary.Mean.System}
	t.Logf("window %.3f s (direct %.3f s); cores sampled %v, direct %v; %d samples", got.Summary.Seconds, wall, sampled, direct, len(got.Samples))
	if math.Abs(got.Summary.Seconds-3) > 0.1 {
		t.Errorf("summary covers %.3f s, want 3", got.Summary.Seconds)
	}
	if n := len(got.Samples); n < 3 || n > 4 {
		t.Errorf("%d samples at 1 s over 3 s, want 3 (or 4 with a short tail)", n)
	}
	if got.CPU.Node.Total != got.Summary.Mean.Total {
		t.Errorf("cpu.node.total %v != summary mean total %v", got.CPU.Node.Total, got.Summary.Mean.Total)
	}
	ncpu := len(got.CPUs)
	if ncpu == 0 {
		t.Fatal("no CPUs in output")
	}
	for _, k := range []string{"total", "user", "system"} {
		// The direct window brackets the sampled one by the process start
		// and JSON output (a few ms) and /proc/stat moves in 10 ms ticks.
		tol := 0.03*direct[k] + 0.02*float64(ncpu)
		if d := sampled[k] - direct[k]; math.Abs(d) > tol {
			t.Errorf("%s: sampled %.4f cores, direct /proc/stat delta %.4f (diff %.4f > %.4f)", k, sampled[k], direct[k], d, tol)
		}
	}
	if got.Summary.Mean.Total > float64(ncpu)+0.02 || got.Summary.MaxTotal > float64(ncpu)+0.05 {
		t.Errorf("mean %.3f / max %.3f cores exceed %d CPUs", got.Summary.Mean.Total, got.Summary.MaxTotal, ncpu)
	}
}
