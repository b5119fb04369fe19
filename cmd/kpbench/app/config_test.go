package app

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigFileUnknownKeyIsAnError(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("threshhold: 2\nlog-format: text\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runKpbench(t, "--config", cfg, "compare", "a", "b")
	want := `config file ` + cfg + `: unknown key "threshhold" (did you mean "threshold"?)`
	if code != ExitUsage || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr, want)
	}
}

func TestBadEnvironmentValueNamesTheVariable(t *testing.T) {
	t.Setenv("KPBENCH_THRESHOLD", "abc")
	code, _, stderr := runKpbench(t, "compare", "a", "b")
	if code != ExitUsage || !strings.HasPrefix(stderr, "kpbench: KPBENCH_THRESHOLD=abc: --threshold: ") {
		t.Errorf("exit %d, stderr %q; want 2 and the variable named first", code, stderr)
	}
	// A value that does not even parse names the variable too.
	t.Setenv("KPBENCH_RATE", "fast")
	code, _, stderr = runKpbench(t, "load", "http://127.0.0.1:9/")
	if code != ExitUsage || !strings.Contains(stderr, "KPBENCH_RATE=fast: not a valid --rate") {
		t.Errorf("exit %d, stderr %q; want 2 naming KPBENCH_RATE", code, stderr)
	}
}

func TestBadConfigFileValueNamesFileAndKey(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("threshold: abc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runKpbench(t, "--config", cfg, "compare", "a", "b")
	if code != ExitUsage || !strings.Contains(stderr, "config file "+cfg+": threshold: --threshold") {
		t.Errorf("exit %d, stderr %q; want 2 naming the file and key", code, stderr)
	}
}

func TestHumanLogLines(t *testing.T) {
	var b bytes.Buffer
	l, err := newLogger(&b, logHuman, 0)
	if err != nil {
		t.Fatal(err)
	}
	l.Info("lab: control plane ready", "elapsed", "3.971s")
	l.With("lab", "kpbench").WithGroup("node").Warn("slow", "cpus", 1)
	l.Debug("hidden")
	want := "• lab: control plane ready (elapsed 3.971s)\n! warning: slow (lab kpbench, node.cpus 1)\n"
	if b.String() != want {
		t.Errorf("got %q\nwant %q", b.String(), want)
	}
	if _, err := newLogger(&b, "xml", 0); err == nil {
		t.Error("--log-format xml accepted")
	}
	// Not a terminal: slog's text form.
	b.Reset()
	l, _ = newLogger(&b, logAuto, 0)
	l.Info("x", "k", 1)
	if !strings.Contains(b.String(), `level=INFO msg=x k=1`) {
		t.Errorf("auto off a terminal: %q", b.String())
	}
}
