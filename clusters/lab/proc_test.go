package lab

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name      string
		line      string
		state     byte
		start     uint64
		wantError bool
	}{
		{
			name:  "plain",
			line:  "4242 (kube-proxy) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 12 0 98765 1000 200 18446744073709551615",
			state: 'S', start: 98765,
		},
		{
			name:  "name with spaces and parens",
			line:  "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 123 0 0",
			state: 'R', start: 123,
		},
		{name: "zombie", line: "9 (etcd) Z 1 9 9 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0", state: 'Z', start: 55},
		{name: "truncated", line: "9 (etcd) S 1 2 3", wantError: true},
		{name: "no name", line: "garbage", wantError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, start, err := parseStat([]byte(tt.line))
			if tt.wantError {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil || state != tt.state || start != tt.start {
				t.Fatalf("parseStat = %c, %d, %v; want %c, %d", state, start, err, tt.state, tt.start)
			}
		})
	}
}

// A recorded process whose PID now belongs to another process (different
// start time) must never be signalled.
func TestStopSparesRecycledPID(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	_, start, err := procStat("/proc", cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(waited) }()

	recycled := Proc{Name: "old", PID: cmd.Process.Pid, StartTime: start + 1}
	if recycled.Alive() {
		t.Fatal("a process with another start time counts as alive")
	}
	if err := recycled.stop(time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-waited:
		t.Fatal("stop killed a process whose start time did not match")
	case <-time.After(100 * time.Millisecond):
	}

	real := Proc{Name: "sleep", PID: cmd.Process.Pid, StartTime: start}
	if !real.Alive() {
		t.Fatal("the running process does not count as alive")
	}
	if err := real.stop(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-waited:
	case <-time.After(3 * time.Second):
		t.Fatal("stop did not end the process")
	}
	if real.Alive() {
		t.Error("stopped process still alive")
	}
}

func TestLogTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	var b strings.Builder
	for i := 1; i <= 100; i++ {
		b.WriteString("line ")
		b.WriteString(strings.Repeat("x", i%7))
		b.WriteString("\n")
	}
	b.WriteString("the end\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	got := logTail(path, 3)
	lines := strings.Split(got, "\n")
	if len(lines) != 3 || lines[2] != "the end" {
		t.Errorf("logTail = %q", got)
	}
	if logTail(filepath.Join(t.TempDir(), "missing"), 3) != "" {
		t.Error("tail of a missing file is not empty")
	}
}

func TestComponentErrorCarriesTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "apiserver.log")
	if err := os.WriteFile(path, []byte("starting\nError: invalid flag --frobnicate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := componentError(Proc{Name: "kube-apiserver", Log: path}, os.ErrDeadlineExceeded)
	for _, want := range []string{"kube-apiserver", "--frobnicate", path} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestIsForwarderCmdline(t *testing.T) {
	ns := "/run/netns/kpb-a-cp"
	tests := []struct {
		name string
		args []string
		want bool
	}{
		{name: "ours", args: []string{"/usr/bin/kpbench", "lab", "forward", "--listen-fd=3", "--netns=" + ns, "--to=198.18.0.2:6443"}, want: true},
		{name: "other lab", args: []string{"/usr/bin/kpbench", "lab", "forward", "--netns=/run/netns/kpb-ab-cp"}},
		{name: "serve", args: []string{"/usr/bin/kpbench", "serve", "--netns=" + ns}},
		{name: "short", args: []string{"kpbench"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmdline := []byte(strings.Join(tt.args, "\x00") + "\x00")
			if got := isForwarderCmdline(cmdline, ns); got != tt.want {
				t.Errorf("isForwarderCmdline = %v, want %v", got, tt.want)
			}
		})
	}
}
