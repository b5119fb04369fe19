package lab

// Teardown: Down and what a failed Up runs to remove what it made.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kpbench/kpbench/clusters/lab/netns"
)

// Down stops every process the lab started (unless Config.Keep) (by PID, checking start times),
// deletes its namespaces and removes its state directory. It is safe to
// call twice, for a lab that does not exist, and after a crash.
func (l *Lab) Down(ctx context.Context) error {
	if l.cfg.Keep {
		l.cfg.Logger.Info("lab left up", "name", l.cfg.Name, "kubeconfig", l.KubeconfigPath())
		return nil
	}
	if os.Geteuid() != 0 {
		return ErrNotRoot
	}
	unlock, err := lock(ctx, l.cfg.StateDir, l.cfg.Name)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := readState(l.dir)
	if errors.Is(err, ErrNotFound) {
		st = &State{Name: l.cfg.Name}
	} else if err != nil {
		// Unreadable state: still remove what can be found by name.
		l.cfg.Logger.Warn("lab state unreadable; removing what can be found by name", "err", err)
		st = &State{Name: l.cfg.Name}
	}
	return l.teardown(ctx, st)
}

// teardown removes everything st records plus any namespace named like
// this lab's, and the state directory. The caller holds the lock.
func (l *Lab) teardown(ctx context.Context, st *State) error {
	var errs []error
	// Processes in reverse start order, so clients go before servers.
	for i := len(st.Procs) - 1; i >= 0; i-- {
		if err := st.Procs[i].stop(5 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	// The forwarder lives in the root namespace: if the state lost it,
	// find it by its command line, which names this lab's cp namespace.
	for _, p := range findForwarders("/proc", netns.Path(l.nsName("cp"))) {
		if err := p.stop(2 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	names := slices.Clone(st.Namespaces)
	if found, err := netns.List(l.nsPrefix()); err == nil {
		for _, n := range found {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	for _, n := range names {
		if !strings.HasPrefix(n, l.nsPrefix()) {
			continue // never touch a namespace that is not this lab's
		}
		// Whatever still runs in a namespace of this lab was started by it
		// (a process that escaped the records, e.g. after a crash).
		if pids, err := netns.PIDsIn("/proc", netns.Path(n)); err == nil {
			for _, pid := range pids {
				_, start, err := procStat("/proc", pid)
				if err != nil {
					continue
				}
				p := Proc{Name: "process in " + n, PID: pid, StartTime: start}
				if err := p.stop(2 * time.Second); err != nil {
					errs = append(errs, err)
				}
			}
		}
		if err := netns.Delete(ctx, n); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(l.dir); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", l.dir, err))
		}
		_ = os.Remove(filepath.Join(l.cfg.StateDir, l.cfg.Name+".lock"))
	}
	l.mu.Lock()
	l.st = nil
	l.mu.Unlock()
	if len(errs) > 0 {
		return fmt.Errorf("lab %s down: %w", l.cfg.Name, errors.Join(errs...))
	}
	l.cfg.Logger.Info("lab: down", "name", l.cfg.Name)
	return nil
}
