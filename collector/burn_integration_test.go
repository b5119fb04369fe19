package collector

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func skipIntegration(t *testing.T) {
	t.Helper()
	if os.Getenv("KPBENCH_SKIP_INTEGRATION") == "1" {
		t.Skip("KPBENCH_SKIP_INTEGRATION=1")
	}
	if testing.Short() {
		t.Skip("integration test skipped in -short mode")
	}
}

// startPinned starts cmd with its CPU affinity set to cpu and its nice
// value set to nice before exec, so every thread of the child (Go runtime
// threads included) has both: the fork happens on a locked OS thread that
// has them, and the child inherits the thread's attributes.
// With fifo the child also runs SCHED_FIFO (needs root): it then gets the
// CPU whenever it wants it, whatever else runs there.
func startPinned(cmd *exec.Cmd, cpu, nice int, fifo bool) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread's affinity is changed for good: never unlock it, so
		// the runtime throws the thread away when this goroutine ends.
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			errc <- fmt.Errorf("pinning thread to CPU %d: %w", cpu, err)
			return
		}
		// PRIO_PROCESS with who=0 is the calling thread on Linux.
		if err := unix.Setpriority(unix.PRIO_PROCESS, 0, nice); err != nil {
			errc <- fmt.Errorf("setting thread nice %d: %w", nice, err)
			return
		}
		if fifo {
			// The nice value stays (and still decides /proc/stat's nice
			// accounting); sched_setattr only keeps it for fair policies.
			if err := unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: 1}, 0); err != nil {
				errc <- fmt.Errorf("setting SCHED_FIFO: %w", err)
				return
			}
		}
		errc <- cmd.Start()
	}()
	if err := <-errc; err != nil {
		return err
	}
	var got unix.CPUSet
	if err := unix.SchedGetaffinity(cmd.Process.Pid, &got); err != nil {
		return fmt.Errorf("reading child affinity: %w", err)
	}
	if got.Count() != 1 || !got.IsSet(cpu) {
		return fmt.Errorf("child affinity has %d CPUs, want only %d", got.Count(), cpu)
	}
	return nil
}

// processCPUTime reads another process's CPU time from its CPU-time clock
// (clock_getcpuclockid): the scheduler's precise runtime of all its
// threads, a reference independent of /proc's clock ticks.
func processCPUTime(pid int) (time.Duration, error) {
	const cpuClockSched = 2 // CPUCLOCK_SCHED, process-wide
	clk := (^int32(pid))<<3 | cpuClockSched
	var ts unix.Timespec
	if err := unix.ClockGettime(clk, &ts); err != nil {
		return 0, fmt.Errorf("reading CPU clock of process %d: %w", pid, err)
	}
	return time.Duration(ts.Nano()), nil
}

// quietestCPU returns the CPU with the least busy time over d.
func quietestCPU(t *testing.T, fs FS, d time.Duration) (int, float64) {
	t.Helper()
	a, err := fs.Snapshot(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(d)
	b, err := fs.Snapshot(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := Delta(a, b, nil, nil)
	best, bestBusy := -1, 0.0
	for c, cores := range s.PerCPU {
		if best < 0 || cores.Total < bestBusy || (cores.Total == bestBusy && c < best) {
			best, bestBusy = c, cores.Total
		}
	}
	return best, bestBusy
}

func sampleFor(t *testing.T, fs FS, cfg SamplerConfig, d time.Duration) *Series {
	t.Helper()
	s, err := fs.NewSampler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(d)
	ser, err := s.Stop()
	if err != nil {
		t.Fatal(err)
	}
	return ser
}

// TestSamplerAttributesPinnedBurn burns a known duty cycle in a child
// pinned to one CPU and checks that the sampler attributes it.
//
// Per process, within 10%: the sampler's figure (from /proc/PID/stat clock
// ticks) against the child's CPU-time clock (the scheduler's precise
// runtime) read around the same window.
//
// Per CPU (as root): the child runs SCHED_FIFO, so it gets its CPU ahead of
// the shared machine's normal-priority work, and at nice 1, so /proc/stat
// counts its user time in the CPU's nice column, not user. When no other
// niced work runs and no interrupt work lands in the child's context (both
// are detected), the CPU's nice column is the child's work alone and must
// match it (within 25%: tick sampling), however the machine's other load
// comes and goes.
func TestSamplerAttributesPinnedBurn(t *testing.T) {
	skipIntegration(t)
	fs := mustFS(t, "/proc")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	root := os.Geteuid() == 0
	const nice = 1
	for _, duty := range []float64{0.25, 0.5} {
		t.Run(fmt.Sprintf("duty=%.2f", duty), func(t *testing.T) {
			cpu, _ := quietestCPU(t, fs, 500*time.Millisecond)
			base := sampleFor(t, fs, SamplerConfig{CPUs: []int{cpu}, Interval: 500 * time.Millisecond}, 1500*time.Millisecond)

			cmd := exec.Command(exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), fmt.Sprintf("%s=burn:%g:%s", childEnv, duty, 8*time.Second))
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := startPinned(cmd, cpu, nice, root); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			})
			time.Sleep(500 * time.Millisecond) // let the child reach its duty cycle
			pid := cmd.Process.Pid
			s, err := fs.NewSampler(SamplerConfig{
				CPUs:      []int{cpu},
				Processes: []Process{{Name: "burn", PID: pid}},
				Interval:  500 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			ref0, err := processCPUTime(pid)
			if err != nil {
				t.Fatal(err)
			}
			w0 := time.Now()
			all0, err := fs.Snapshot(nil, nil) // every CPU, to see niced work elsewhere
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			time.Sleep(6 * time.Second)
			ser, err := s.Stop()
			if err != nil {
				t.Fatal(err)
			}
			all1, err := fs.Snapshot(nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			ref1, err := processCPUTime(pid)
			if err != nil {
				t.Fatal(err)
			}
			ref := (ref1 - ref0).Seconds() / time.Since(w0).Seconds()

			proc := ser.Summary.Processes[0].Mean
			node := ser.Summary.Mean
			t.Logf("cpu %d: baseline %.3f cores busy (%.3f nice); with burn: %.3f busy, %.3f nice; burn process %.3f cores (%.3f user), its CPU clock %.3f; duty %.2f; %d samples",
				cpu, base.Summary.Mean.Total, base.Summary.Mean.Nice, node.Total, node.Nice, proc.Total, proc.User, ref, duty, len(ser.Samples))
			if len(ser.Samples) < 11 {
				t.Errorf("got %d samples over 6 s at 500 ms, want ≥ 11", len(ser.Samples))
			}
			if !near(proc.Total, ref, 0.10*ref) {
				t.Errorf("burn process = %.3f cores, its CPU clock says %.3f: want within 10%%", proc.Total, ref)
			}
			if !root {
				t.Skip("per-CPU checks need root (SCHED_FIFO) to give the burn its CPU on a shared machine")
			}
			if proc.Total < 0.5*duty {
				t.Logf("the burn got %.3f cores of its %.2f duty: the machine is very busy", proc.Total, duty)
			}
			// The CPU's nice column isolates the burn only if nothing else
			// niced ran (no nice time on the other CPUs either, before or
			// during the window) and if no interrupt work ran in the burn's
			// context: without IRQ time accounting (this kernel), softirq
			// work done while the burn is current is added to its runtime
			// and its ticks to its system time, so a burn with much system
			// time was partly doing the machine's network work.
			otherNice := 0.0
			for c, cores := range Delta(all0, all1, nil, nil).PerCPU {
				if c != cpu {
					otherNice += cores.Nice
				}
			}
			var polluted []string
			if base.Summary.Mean.Nice > 0.02 || otherNice > 0.02 {
				polluted = append(polluted, fmt.Sprintf("other niced work ran (%.3f cores before on cpu %d, %.3f on other CPUs during)", base.Summary.Mean.Nice, cpu, otherNice))
			}
			if proc.System > 0.1*proc.Total {
				polluted = append(polluted, fmt.Sprintf("%.0f%% of the burn's time was system time (interrupt work in its context)", 100*proc.System/proc.Total))
			}
			// /proc/stat's per-CPU times are tick samples (250 Hz here, no
			// precise accounting, in a VM whose host steals time): on the
			// saturated development machine they were off the burn's
			// precise CPU time by up to 17% (usually under 5%), so the
			// CPU's figure gets 25%. That still tells 0.25 from 0.5 cores
			// and catches any unit or CPU-selection error.
			if nice := node.Nice - base.Summary.Mean.Nice; !near(nice, ref, 0.25*ref) {
				if len(polluted) > 0 {
					t.Logf("cpu %d nice = %.3f cores, the burn's %.3f: not checked, %s", cpu, node.Nice, ref, strings.Join(polluted, "; "))
				} else {
					t.Errorf("cpu %d nice = %.3f cores (%.3f net of baseline), want the burn's %.3f ± 25%%", cpu, node.Nice, nice, ref)
				}
			}
			if node.Total < node.Nice || node.Total > 1.02 {
				t.Errorf("cpu %d total %.3f cores outside [nice %.3f, 1 core]", cpu, node.Total, node.Nice)
			}
			// The CPU's total holds the burn but also whatever else the
			// shared machine runs there, which comes and goes between a
			// baseline and the window: only its bounds are checked.
			if node.Total < 0.9*proc.Total {
				t.Errorf("cpu %d total %.3f cores < the burn's %.3f", cpu, node.Total, proc.Total)
			}
		})
	}
}
