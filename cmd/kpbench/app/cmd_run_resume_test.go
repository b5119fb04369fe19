package app

import (
	"strings"
	"testing"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

func resumableRun(t *testing.T, version, provider string) string {
	t.Helper()
	s, err := scenarios.Resolve("quick")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := &runs.Run{ID: "2026-12-01T000000_quick", Scenario: *s, Status: runs.StatusInterrupted, KpbenchVersion: version,
		Provider: runs.Provider{Name: provider}, Environment: runs.Environment{Kernel: "6.18", KubeProxyVersion: "v1.36.3"}}
	if err := runs.WriteRun(dir, r); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestResumeRefusesAnotherBuildOrProvider: these refusals come before any
// cluster is brought up.
func TestResumeRefusesAnotherBuildOrProvider(t *testing.T) {
	code, _, stderr := runKpbench(t, "run", "--resume", resumableRun(t, "v0.1.0", "lab"))
	if code != 2 || !strings.Contains(stderr, "kpbench version: v0.1.0 → "+Version) || !strings.Contains(stderr, "--force") {
		t.Errorf("another version: exit %d\n%s", code, stderr)
	}
	code, _, stderr = runKpbench(t, "run", "--resume", resumableRun(t, Version, "kind"), "--provider", "lab")
	if code != 2 || !strings.Contains(stderr, "provider: kind → lab") {
		t.Errorf("another provider: exit %d\n%s", code, stderr)
	}
}

func TestResumeProviderDefaultsToTheRuns(t *testing.T) {
	f := &runFlags{provider: "lab"}
	r := &runs.Run{KpbenchVersion: "v1", Provider: runs.Provider{Name: "kind"}}
	if err := resumeTrust(r, f, "v1"); err != nil || f.provider != "kind" {
		t.Errorf("provider %q, err %v: want the run's provider when --provider is not given", f.provider, err)
	}
}

func TestResumeEnvironment(t *testing.T) {
	prev := runs.Environment{Kernel: "6.18", CPUModel: "AMD EPYC", Cores: 2, KubeProxyVersion: "v1.36.3"}
	run := &runs.Run{ID: "r", Provider: runs.Provider{Name: "lab"}, Environment: prev}
	run.Environment.Hostname = "elsewhere" // not part of the fingerprint
	if err := resumeEnvironment(run, "lab", prev, false); err != nil {
		t.Errorf("same environment refused: %v", err)
	}
	run.Environment.Kernel = "6.19"
	err := resumeEnvironment(run, "lab", prev, false)
	if err == nil || !strings.Contains(err.Error(), "kernel: 6.18 → 6.19") {
		t.Fatalf("another kernel: %v", err)
	}
	if err := resumeEnvironment(run, "lab", prev, true); err != nil || len(run.Problems) != 1 || !strings.Contains(run.Problems[0], "resumed with --force although kernel: 6.18 → 6.19") {
		t.Errorf("--force: %v, problems %q", err, run.Problems)
	}
}
