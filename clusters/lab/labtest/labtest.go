// Package labtest brings up a kpbench lab for a test: a unique name, the
// kpbench binary the backends need, removal registered with t.Cleanup, and a
// clear skip where a lab cannot run (not root, KPBENCH_SKIP_INTEGRATION=1).
// The lab's Kubernetes binaries are built on first use and cached.
package labtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kpbench/kpbench/clusters/lab"
	"github.com/kpbench/kpbench/clusters/lab/build"
	"github.com/kpbench/kpbench/clusters/lab/vm"
	"github.com/kpbench/kpbench/scenarios"
)

// SkipUnlessIntegration skips t unless lab integration tests can run here:
// root, and KPBENCH_SKIP_INTEGRATION not set to 1.
func SkipUnlessIntegration(t testing.TB) {
	t.Helper()
	if os.Getenv("KPBENCH_SKIP_INTEGRATION") == "1" {
		t.Skip("lab integration test skipped: KPBENCH_SKIP_INTEGRATION=1")
	}
	if os.Geteuid() != 0 {
		t.Skip("lab integration test skipped: needs root (network namespaces, iptables, nftables)")
	}
	for _, tool := range []string{"ip", "iptables-save", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("lab integration test skipped: %s is not installed (run hack/deps.sh)", tool)
		}
	}
}

// SkipUnlessVM skips t unless a lab with a VM client node can run here:
// what SkipUnlessIntegration asks, plus qemu, a guest kernel with its
// modules and a static busybox (hack/deps.sh installs them).
func SkipUnlessVM(t testing.TB) {
	t.Helper()
	SkipUnlessIntegration(t)
	if _, err := vm.FindQEMU(); err != nil {
		t.Skipf("VM node test skipped: %v", err)
	}
	if _, err := vm.DefaultKernel(); err != nil {
		t.Skipf("VM node test skipped: %v", err)
	}
	if _, err := vm.FindBusybox(); err != nil {
		t.Skipf("VM node test skipped: %v", err)
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("VM node test skipped: no /dev/net/tun for the guest's tap device: %v", err)
	}
}

// UniqueName returns a lab name no other test process uses: "t" and 8 hex
// digits.
func UniqueName() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "t" + hex.EncodeToString(b[:])
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// KpbenchBin returns the kpbench executable the lab runs as backend server
// and API forwarder: $KPBENCH_BIN if set (make test sets it), else one
// built from this module once per test process (Go's build cache makes it
// quick).
func KpbenchBin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("KPBENCH_BIN"); p != "" {
		return p
	}
	binOnce.Do(func() { binPath, binErr = buildKpbench() })
	if binErr != nil {
		t.Fatalf("building kpbench for the lab (or set KPBENCH_BIN): %v", binErr)
	}
	return binPath
}

func buildKpbench() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the kpbench module")
	}
	cache, err := build.DefaultCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "labtest")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Build beside the final path and rename: test processes of other
	// packages may build at the same time, and a rename never leaves a
	// half-written binary behind.
	tmp, err := os.CreateTemp(dir, "kpbench-*.tmp")
	if err != nil {
		return "", err
	}
	tmp.Close()
	cmd := exec.Command("go", "build", "-o", tmp.Name(), "./cmd/kpbench")
	cmd.Dir = filepath.Dir(gomod)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("go build ./cmd/kpbench: %w: %s", err, out)
	}
	final := filepath.Join(dir, "kpbench")
	if err := os.Rename(tmp.Name(), final); err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return final, nil
}

// Logger returns a logger that writes to t's output.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// Config fills cfg for a test: a unique name unless one is given, the
// kpbench binary, a logger into t's log.
func Config(t testing.TB, cfg lab.Config) lab.Config {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = UniqueName()
	}
	if cfg.KpbenchBin == "" {
		cfg.KpbenchBin = KpbenchBin(t)
	}
	if cfg.Logger == nil {
		cfg.Logger = Logger(t)
	}
	return cfg
}

// Start brings up a lab in mode for t (skipping t where a lab cannot run)
// and registers its removal with t.Cleanup. Labs that earlier test
// processes left behind when they died are removed first. The first call
// on a machine builds the Kubernetes binaries (minutes); later calls use
// the cache.
func Start(t testing.TB, cfg lab.Config, mode scenarios.Mode) *lab.Lab {
	t.Helper()
	SkipUnlessIntegration(t)
	cfg = Config(t, cfg)
	if swept, err := lab.SweepOrphans(context.Background(), lab.Config{StateDir: cfg.StateDir, Logger: cfg.Logger}); err != nil {
		t.Logf("sweeping labs of dead test processes: %v", err)
	} else if len(swept) > 0 {
		t.Logf("removed labs left by dead test processes: %v", swept)
	}
	l, err := lab.New(cfg)
	if err != nil {
		t.Fatalf("lab config: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := l.Down(ctx); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	if err := l.UpOwned(ctx, mode); err != nil {
		t.Fatalf("lab up: %v", err)
	}
	return l
}
