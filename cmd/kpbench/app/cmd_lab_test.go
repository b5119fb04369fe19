package app

import (
	"os"
	"strings"
	"testing"
)

func TestLabCommandInput(t *testing.T) {
	state := t.TempDir()
	tests := []struct {
		name       string
		args       []string
		code       int
		stderrHas  string
		stdoutHas  string
		needsRoot  bool
		skipIfRoot bool
	}{
		{name: "unknown mode", args: []string{"lab", "up", "--mode", "userspace"}, code: 2, stderrHas: `unknown proxy mode "userspace"`},
		{name: "external is not a lab mode", args: []string{"lab", "mode", "external"}, code: 2, stderrHas: "unknown proxy mode"},
		{name: "bad node cpus", args: []string{"lab", "up", "--node-cpus", "one"}, code: 2, stderrHas: "--node-cpus"},
		{name: "bad name", args: []string{"lab", "up", "--name", "Not-OK", "--state-dir", state}, code: 2, stderrHas: "lower-case"},
		{name: "bad version", args: []string{"lab", "binaries", "--k8s-version", "1.36"}, code: 2, stderrHas: "v1.Y.Z"},
		{name: "status of no lab", args: []string{"lab", "status", "--name", "nolab", "--state-dir", state}, code: 2, stderrHas: "lab nolab: lab not found"},
		{name: "exec needs a command", args: []string{"lab", "exec"}, code: 2, stderrHas: "no command to run: kpbench lab exec -- CMD"},
		{name: "exec hints at --", args: []string{"lab", "exec", "ip", "-br", "addr"}, code: 2, stderrHas: "Put -- before the command"},
		{name: "down of no lab is fine", args: []string{"lab", "down", "--name", "nolab", "--state-dir", state}, code: 0, stdoutHas: "lab nolab is down", needsRoot: true},
		{name: "down needs root", args: []string{"lab", "down", "--name", "nolab", "--state-dir", state}, code: 1, stderrHas: "needs root", skipIfRoot: true},
		{name: "forwarder only on loopback", args: []string{"lab", "forward", "--listen", "0.0.0.0:0", "--netns", "/run/netns/x", "--to", "198.18.0.2:6443"}, code: 2, stderrHas: "loopback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needsRoot && os.Geteuid() != 0 {
				t.Skip("needs root")
			}
			if tt.skipIfRoot && os.Geteuid() == 0 {
				t.Skip("runs as root")
			}
			code, stdout, stderr := runKpbench(t, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderrHas) || !strings.Contains(stdout, tt.stdoutHas) {
				t.Errorf("kpbench %v = %d\nstdout: %s\nstderr: %s\nwant %d, stderr holding %q, stdout holding %q", tt.args, code, stdout, stderr, tt.code, tt.stderrHas, tt.stdoutHas)
			}
		})
	}
}
