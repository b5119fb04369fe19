package lab_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kpbench/kpbench/clusters/lab"
	"github.com/kpbench/kpbench/clusters/lab/build"
	"github.com/kpbench/kpbench/clusters/lab/labtest"
	"github.com/kpbench/kpbench/clusters/lab/netns"
	"github.com/kpbench/kpbench/scenarios"
)

// binariesFor returns the lab's real binaries (building them on first use).
func binariesFor(t *testing.T) build.Binaries {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	l, err := lab.New(lab.Config{KpbenchBin: labtest.KpbenchBin(t), Logger: labtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Binaries(ctx)
	if err != nil {
		t.Fatalf("lab binaries: %v", err)
	}
	return b
}

// A component that fails makes Up fail with its log tail and remove
// everything it made.
func TestLabUpFailureShowsLogAndCleansUp(t *testing.T) {
	labtest.SkipUnlessIntegration(t)
	real := binariesFor(t)
	dir := t.TempDir()
	for _, name := range []string{build.Etcd, build.KubeProxy} {
		if err := os.Symlink(filepath.Join(real.Dir, name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	broken := "#!/bin/sh\necho 'kube-apiserver: refusing to start: simulated failure' >&2\nexit 3\n"
	if err := os.WriteFile(filepath.Join(dir, build.KubeAPIServer), []byte(broken), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := labtest.Config(t, lab.Config{BinDir: dir, Backends: 1, ReadyTimeout: 20 * time.Second})
	l, err := lab.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Down(context.Background()) })
	err = l.Up(context.Background(), scenarios.ModeIPTables)
	var ce *lab.ComponentError
	if !errors.As(err, &ce) || ce.Component != lab.CompAPIServer {
		t.Fatalf("Up = %v, want a ComponentError for %s", err, lab.CompAPIServer)
	}
	if !strings.Contains(err.Error(), "simulated failure") {
		t.Errorf("the error lacks the apiserver's log tail: %v", err)
	}
	if left, _ := netns.List("kpb-" + cfg.Name + "-"); len(left) > 0 {
		t.Errorf("a failed Up left namespaces: %v", left)
	}
	if _, err := os.Stat(l.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed Up left its state directory (err %v)", err)
	}
}

// Down works from the names alone when the state file is lost (a crash
// before it was written): processes in the lab's namespaces and the
// forwarder in the root namespace are found and stopped.
func TestLabDownWithoutState(t *testing.T) {
	labtest.SkipUnlessIntegration(t)
	l := labtest.Start(t, lab.Config{Backends: 2}, scenarios.ModeNFTables)
	ctx := context.Background()
	st, err := l.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(l.Dir(), "state.json")); err != nil {
		t.Fatal(err)
	}
	if err := l.Down(ctx); err != nil {
		t.Fatalf("down without state: %v", err)
	}
	if left, _ := netns.List("kpb-" + l.LabName() + "-"); len(left) > 0 {
		t.Errorf("namespaces left: %v", left)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, c := range st.Components {
		for alive(c.PID, c.Name) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if alive(c.PID, c.Name) {
			t.Errorf("%s (pid %d) survived down without state", c.Name, c.PID)
		}
	}
}
