package flock

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestLockWaitsForTheHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := Lock(context.Background(), path, 0o600, 10*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Held: a second taker waits, says so once, and gives up with ctx.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	waited := 0
	if _, err := Lock(ctx, path, 0o600, 10*time.Millisecond, func() { waited++ }); !errors.Is(err, ErrWait) || !errors.Is(err, context.DeadlineExceeded) || waited != 1 {
		t.Errorf("held lock: err %v, waiting called %d times", err, waited)
	}
	// Released while another waits: it gets it.
	go func() { time.Sleep(50 * time.Millisecond); unlock() }()
	again, err := Lock(context.Background(), path, 0o600, 10*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	again()
}
