package app

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kpbench/kpbench/clusters/lab"
)

// TestLabHeldByARun: while a run holds the lab, commands that would change
// it refuse and name the run, lab status says who holds it, and --force
// goes ahead.
func TestLabHeldByARun(t *testing.T) {
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	t.Setenv("KUBECONFIG", "")
	labs := filepath.Join(state, "kpbench", "labs")
	if err := os.MkdirAll(filepath.Join(labs, "kpbench"), 0o700); err != nil {
		t.Fatal(err)
	}
	// A lab's state as `lab up` leaves it (its processes are not needed).
	if err := os.WriteFile(filepath.Join(labs, "kpbench", "state.json"), []byte(`{"schemaVersion":1,"name":"kpbench","phase":"up","k8sVersion":"v1.34.1","binDir":"","kpbenchBin":"","namespaces":[],"procs":[],"backends":[],"kubeconfig":"`+filepath.Join(labs, "kpbench", "kubeconfig")+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	// The run that holds it is another kpbench process (here a stand-in
	// that lives as long as the test wants).
	runner := exec.Command("sleep", "300")
	if err := runner.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = runner.Process.Kill(); _ = runner.Wait() })
	proc, err := lab.ProcOf(runner.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	const runID = "20261206-013000-quick"
	hold, err := json.Marshal(lab.Hold{RunID: runID, RunDir: "results/" + runID, Since: time.Now(), Process: proc})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(labs, "kpbench.hold.json"), hold, 0o600); err != nil {
		t.Fatal(err)
	}

	refusing := [][]string{
		{"scale", "--services", "10"},
		{"scale", "--services", "10", "--kubeconfig", filepath.Join(labs, "kpbench", "kubeconfig"), "--endpoint-ips", "198.18.0.10"},
		{"lab", "mode", "nftables"},
		{"lab", "exec", "--", "true"},
		{"lab", "down"},
	}
	for _, args := range refusing {
		code, _, stderr := runKpbench(t, args...)
		if code != ExitFailed || !strings.Contains(stderr, "held by run "+runID) || !strings.Contains(stderr, "--force") {
			t.Errorf("kpbench %v = %d, stderr %q; want exit 1 naming run %s and --force", args, code, stderr, runID)
		}
	}

	// Another run on the same lab refuses before it changes anything.
	out := t.TempDir()
	code, _, stderr := runKpbench(t, "run", "--provider", "lab", "--out", out)
	if code != ExitFailed || !strings.Contains(stderr, "held by run "+runID) || !strings.Contains(stderr, "--lab-name") {
		t.Errorf("a second run = %d, stderr %q; want exit 1 naming run %s and --lab-name", code, stderr, runID)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("a refused run wrote %v", entries)
	}

	code, stdout, stderr := runKpbench(t, "lab", "status")
	if code != 0 || !strings.Contains(stdout, "held by") || !strings.Contains(stdout, "run "+runID) {
		t.Errorf("lab status = %d\nstdout: %s\nstderr: %s\nwant it to say run %s holds the lab", code, stdout, stderr, runID)
	}
	code, stdout, _ = runKpbench(t, "lab", "status", "--json")
	if code != 0 || !strings.Contains(stdout, `"runID": "`+runID+`"`) {
		t.Errorf("lab status --json = %d: %s; want heldBy with run %s", code, stdout, runID)
	}

	// --force goes past the hold (and then fails for want of a real lab
	// up: no apiserver), saying what it overrides.
	code, _, stderr = runKpbench(t, "scale", "--services", "10", "--force")
	if strings.Contains(stderr, "wait for the run to end") || !strings.Contains(stderr, "--force") {
		t.Errorf("scale --force = %d, stderr %q; want the hold overridden with a warning", code, stderr)
	}

	// The holding process is gone (killed): its hold counts as none.
	_ = runner.Process.Kill()
	_ = runner.Wait()
	code, stdout, _ = runKpbench(t, "lab", "status")
	if code != 0 || strings.Contains(stdout, "held by") {
		t.Errorf("after the holding run died, status = %d: %s", code, stdout)
	}
	if code, _, stderr := runKpbench(t, "lab", "mode", "nftables"); strings.Contains(stderr, "held by") {
		t.Errorf("lab mode after the holding run died = %d: %s", code, stderr)
	}
}
