package lab

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestDescribeAndKeepFromState checks what a run records about a lab and
// that Down with Keep leaves the lab's state alone.
func TestDescribeAndKeepFromState(t *testing.T) {
	stateDir := t.TempDir()
	l, err := New(Config{Name: "d1", StateDir: stateDir, CacheDir: t.TempDir(), KpbenchBin: "/bin/true", Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	if l.Running(context.Background()) {
		t.Error("a lab without state is not running")
	}
	st := &State{Name: "d1", Phase: PhaseUp, EtcdVersion: "3.6.5", Backends: []string{"198.18.1.1", "198.18.1.2"},
		NodeCPUs: []int{1}, OtherCPUs: []int{0}}
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeState(l.dir, st); err != nil {
		t.Fatal(err)
	}
	cluster, d := l.Describe(context.Background())
	if cluster != "d1" || d["etcdVersion"] != "3.6.5" || d["backends"] != "2" || len(d) != 2 {
		t.Errorf("Describe = %q, %v", cluster, d)
	}
	node, others, err := l.Pinning(context.Background())
	if err != nil || !slices.Equal(node, []int{1}) || !slices.Equal(others, []int{0}) {
		t.Errorf("Pinning = %v, %v, %v", node, others, err)
	}
	if l.Running(context.Background()) {
		t.Error("a lab with no processes is not running")
	}
	if err := l.Down(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(l.dir, "state.json")); err != nil {
		t.Errorf("Down with Keep removed the lab's state: %v", err)
	}
}
