package app

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// badInputCases is one bad-input path per command: README.md's exit-status
// table promises 2 for each. TestEveryCommandHasABadInputCase keeps the
// table complete as commands are added.
func badInputCases(t *testing.T) map[string]struct {
	args []string
	want string
} {
	state := t.TempDir()
	return map[string]struct {
		args []string
		want string
	}{
		"kpbench":                        {[]string{"nosuch"}, `unknown command "nosuch" for "kpbench"`},
		"kpbench scenario":               {[]string{"scenario", "nosuch"}, `unknown command "nosuch" for "kpbench scenario"`},
		"kpbench scenario validate":      {[]string{"scenario", "validate", "nosuch-file.yaml"}, "invalid"},
		"kpbench scenario show":          {[]string{"scenario", "show", "nosuch"}, `no scenario file "nosuch"`},
		"kpbench scenario list":          {[]string{"scenario", "list", "extra"}, `unknown command "extra"`},
		"kpbench run":                    {[]string{"run", "--scenario", "nosuch"}, `no scenario file "nosuch"`},
		"kpbench lab":                    {[]string{"lab", "upp"}, `unknown command "upp" for "kpbench lab"`},
		"kpbench lab binaries":           {[]string{"lab", "binaries", "--k8s-version", "1.36"}, "v1.Y.Z"},
		"kpbench lab up":                 {[]string{"lab", "up", "--mode", "userspace"}, `unknown proxy mode "userspace"`},
		"kpbench lab down":               {[]string{"lab", "down", "--name", "Not-OK", "--state-dir", state}, "lower-case"},
		"kpbench lab mode":               {[]string{"lab", "mode"}, "accepts 1 arg(s), received 0"},
		"kpbench lab status":             {[]string{"lab", "status", "--name", "nolab", "--state-dir", state}, "lab not found"},
		"kpbench lab exec":               {[]string{"lab", "exec", "ip", "-br", "addr"}, "Put -- before the command"},
		"kpbench lab kubeconfig":         {[]string{"lab", "kubeconfig", "--name", "nolab", "--state-dir", state}, "lab not found"},
		"kpbench lab forward":            {[]string{"lab", "forward", "--netns", "/run/netns/x", "--to", "198.18.0.2:6443"}, "give --listen-fd or --listen"},
		"kpbench lab vm-init":            {[]string{"lab", "vm-init", "--config", "/nonexistent"}, "only as PID 1"},
		"kpbench lab vm-agent":           {[]string{"lab", "vm-agent"}, `required flag(s) "config" not set`},
		"kpbench cluster":                {[]string{"cluster", "nosuch"}, `unknown command "nosuch" for "kpbench cluster"`},
		"kpbench cluster create":         {[]string{"cluster", "create", "--mode", "userspace"}, `unknown proxy mode "userspace"`},
		"kpbench cluster delete":         {[]string{"cluster", "delete", "extra"}, `unknown command "extra"`},
		"kpbench cluster mode":           {[]string{"cluster", "mode", "--provider", "kind", "--name", "nosuch"}, "kind cluster nosuch: no kubeconfig"},
		"kpbench cluster set-mode":       {[]string{"cluster", "set-mode", "userspace"}, `unknown proxy mode "userspace"`},
		"kpbench cluster cleanup":        {[]string{"cluster", "cleanup", "extra"}, `unknown command "extra"`},
		"kpbench cluster manifests":      {[]string{"cluster", "manifests", "--clients", "x"}, `invalid argument "x" for "--clients"`},
		"kpbench cluster agent":          {[]string{"cluster", "agent", "extra"}, `unknown command "extra" for "kpbench cluster agent"`},
		"kpbench cluster agent get":      {[]string{"cluster", "agent", "get"}, "accepts 1 arg(s)"},
		"kpbench cluster agent pid":      {[]string{"cluster", "agent", "pid"}, "accepts 1 arg(s)"},
		"kpbench cluster agent cat":      {[]string{"cluster", "agent", "cat", "/etc/passwd"}, "cat reads files under"},
		"kpbench cluster agent ipvs":     {[]string{"cluster", "agent", "ipvs", "extra"}, `unknown command "extra"`},
		"kpbench cluster agent host":     {[]string{"cluster", "agent", "host"}, "no command"},
		"kpbench cluster agent point":    {[]string{"cluster", "agent", "point", "--proc", "/proc", "--cpus", "x"}, "--cpus"},
		"kpbench scale":                  {[]string{"scale", "--services", "-1"}, "--services must be 0 or more, got -1"},
		"kpbench load":                   {[]string{"load", "--rate", "fast", "http://127.0.0.1:9/"}, `invalid argument "fast" for "--rate"`},
		"kpbench serve":                  {[]string{"serve", "--body-bytes", "-1"}, "body"},
		"kpbench sample":                 {[]string{"sample", "--interval", "0s"}, "--interval must be positive"},
		"kpbench report":                 {[]string{"report", filepath.Join(state, "nosuch")}, "does not exist"},
		"kpbench compare":                {[]string{"compare", "--threshold", "abc", "a", "b"}, "--threshold"},
		"kpbench calibrate":              {[]string{"calibrate", "only-one"}, "want two or more results directories"},
		"kpbench image":                  {[]string{"image", "nosuch"}, `unknown command "nosuch" for "kpbench image"`},
		"kpbench image build":            {[]string{"image", "build"}, "nothing to do"},
		"kpbench image node":             {[]string{"image", "node", "--load", "lxc"}, "--load takes podman or docker"},
		"kpbench version":                {[]string{"version", "extra"}, `unknown command "extra"`},
		"kpbench help":                   {[]string{"help", "--no-such-flag"}, "unknown flag: --no-such-flag"},
		"kpbench completion":             {[]string{"completion", "nosuch"}, `unknown command "nosuch" for "kpbench completion"`},
		"kpbench scenario show (no arg)": {[]string{"scenario", "show"}, "accepts 1 arg(s), received 0"},
		"kpbench load (no URL)":          {[]string{"load"}, "load needs at least one URL"},
		"kpbench load (bad value)":       {[]string{"load", "--requests-per-conn", "-1", "http://127.0.0.1:9/"}, "requests per connection"},
		"kpbench run (bad provider)":     {[]string{"run", "--provider", "docker"}, "--provider must be lab, kind or existing"},
	}
}

// TestBadInputExits2 runs every command's bad-input path: exit status 2
// and a message naming the problem.
func TestBadInputExits2(t *testing.T) {
	for name, tt := range badInputCases(t) {
		t.Run(name, func(t *testing.T) {
			code, stdout, stderr := runKpbench(t, tt.args...)
			if code != ExitUsage || !strings.Contains(stderr, tt.want) {
				t.Errorf("kpbench %s = exit %d\nstdout: %s\nstderr: %s\nwant exit 2, stderr holding %q", strings.Join(tt.args, " "), code, stdout, stderr, tt.want)
			}
		})
	}
}

// TestEveryCommandHasABadInputCase fails when a command has no row in
// badInputCases, so the exit-status contract stays tested as commands are
// added.
func TestEveryCommandHasABadInputCase(t *testing.T) {
	cases := badInputCases(t)
	var missing []string
	for _, c := range allCommands(t) {
		if _, ok := cases[c.CommandPath()]; !ok {
			missing = append(missing, c.CommandPath())
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("commands without a bad-input case: %s", strings.Join(missing, ", "))
	}
}

// TestUnknownFlagExits2 gives every command a flag it does not have.
func TestUnknownFlagExits2(t *testing.T) {
	for _, c := range allCommands(t) {
		if c.DisableFlagParsing || c.Name() == "help" {
			continue
		}
		args := append(strings.Fields(c.CommandPath())[1:], "--no-such-flag")
		t.Run(c.CommandPath(), func(t *testing.T) {
			code, _, stderr := runKpbench(t, args...)
			if code != ExitUsage || !strings.Contains(stderr, "unknown flag: --no-such-flag") || !strings.Contains(stderr, "See '"+c.CommandPath()+" --help'") {
				t.Errorf("kpbench %s = exit %d, stderr %q; want 2, the flag and a pointer to --help", strings.Join(args, " "), code, stderr)
			}
		})
	}
}

// TestHelpHasNoBacktickTypeNames checks every command's help: pflag takes
// a `word` in a flag's usage for the name of its value, which turned
// "see `kpbench scenario list`" into a type name.
func TestHelpHasNoBacktickTypeNames(t *testing.T) {
	for _, c := range allCommands(t) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if strings.Contains(f.Usage, "`") {
				t.Errorf("%s --%s: usage holds a backtick, which pflag shows as the value's type: %q", c.CommandPath(), f.Name, f.Usage)
			}
		})
		args := append(strings.Fields(c.CommandPath())[1:], "--help")
		if c.DisableFlagParsing {
			continue
		}
		code, stdout, stderr := runKpbench(t, args...)
		if code != 0 || !strings.Contains(stdout, "Usage:") {
			t.Errorf("kpbench %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, stdout, stderr)
		}
	}
}

func TestExitStatuses(t *testing.T) {
	// A group without a subcommand shows its help and succeeds.
	if code, stdout, _ := runKpbench(t, "lab"); code != 0 || !strings.Contains(stdout, "Available Commands:") {
		t.Errorf("kpbench lab: exit %d, stdout %q", code, stdout)
	}
	// An interrupted command exits 130, whatever error it returned.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var errb bytes.Buffer
	if code := exitCode(ctx, &errb, &ExitError{Code: ExitFailed, Err: context.Canceled}, 0); code != ExitInterrupted {
		t.Errorf("interrupted: exit %d, want 130", code)
	}
	if code := exitCode(context.Background(), io.Discard, &ExitError{Code: 1}, 0); code != ExitFailed {
		t.Errorf("failed: exit %d, want 1", code)
	}
}

// TestLabExecStatus maps what running a real process returns to lab
// exec's status, as a shell does: the command's own, 127 not found, 126
// cannot run, 128+N for a signal. (lab exec starts the command the same
// way, inside the node's namespace.)
func TestLabExecStatus(t *testing.T) {
	run := func(args ...string) error {
		c := exec.Command(args[0], args[1:]...)
		if err := c.Start(); err != nil {
			return err
		}
		return c.Wait()
	}
	code := func(err error) int {
		var exit *ExitError
		if errors.As(err, &exit) {
			return exit.Code
		}
		if err == nil {
			return 0
		}
		return -1
	}
	for _, tt := range []struct {
		args []string
		want int
	}{
		{[]string{"true"}, 0},
		{[]string{"sh", "-c", "exit 7"}, 7},
		{[]string{"nosuchcmd-kpbench"}, ExitNotFound},
		{[]string{"/etc/hostname"}, ExitCannotRun},
		{[]string{"sh", "-c", "kill -TERM $$"}, 128 + 15},
	} {
		if got := code(execStatus(tt.args[0], run(tt.args...))); got != tt.want {
			t.Errorf("lab exec -- %s: exit %d, want %d", strings.Join(tt.args, " "), got, tt.want)
		}
	}
}

// allCommands is every command of kpbench, hidden ones included, with
// cobra's default help and completion commands.
func allCommands(t *testing.T) []*cobra.Command {
	t.Helper()
	g := &globals{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, sources: map[string]string{}}
	root := newRoot(g)
	var out []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Parent() != nil && c.Parent().Name() == "completion" {
			return // cobra's per-shell scripts
		}
		out = append(out, c)
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	return out
}
