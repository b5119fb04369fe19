package collector

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// A remote point is a point measurement run by another process — the CPU
// agent pod on an in-cluster client node, reached by exec — over a pipe:
//
//	agent:  StartPoint, then writes the ready line `{"ready":true}` and waits
//	        for a byte or the end of its stdin (or a deadline);
//	caller: writes "stop\n" and closes the agent's stdin to end the window;
//	agent:  Stop, then writes the PointResult as one JSON document.
//
// The ready line makes the caller's Begin return only once sampling runs,
// so the window never misses the start of the load.

// remoteReady is the agent's first line.
type remoteReady struct {
	Ready bool `json:"ready"`
}

// ServeRemotePoint is the agent's side: it measures from now until stop
// reaches EOF (or maxDuration passes, or ctx ends), writing the ready line
// and then the result to out.
func ServeRemotePoint(ctx context.Context, fs FS, cfg PointConfig, stop io.Reader, out io.Writer, maxDuration time.Duration) error {
	m, err := fs.StartPoint(ctx, cfg)
	if err != nil {
		return err
	}
	if err := json.NewEncoder(out).Encode(remoteReady{Ready: true}); err != nil {
		_, _ = m.Stop(ctx)
		return fmt.Errorf("writing the ready line: %w", err)
	}
	if f, ok := out.(interface{ Sync() error }); ok {
		_ = f.Sync()
	}
	eof := make(chan struct{})
	go func() {
		// Any byte or the end of input ends the window: exec streams
		// that cannot half-close stdin (websocket before v5) still
		// deliver the caller's stop line.
		b := make([]byte, 1)
		for {
			n, err := stop.Read(b)
			if n > 0 || err != nil {
				break
			}
		}
		close(eof)
	}()
	var deadline <-chan time.Time
	if maxDuration > 0 {
		t := time.NewTimer(maxDuration)
		defer t.Stop()
		deadline = t.C
	}
	timedOut := false
	select {
	case <-eof:
	case <-ctx.Done():
	case <-deadline:
		timedOut = true
	}
	res, err := m.Stop(context.WithoutCancel(ctx))
	if err != nil {
		return err
	}
	if timedOut {
		res.Problems = append(res.Problems, fmt.Sprintf("window ended by the agent's limit of %s, not by the caller", maxDuration))
	}
	if err := json.NewEncoder(out).Encode(res); err != nil {
		return fmt.Errorf("writing the point result: %w", err)
	}
	return nil
}

// RunFunc runs a command somewhere (a client node) with the given stdio,
// like clusters.ClientNode's Run.
type RunFunc func(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, args ...string) error

// RemotePoint is the caller's side of a remote point in progress.
type RemotePoint struct {
	stop   *io.PipeWriter
	stdout *bufio.Reader
	done   chan struct{}
	err    error
	stderr *lockedBuffer
}

// StartRemotePoint runs args (a command that calls ServeRemotePoint, e.g.
// `kpbench cluster agent point ...`) with run and returns once the remote
// side reports that sampling runs.
func StartRemotePoint(ctx context.Context, run RunFunc, args ...string) (*RemotePoint, error) {
	stopR, stopW := io.Pipe()
	outR, outW := io.Pipe()
	p := &RemotePoint{stop: stopW, stdout: bufio.NewReader(outR), done: make(chan struct{}), stderr: &lockedBuffer{}}
	go func() {
		p.err = run(ctx, stopR, outW, p.stderr, args...)
		_ = stopR.Close()
		_ = outW.CloseWithError(io.EOF)
		close(p.done)
	}()
	line, err := p.stdout.ReadBytes('\n')
	var ready remoteReady
	if err == nil {
		err = json.Unmarshal(line, &ready)
	}
	if err != nil || !ready.Ready {
		_ = stopW.Close()
		<-p.done
		return nil, p.failure("starting the remote point", err, line)
	}
	return p, nil
}

// Stop ends the window and returns the remote side's result.
func (p *RemotePoint) Stop(ctx context.Context) (*PointResult, error) {
	go func() {
		// The stop line, then EOF; either one ends the window. Writing
		// fails at once if the remote side is gone already.
		_, _ = p.stop.Write([]byte("stop\n"))
		_ = p.stop.Close()
	}()
	var (
		res  PointResult
		derr error
		read = make(chan struct{})
	)
	go func() {
		derr = json.NewDecoder(p.stdout).Decode(&res)
		_, _ = io.Copy(io.Discard, p.stdout)
		close(read)
	}()
	select {
	case <-read:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	<-p.done
	if derr != nil || p.err != nil {
		return nil, p.failure("ending the remote point", errors.Join(derr, p.err), nil)
	}
	return &res, nil
}

func (p *RemotePoint) failure(what string, err error, got []byte) error {
	msg := what
	if err != nil {
		msg += ": " + err.Error()
	} else {
		msg += ": the remote side did not report ready"
	}
	if s := strings.TrimSpace(string(got)); s != "" {
		msg += fmt.Sprintf(" (it printed %q)", truncate(s, 200))
	}
	if s := strings.TrimSpace(p.stderr.String()); s != "" {
		msg += "; stderr: " + truncate(s, 800)
	}
	return errors.New(msg)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() < 64<<10 {
		l.b.Write(p)
	}
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
