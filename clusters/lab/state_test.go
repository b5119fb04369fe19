package lab

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, err := readState(dir); !errors.Is(err, ErrNotFound) {
		t.Fatalf("readState of an empty dir = %v, want ErrNotFound", err)
	}
	st := &State{Name: "a", Phase: PhaseUp, Namespaces: []string{"kpb-a-net"}, NodeCPUs: []int{1}}
	st.setProc(Proc{Name: CompEtcd, PID: 10, StartTime: 5})
	st.setProc(Proc{Name: CompKubeProxy, PID: 11, StartTime: 6})
	st.setProc(Proc{Name: CompKubeProxy, PID: 12, StartTime: 7}) // a mode switch replaces it
	if err := writeState(dir, st); err != nil {
		t.Fatal(err)
	}
	got, err := readState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "a" || got.SchemaVersion != stateSchema || len(got.Procs) != 2 || !slices.Equal(got.NodeCPUs, []int{1}) {
		t.Errorf("round trip = %+v", got)
	}
	if p, ok := got.proc(CompKubeProxy); !ok || p.PID != 12 {
		t.Errorf("kube-proxy = %+v, %v; want the replaced record", p, ok)
	}
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte(`{"schemaVersion": 99}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readState(dir); err == nil || !strings.Contains(err.Error(), "99") {
		t.Errorf("readState of an unknown schema = %v", err)
	}
}

func TestList(t *testing.T) {
	root := t.TempDir()
	for _, n := range []string{"one", "two"} {
		if err := os.MkdirAll(filepath.Join(root, n), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := writeState(filepath.Join(root, n), &State{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.MkdirAll(filepath.Join(root, "nostate"), 0o700)
	_ = os.MkdirAll(filepath.Join(root, "Bad-Name"), 0o700)
	_ = os.WriteFile(filepath.Join(root, "one.lock"), nil, 0o600)
	got, err := List(root)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"one", "two"}) {
		t.Errorf("List = %v", got)
	}
	if got, err := List(filepath.Join(root, "missing")); err != nil || len(got) != 0 {
		t.Errorf("List of a missing dir = %v, %v", got, err)
	}
}

func TestLockExcludes(t *testing.T) {
	root := t.TempDir()
	unlock, err := lock(context.Background(), root, "a")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := lock(ctx, root, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock = %v, want to wait until the deadline", err)
	}
	other, err := lock(context.Background(), root, "b")
	if err != nil {
		t.Fatalf("another lab's lock: %v", err)
	}
	other()
	unlock()
	again, err := lock(context.Background(), root, "a")
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	again()
}

// A lab whose owner process is gone is swept; one whose owner lives, or
// that has no owner, is kept.
func TestSweepOrphans(t *testing.T) {
	root := t.TempDir()
	self, err := (&Lab{}).ownerProcForTest()
	if err != nil {
		t.Fatal(err)
	}
	owners := map[string]*Proc{"alive": self, "unowned": nil}
	if os.Geteuid() == 0 { // Down needs root
		owners["dead"] = &Proc{Name: "owner", PID: 1, StartTime: self.StartTime + 1e9}
	}
	for name, owner := range owners {
		if err := os.MkdirAll(filepath.Join(root, name), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := writeState(filepath.Join(root, name), &State{Name: name, Owner: owner}); err != nil {
			t.Fatal(err)
		}
	}
	swept, err := SweepOrphans(context.Background(), Config{StateDir: root, KpbenchBin: "/bin/true"})
	wantSwept := []string{}
	if _, ok := owners["dead"]; ok {
		wantSwept = []string{"dead"}
	}
	if err != nil || !slices.Equal(swept, wantSwept) {
		t.Fatalf("SweepOrphans = %v, %v; want %v swept", swept, err, wantSwept)
	}
	if got, _ := List(root); len(got) != 2 {
		t.Errorf("labs after the sweep = %v", got)
	}
}
