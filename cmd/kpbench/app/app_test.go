package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// runKpbench runs one kpbench command line in-process, with no config file
// of the user's in the way.
func runKpbench(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Setenv("KPBENCH_CONFIG", "")
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	var out, errb bytes.Buffer
	code = Run(context.Background(), strings.NewReader(""), &out, &errb, args)
	return code, out.String(), errb.String()
}

func TestScenarioValidateNamesEveryMistake(t *testing.T) {
	code, _, stderr := runKpbench(t, "scenario", "validate", "../../../scenarios/testdata/mistakes.yaml")
	if code == 0 {
		t.Fatal("validate of a broken scenario exited 0")
	}
	for _, want := range []string{"spec.load.keepalive", "spec.load.rate", "spec.modes[1]", "spec.services[2]", "4 problems"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not name %s:\n%s", want, stderr)
		}
	}
}

func TestScenarioShow(t *testing.T) {
	code, stdout, stderr := runKpbench(t, "scenario", "show", "tigera-2019")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"name: tigera-2019", "rate: 1000", "- 10000", "requestsPerConn:", "endpointsPerService: 10", "timeout: 2s", "interval: 1s"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("effective scenario lacks %q:\n%s", want, stdout)
		}
	}
}

// TestConfigPrecedence checks flag > KPBENCH_* environment > config file.
func TestConfigPrecedence(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("name: from-file\ncount: 3\nlist: [a, b]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	probe := func(env map[string]string, args ...string) (name string, count int, list []string) {
		for k, v := range env {
			t.Setenv(k, v)
		}
		cmd := &cobra.Command{Use: "probe", RunE: func(*cobra.Command, []string) error { return nil }}
		cmd.Flags().StringVar(&name, "name", "default", "")
		cmd.Flags().IntVar(&count, "count", 1, "")
		cmd.Flags().StringSliceVar(&list, "list", nil, "")
		if err := cmd.ParseFlags(args); err != nil {
			t.Fatal(err)
		}
		if err := bindConfig(cmd, cfg, nil); err != nil {
			t.Fatal(err)
		}
		return
	}
	if n, c, l := probe(nil); n != "from-file" || c != 3 || strings.Join(l, ",") != "a,b" {
		t.Errorf("file only: %q %d %v", n, c, l)
	}
	if n, c, _ := probe(map[string]string{"KPBENCH_NAME": "from-env"}); n != "from-env" || c != 3 {
		t.Errorf("env over file: %q %d", n, c)
	}
	if n, _, _ := probe(map[string]string{"KPBENCH_NAME": "from-env"}, "--name", "from-flag"); n != "from-flag" {
		t.Errorf("flag over env: %q", n)
	}
}

func TestBadConfigValueIsUsageError(t *testing.T) {
	t.Setenv("KPBENCH_BODY_BYTES", "lots")
	code, _, stderr := runKpbench(t, "serve", "--listen", "127.0.0.1:0")
	if code != 2 || !strings.Contains(stderr, "--body-bytes") {
		t.Errorf("exit %d, stderr %q; want 2 naming the flag", code, stderr)
	}
}
