package existing

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// state is what Down needs after a crash: kube-proxy's mode before kpbench
// touched it. It is written before the first change and removed by Down.
type state struct {
	SchemaVersion int    `json:"schemaVersion"`
	Kubeconfig    string `json:"kubeconfig,omitempty"`
	Context       string `json:"context,omitempty"`
	// OriginalMode and OriginalScheduler are config.conf's mode and
	// ipvs.scheduler as kpbench found them ("" = unset).
	OriginalMode      string `json:"originalMode"`
	OriginalScheduler string `json:"originalScheduler"`
	// Switched is true once kpbench changed the ConfigMap.
	Switched bool `json:"switched"`
	// Deployed is true once kpbench created its namespace.
	Deployed bool `json:"deployed"`
}

// statePath names the state file of one cluster (kubeconfig + context).
func statePath(dir, kubeconfig, context string) string {
	h := sha256.Sum256([]byte(kubeconfig + "\x00" + context))
	return filepath.Join(dir, "existing-"+hex.EncodeToString(h[:8])+".json")
}

func loadState(path string) (*state, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading state %s: %w", path, err)
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("reading state %s: %w", path, err)
	}
	if s.SchemaVersion != 1 {
		return nil, fmt.Errorf("reading state %s: unknown schemaVersion %d", path, s.SchemaVersion)
	}
	return &s, nil
}

func saveState(path string, s *state) error {
	s.SchemaVersion = 1
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("writing state: %w", err)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("writing state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing state: %w", err)
	}
	return nil
}

// ForgetState removes the state of the cluster of kubeconfig and context,
// for a cluster that was deleted as a whole (kind).
func ForgetState(dir, kubeconfig, context string) error {
	err := os.Remove(statePath(dir, kubeconfig, context))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing state: %w", err)
	}
	return nil
}
