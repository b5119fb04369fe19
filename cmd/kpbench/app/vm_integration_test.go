package app

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kpbench/kpbench/clusters/lab/labtest"
	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// The lab with a VM client node, end to end through the CLI: up in ipvs
// mode, 200 Services programmed as IPVS virtual servers, round trips
// through every mode (each switch verifies the mode and that no other
// mode's state is left), then the ipvs-vm-smoke scenario on that lab.
// Runs where qemu, a guest kernel and busybox are installed; minutes under
// software emulation.
func TestIntegrationVMNodeIPVS(t *testing.T) {
	labtest.SkipUnlessVM(t)
	bin := labtest.KpbenchBin(t)
	name := labtest.UniqueName()
	state := t.TempDir()
	kp := func(args ...string) (string, error) {
		t.Helper()
		start := time.Now()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+state, "KPBENCH_CONFIG=", "XDG_CONFIG_HOME="+state)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		t.Logf("kpbench %s: %s (exit %v)", strings.Join(args, " "), time.Since(start).Round(100*time.Millisecond), err)
		if err != nil {
			t.Logf("stderr:\n%s", tailOf(errb.String(), 3000))
		}
		return out.String(), err
	}
	t.Cleanup(func() {
		if _, err := kp("lab", "down", "--name", name); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	if _, err := kp("lab", "up", "--name", name, "--node", "vm", "--mode", "ipvs", "--backends", "3"); err != nil {
		t.Fatalf("lab up --node vm --mode ipvs: %v", err)
	}
	out, err := kp("lab", "status", "--name", name, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Mode    string `json:"mode"`
		Healthy bool   `json:"healthy"`
		NodeVM  *struct {
			Accel         string  `json:"accel"`
			KernelRelease string  `json:"kernelRelease"`
			BootSeconds   float64 `json:"bootSeconds"`
		} `json:"nodeVM"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Mode != "ipvs" || !st.Healthy || st.NodeVM == nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	t.Logf("node VM: kernel %s, %s, booted in %.1f s", st.NodeVM.KernelRelease, st.NodeVM.Accel, st.NodeVM.BootSeconds)

	if _, err := kp("scale", "--lab-name", name, "--services", "200", "--endpoints-per-service", "3", "--wait", "--progress", "none"); err != nil {
		t.Fatalf("scale: %v", err)
	}
	out, err = kp("lab", "exec", "--name", name, "--", "ipvsadm", "-Ln")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, "\nTCP "); n < 201 {
		t.Errorf("ipvsadm -Ln lists %d virtual servers, want the kubernetes Service and 200 more", n)
	}
	for _, m := range []string{"nftables", "iptables", "ipvs"} {
		if out, err := kp("lab", "mode", "--name", name, m); err != nil {
			t.Fatalf("lab mode %s: %v", m, err)
		} else {
			t.Log(strings.TrimSpace(out))
		}
	}

	results := t.TempDir()
	if _, err := kp("run", "--scenario", "ipvs-vm-smoke", "--lab-name", name, "--node", "vm", "--out", results); err != nil {
		t.Fatalf("run ipvs-vm-smoke: %v", err)
	}
	dirs, _ := filepath.Glob(filepath.Join(results, "*_ipvs-vm-smoke"))
	if len(dirs) != 1 {
		t.Fatalf("run directories: %v", dirs)
	}
	run, err := runs.ReadRun(dirs[0])
	if err != nil {
		t.Fatal(err)
	}
	if run.Environment.Accelerator == "" || run.Environment.Kernel != st.NodeVM.KernelRelease {
		t.Errorf("run.json environment: accelerator %q, kernel %q (guest %s)", run.Environment.Accelerator, run.Environment.Kernel, st.NodeVM.KernelRelease)
	}
	f, err := os.Open(filepath.Join(dirs[0], "points.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	valid := map[scenarios.Mode]int{}
	timed := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var p runs.Point
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s valid=%v rate %.1f connect p50 %.0f µs node CPU %.3f vmHost %.3f rules %+v %v", p.ID, p.Valid, p.Rate.Achieved, p.Connect.P50Us, p.CPU.Node.Total, p.CPU.Processes.VMHost, p.Rules, p.InvalidReasons)
		if p.Valid {
			valid[p.Mode]++
		}
		if p.Mode == scenarios.ModeIPVS && p.Services == 200 && (p.Rules.VirtualServers < 201 || p.Rules.Total < 600) {
			t.Errorf("%s: rules %+v, want ≥201 virtual servers and ≥600 real servers", p.ID, p.Rules)
		}
		if p.CPU.Processes.VMHost <= 0 {
			t.Errorf("%s: no host-side qemu CPU", p.ID)
		}
		// The load client in the guest times its connections in the
		// guest's kernel: each point has the figure, or why not.
		switch fp := p.FirstPacket; {
		case fp == nil:
			t.Errorf("%s: no kernel time to first packet and no reason", p.ID)
		case fp.Unavailable != "":
			t.Logf("%s: kernel time to first packet unavailable: %s", p.ID, fp.Unavailable)
		default:
			timed++
			t.Logf("%s: kernel time to first packet p50 %.1f µs p99 %.1f µs (%d of %d connections, emulated %v)", p.ID, fp.P50Us, fp.P99Us, fp.Connections, fp.ClientConnections, fp.Emulated)
			if fp.Emulated != (run.Environment.Accelerator == "tcg") {
				t.Errorf("%s: emulated %v under %s", p.ID, fp.Emulated, run.Environment.Accelerator)
			}
			if p.RequestsPerConn == 1 && (fp.P50Us <= 0 || float64(fp.Connections) < 0.99*float64(fp.ClientConnections) || fp.Connections > fp.ClientConnections) {
				t.Errorf("%s: %d connections timed of the client's %d, p50 %.1f µs", p.ID, fp.Connections, fp.ClientConnections, fp.P50Us)
			}
		}
	}
	for _, m := range []scenarios.Mode{scenarios.ModeIPVS, scenarios.ModeIPTables, scenarios.ModeNFTables} {
		if valid[m] == 0 {
			t.Errorf("no valid point in %s mode", m)
		}
	}
	report, err := os.ReadFile(filepath.Join(dirs[0], "report.md"))
	if err != nil || !strings.Contains(string(report), "qemu VM under") {
		t.Errorf("report does not label the accelerator: %v", err)
	}
	if timed > 0 && run.Environment.Accelerator == "tcg" && !strings.Contains(string(report), "kernel first packet p50 µs (emulated, TCG)") {
		t.Error("the report does not label the guest's kernel times emulated")
	}
}

func tailOf(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
