// Package flock takes an exclusive flock(2) on a file, waiting for it
// until a context ends: the one lock loop of the lab's state and of the
// Kubernetes build cache.
package flock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// ErrWait is wrapped, with the context's error, when ctx ended before the
// lock was free.
var ErrWait = errors.New("waiting for the lock")

// Lock opens path (created with perm) and takes an exclusive flock on it,
// polling every poll until it is free or ctx ends. waiting, when set, is
// called once, the first time the lock is found held. The returned func
// releases the lock and closes the file.
func Lock(ctx context.Context, path string, perm os.FileMode, poll time.Duration, waiting func()) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, perm)
	if err != nil {
		return nil, fmt.Errorf("opening lock %s: %w", path, err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if waiting != nil {
			waiting()
			waiting = nil
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("%w %s: %w", ErrWait, path, ctx.Err())
		case <-time.After(poll):
		}
	}
}
