package vm

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
)

// The guest agent's protocol. The host opens one TCP connection per request
// to the agent (AgentPort on the node's lab address, reached from inside
// the lab's -net namespace) and sends one JSON line, a request. The agent
// answers with one JSON line, a reply; then:
//
//	exec:  frames both ways until the command ends: the host sends stdin
//	       ('i', then 'I' for its end), the agent stdout ('o'), stderr ('e')
//	       and last the exit status ('x', a JSON exitStatus). A connection
//	       closed early kills the command's process group.
//	dial:  the connection becomes a TCP connection from the guest to Addr.
//	start, stop, alive: the reply is the whole answer.
//
// A frame is a type byte, a big-endian uint32 length and the payload.
// Every request carries the lab's token, a secret only root on this machine
// can read (the lab's state directory), so that nothing else on the lab
// network can run commands in the guest.

// AgentPort is the guest agent's TCP port on the node's lab address.
const AgentPort = 10299

type request struct {
	Token string   `json:"token"`
	Op    string   `json:"op"`
	Args  []string `json:"args,omitempty"`
	Stdin bool     `json:"stdin,omitempty"`
	Addr  string   `json:"addr,omitempty"`
	Log   string   `json:"log,omitempty"`
	Proc  *Proc    `json:"proc,omitempty"`
	Grace string   `json:"grace,omitempty"`
}

type reply struct {
	Error string `json:"error,omitempty"`
	Proc  *Proc  `json:"proc,omitempty"`
	Alive bool   `json:"alive,omitempty"`
}

type exitStatus struct {
	Code   int    `json:"code"`
	Signal int    `json:"signal,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Proc is a process in the guest: its PID and start time (clock ticks
// since the guest's boot), which tells it from a later process with the
// same PID.
type Proc struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"startTime"`
}

// ExitError is a command in the guest that exited non-zero or was killed.
type ExitError struct {
	Code   int
	Signal int
}

func (e *ExitError) Error() string {
	if e.Signal != 0 {
		return fmt.Sprintf("signal: %s", syscall.Signal(e.Signal))
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// ExitCode is the status a shell would report: 128+N for signal N.
func (e *ExitError) ExitCode() int {
	if e.Signal != 0 {
		return 128 + e.Signal
	}
	return e.Code
}

const (
	frameStdin    = 'i'
	frameStdinEOF = 'I'
	frameStdout   = 'o'
	frameStderr   = 'e'
	frameExit     = 'x'
	maxFrame      = 1 << 20
)

func writeFrame(w io.Writer, typ byte, p []byte) error {
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(p)))
	if _, err := w.Write(append(hdr[:], p...)); err != nil {
		return err
	}
	return nil
}

func readFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("agent protocol: frame of %d bytes", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	return hdr[0], p, nil
}

// frameWriter writes one stream's data as frames of its type.
type frameWriter struct {
	mu  *sync.Mutex
	w   io.Writer
	typ byte
}

func (f frameWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for off := 0; off < len(p); off += 32 << 10 {
		end := min(off+32<<10, len(p))
		if err := writeFrame(f.w, f.typ, p[off:end]); err != nil {
			return off, err
		}
	}
	return len(p), nil
}

// Client talks to a guest agent.
type Client struct {
	// DialAgent opens a connection to the agent.
	DialAgent func(ctx context.Context) (net.Conn, error)
	Token     string
}

func (c *Client) open(ctx context.Context, req request) (net.Conn, *bufio.Reader, error) {
	conn, err := c.DialAgent(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to the node VM's agent: %w", err)
	}
	req.Token = c.Token
	b, _ := json.Marshal(req)
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := conn.Write(append(b, '\n')); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("node VM agent: %w", err)
	}
	br := bufio.NewReader(conn)
	line, err := br.ReadBytes('\n')
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("node VM agent: reading the reply to %s: %w", req.Op, err)
	}
	var rep reply
	if err := json.Unmarshal(line, &rep); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("node VM agent: bad reply %q: %w", strings.TrimSpace(string(line)), err)
	}
	if rep.Error != "" {
		conn.Close()
		return nil, nil, fmt.Errorf("node VM agent: %s", rep.Error)
	}
	_ = conn.SetDeadline(time.Time{})
	return &replyConn{Conn: conn, r: br, rep: rep}, br, nil
}

type replyConn struct {
	net.Conn
	r   *bufio.Reader
	rep reply
}

// Read reads what the agent sent after its reply (bytes it may have
// buffered with the reply line first).
func (c *replyConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Exec runs args in the guest with the given stdio (nil: none) and waits
// for it; a non-zero exit is an *ExitError. Cancelling ctx kills the
// command.
func (c *Client) Exec(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, args ...string) error {
	if len(args) == 0 {
		return errors.New("node VM: no command")
	}
	conn, br, err := c.open(ctx, request{Op: "exec", Args: args, Stdin: stdin != nil})
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	var wmu sync.Mutex
	if stdin != nil {
		go func() {
			_, _ = io.Copy(frameWriter{mu: &wmu, w: conn, typ: frameStdin}, stdin)
			wmu.Lock()
			_ = writeFrame(conn, frameStdinEOF, nil)
			wmu.Unlock()
		}()
	}
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	for {
		typ, p, err := readFrame(br)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("node VM agent: %s: connection lost: %w", args[0], err)
		}
		switch typ {
		case frameStdout:
			if _, err := stdout.Write(p); err != nil {
				return err
			}
		case frameStderr:
			if _, err := stderr.Write(p); err != nil {
				return err
			}
		case frameExit:
			var st exitStatus
			if err := json.Unmarshal(p, &st); err != nil {
				return fmt.Errorf("node VM agent: bad exit status: %w", err)
			}
			if st.Error != "" {
				return errors.New(st.Error)
			}
			if st.Code != 0 || st.Signal != 0 {
				return &ExitError{Code: st.Code, Signal: st.Signal}
			}
			return nil
		default:
			return fmt.Errorf("node VM agent: unexpected frame %q", typ)
		}
	}
}

// Dial opens a TCP connection from inside the guest to addr.
func (c *Client) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if network != "tcp" && network != "tcp4" {
		return nil, fmt.Errorf("node VM: dial %s: only tcp", network)
	}
	conn, _, err := c.open(ctx, request{Op: "dial", Addr: addr})
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// Start starts args in the guest in a session of its own, with stdout and
// stderr appended to log (a path the guest can write: the lab directory).
func (c *Client) Start(ctx context.Context, log string, args ...string) (Proc, error) {
	conn, _, err := c.open(ctx, request{Op: "start", Args: args, Log: log})
	if err != nil {
		return Proc{}, err
	}
	defer conn.Close()
	return *conn.(*replyConn).rep.Proc, nil
}

// Stop sends p SIGTERM, then SIGKILL after grace, and returns once it is
// gone; a process that is gone already is fine.
func (c *Client) Stop(ctx context.Context, p Proc, grace time.Duration) error {
	conn, _, err := c.open(ctx, request{Op: "stop", Proc: &p, Grace: grace.String()})
	if err != nil {
		return err
	}
	return conn.Close()
}

// Alive reports whether p still runs in the guest.
func (c *Client) Alive(ctx context.Context, p Proc) (bool, error) {
	conn, _, err := c.open(ctx, request{Op: "alive", Proc: &p})
	if err != nil {
		return false, err
	}
	defer conn.Close()
	return conn.(*replyConn).rep.Alive, nil
}

// Server is the agent's side.
type Server struct {
	Token string
	// Self is the kpbench executable; a command named "kpbench" runs it.
	Self string
	Log  *slog.Logger
}

// Serve answers connections on ln until it fails.
func (s *Server) Serve(ln net.Listener) error {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return err
		}
		go s.handle(conn)
	}
}

func (s *Server) handle(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := br.ReadBytes('\n')
	if err != nil {
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	var req request
	if err := json.Unmarshal(line, &req); err != nil {
		s.answer(conn, reply{Error: "bad request: " + err.Error()})
		return
	}
	if subtle.ConstantTimeCompare([]byte(req.Token), []byte(s.Token)) != 1 {
		s.answer(conn, reply{Error: "bad token"})
		return
	}
	switch req.Op {
	case "exec":
		s.exec(conn, br, req)
	case "dial":
		s.dial(conn, br, req)
	case "start":
		p, err := s.start(req)
		if err != nil {
			s.answer(conn, reply{Error: err.Error()})
			return
		}
		s.answer(conn, reply{Proc: &p})
	case "stop":
		grace, _ := time.ParseDuration(req.Grace)
		if req.Proc == nil {
			s.answer(conn, reply{Error: "stop: no process"})
			return
		}
		if err := stopProc(*req.Proc, grace); err != nil {
			s.answer(conn, reply{Error: err.Error()})
			return
		}
		s.answer(conn, reply{})
	case "alive":
		if req.Proc == nil {
			s.answer(conn, reply{Error: "alive: no process"})
			return
		}
		s.answer(conn, reply{Alive: alive(*req.Proc)})
	default:
		s.answer(conn, reply{Error: "unknown op " + req.Op})
	}
}

func (s *Server) answer(w io.Writer, r reply) {
	b, _ := json.Marshal(r)
	_, _ = w.Write(append(b, '\n'))
}

// hostPATH is the PATH of commands run in the guest: the host's own tools.
const hostPATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func (s *Server) command(args []string) *exec.Cmd {
	name := args[0]
	if name == "kpbench" && s.Self != "" {
		name = s.Self
	}
	cmd := exec.Command(name, args[1:]...)
	cmd.Env = []string{"PATH=" + hostPATH, "LC_ALL=C", "HOME=/root"}
	cmd.Dir = "/"
	return cmd
}

func (s *Server) exec(conn net.Conn, br *bufio.Reader, req request) {
	if len(req.Args) == 0 {
		s.answer(conn, reply{Error: "exec: no command"})
		return
	}
	var wmu sync.Mutex
	cmd := s.command(req.Args)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout = frameWriter{mu: &wmu, w: conn, typ: frameStdout}
	cmd.Stderr = frameWriter{mu: &wmu, w: conn, typ: frameStderr}
	var stdinW *io.PipeWriter
	if req.Stdin {
		var r *io.PipeReader
		r, stdinW = io.Pipe()
		cmd.Stdin = r
	}
	if err := cmd.Start(); err != nil {
		s.answer(conn, reply{Error: fmt.Sprintf("%s: %v", req.Args[0], err)})
		return
	}
	wmu.Lock()
	s.answer(conn, reply{})
	wmu.Unlock()
	// The host's frames: stdin, or the end of the connection, which kills
	// the command (the host gave up on it).
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		for {
			typ, p, err := readFrame(br)
			if err != nil {
				if stdinW != nil {
					_ = stdinW.CloseWithError(io.EOF)
				}
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				return
			}
			if stdinW == nil {
				continue
			}
			switch typ {
			case frameStdin:
				if _, err := stdinW.Write(p); err != nil {
					continue // the command closed its stdin; drain the host's
				}
			case frameStdinEOF:
				_ = stdinW.Close()
			}
		}
	}()
	err := cmd.Wait()
	st := exitStatus{}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			st.Signal = int(ws.Signal())
		} else {
			st.Code = ee.ExitCode()
		}
	default:
		st.Error = err.Error()
	}
	b, _ := json.Marshal(st)
	wmu.Lock()
	_ = writeFrame(conn, frameExit, b)
	wmu.Unlock()
	if stdinW != nil {
		_ = stdinW.Close()
	}
	// Half-close so the host sees the end; it closes, which ends the reader.
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
	}
}

func (s *Server) dial(conn net.Conn, br *bufio.Reader, req request) {
	c, err := net.DialTimeout("tcp", req.Addr, 10*time.Second)
	if err != nil {
		s.answer(conn, reply{Error: err.Error()})
		return
	}
	defer c.Close()
	s.answer(conn, reply{})
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(c, br)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(conn, c)
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}()
	<-done
	<-done
}

func (s *Server) start(req request) (Proc, error) {
	if len(req.Args) == 0 || req.Log == "" {
		return Proc{}, errors.New("start: a command and a log file are needed")
	}
	logf, err := os.OpenFile(req.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return Proc{}, fmt.Errorf("start: %w", err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "==== %s kpbench starting in the node VM: %s\n", time.Now().UTC().Format(time.RFC3339), strings.Join(req.Args, " "))
	cmd := s.command(req.Args)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return Proc{}, fmt.Errorf("starting %s: %w", req.Args[0], err)
	}
	go func() { _ = cmd.Wait() }()
	p := Proc{PID: cmd.Process.Pid}
	if st, err := procStat(p.PID); err == nil {
		p.StartTime = st.Starttime
	}
	return p, nil
}

func procStat(pid int) (procfs.ProcStat, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return procfs.ProcStat{}, err
	}
	return p.Stat()
}

func alive(p Proc) bool {
	if p.PID <= 0 {
		return false
	}
	st, err := procStat(p.PID)
	return err == nil && st.Starttime == p.StartTime && st.State != "Z" && st.State != "X"
}

func stopProc(p Proc, grace time.Duration) error {
	if !alive(p) {
		return nil
	}
	_ = syscall.Kill(p.PID, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) && alive(p) {
		time.Sleep(20 * time.Millisecond)
	}
	if alive(p) {
		_ = syscall.Kill(p.PID, syscall.SIGKILL)
		for i := 0; i < 250 && alive(p); i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if alive(p) {
		return fmt.Errorf("process %d survived SIGKILL", p.PID)
	}
	return nil
}
