package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/kpbench/kpbench/internal/flock"
	"github.com/kpbench/kpbench/scenarios"
)

// stateSchema is the version of state.json this build writes and reads.
const stateSchema = 1

// Phases of a lab's life, as recorded in state.json.
const (
	PhaseCreating = "creating"
	PhaseUp       = "up"
	PhaseFailed   = "failed"
)

// State is what a lab records on disk (StateDir/<name>/state.json) after
// every step, so that Down can undo everything after a crash.
type State struct {
	SchemaVersion int       `json:"schemaVersion"`
	Name          string    `json:"name"`
	Phase         string    `json:"phase"`
	Created       time.Time `json:"created"`
	// Owner is the process that made the lab when it asked to be its owner
	// (tests do); a lab whose owner is gone may be swept.
	Owner *Proc `json:"owner,omitempty"`

	Mode            scenarios.Mode `json:"mode,omitempty"`
	K8sVersion      string         `json:"k8sVersion"`
	KubeProxyVer    string         `json:"kubeProxyVersion,omitempty"`
	EtcdVersion     string         `json:"etcdVersion,omitempty"`
	IPTablesBackend string         `json:"iptablesBackend,omitempty"`
	// IPTablesDir, when set, holds the iptables tools of the backend the
	// lab was asked for, first on the client node's PATH (iptables.go).
	IPTablesDir string `json:"iptablesDir,omitempty"`
	BinDir      string `json:"binDir"`
	KpbenchBin  string `json:"kpbenchBin"`

	// Namespaces are recorded before they are created.
	Namespaces []string `json:"namespaces"`
	// Procs are recorded right after they start, in start order.
	Procs []Proc `json:"procs"`

	NodeCPUs  []int    `json:"nodeCPUs,omitempty"`
	OtherCPUs []int    `json:"otherCPUs,omitempty"`
	Backends  []string `json:"backends"`

	Kubeconfig   string `json:"kubeconfig"`
	APIServerURL string `json:"apiServerURL,omitempty"`

	// Node is the client node's kind (empty: netns); VM describes a VM
	// client node.
	Node string   `json:"node,omitempty"`
	VM   *VMState `json:"vm,omitempty"`
}

// proc returns the recorded process named name.
func (s *State) proc(name string) (Proc, bool) {
	for _, p := range s.Procs {
		if p.Name == name {
			return p, true
		}
	}
	return Proc{}, false
}

// setProc records p, replacing an earlier process of the same name.
func (s *State) setProc(p Proc) {
	for i := range s.Procs {
		if s.Procs[i].Name == p.Name {
			s.Procs[i] = p
			return
		}
	}
	s.Procs = append(s.Procs, p)
}

// ErrNotFound is wrapped when no lab of the given name exists.
var ErrNotFound = errors.New("lab not found")

// ErrExists is wrapped by Up when a lab of the same name exists.
var ErrExists = errors.New("lab already exists")

func readState(dir string) (*State, error) {
	data, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no state in %s: %w", dir, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading lab state: %w", err)
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", filepath.Join(dir, "state.json"), err)
	}
	if s.SchemaVersion != stateSchema {
		return nil, fmt.Errorf("lab state %s has schema version %d, this kpbench reads %d", dir, s.SchemaVersion, stateSchema)
	}
	return &s, nil
}

// writeState replaces state.json atomically.
func writeState(dir string, s *State) error {
	s.SchemaVersion = stateSchema
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding lab state: %w", err)
	}
	tmp := filepath.Join(dir, ".state.json.tmp")
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing lab state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "state.json")); err != nil {
		return fmt.Errorf("writing lab state: %w", err)
	}
	return nil
}

// lock takes the lab's exclusive lock (a file beside its state directory,
// so Down can remove the directory), waiting until ctx is done.
func lock(ctx context.Context, stateDir, name string) (func(), error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
	}
	unlock, err := flock.Lock(ctx, filepath.Join(stateDir, name+".lock"), 0o600, 100*time.Millisecond, nil)
	if errors.Is(err, flock.ErrWait) {
		return nil, fmt.Errorf("waiting for lab %s's lock (another kpbench works on it): %w", name, ctx.Err())
	}
	if err != nil {
		return nil, fmt.Errorf("lab %s: %w", name, err)
	}
	return unlock, nil
}

// List returns the names of the labs with state under stateDir (default
// DefaultStateDir when empty).
func List(stateDir string) ([]string, error) {
	if stateDir == "" {
		d, err := DefaultStateDir()
		if err != nil {
			return nil, err
		}
		stateDir = d
	}
	entries, err := os.ReadDir(stateDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing labs: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && nameRE.MatchString(e.Name()) && fileExists(filepath.Join(stateDir, e.Name(), "state.json")) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// SweepOrphans removes the labs under cfg.StateDir that were made with
// UpOwned by a process that has exited (a test binary killed by its
// timeout, say). It returns the names it removed.
func SweepOrphans(ctx context.Context, cfg Config) ([]string, error) {
	base, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	names, err := List(base.StateDir)
	if err != nil {
		return nil, err
	}
	var swept []string
	var errs []error
	for _, n := range names {
		st, err := readState(filepath.Join(base.StateDir, n))
		if err != nil || st.Owner == nil || st.Owner.Alive() {
			continue
		}
		c := base
		c.Name = n
		l, err := New(c)
		if err != nil {
			continue
		}
		if err := l.Down(ctx); err != nil {
			errs = append(errs, err)
			continue
		}
		swept = append(swept, n)
	}
	return swept, errors.Join(errs...)
}
