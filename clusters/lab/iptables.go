package lab

// Which iptables backend kube-proxy's iptables mode writes with. kube-proxy
// runs whichever `iptables` it finds on its PATH; the host's default is an
// alternative (/etc/alternatives). A lab can choose: Config.IPTablesBackend
// "legacy" or "nft" puts a directory of its own first on the PATH of
// kube-proxy and of every command run on the client node (the collector's
// rule counts among them), holding iptables, iptables-save and
// iptables-restore (and their ip6 twins) as links to that backend's
// multi-call binary. The host's alternatives are left as they are.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kpbench/kpbench/clusters/kubeproxy"
	"github.com/kpbench/kpbench/clusters/lab/build"
)

// The iptables backends a lab can choose (Config.IPTablesBackend); empty is
// the host's default.
const (
	IPTablesNFT    = "nft"
	IPTablesLegacy = "legacy"
)

// iptablesMulti is each backend's multi-call binary.
var iptablesMulti = map[string]string{IPTablesNFT: "xtables-nft-multi", IPTablesLegacy: "xtables-legacy-multi"}

var iptablesTools = []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"}

func validIPTablesBackend(b string) error {
	if b == "" {
		return nil
	}
	if _, ok := iptablesMulti[b]; !ok {
		return fmt.Errorf("iptables backend %q: use %s or %s (or leave it empty for the host's default)", b, IPTablesNFT, IPTablesLegacy)
	}
	return nil
}

// iptablesDir makes the directory of links to backend's tools inside the
// lab's state directory and returns it ("" for the host's default).
func (l *Lab) iptablesDir(backend string) (string, error) {
	if backend == "" {
		return "", nil
	}
	multi, err := exec.LookPath(iptablesMulti[backend])
	if err != nil {
		return "", fmt.Errorf("%w: iptables backend %s needs %s (Debian package iptables): %v", ErrBadConfig, backend, iptablesMulti[backend], err)
	}
	dir := filepath.Join(l.dir, "iptables-"+backend)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for _, t := range iptablesTools {
		link := filepath.Join(dir, t)
		_ = os.Remove(link)
		if err := os.Symlink(multi, link); err != nil {
			return "", fmt.Errorf("linking %s: %w", link, err)
		}
	}
	return dir, nil
}

// nodeEnv is the environment of kube-proxy and of commands on the client
// node: this process's, with the lab's iptables directory first on PATH.
func nodeEnv(st *State) []string {
	if st.IPTablesDir == "" {
		return nil
	}
	return append(os.Environ(), "PATH="+st.IPTablesDir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// nodeTool is the program a client-node command runs: the lab's own
// iptables tool when one of that name is in its iptables directory (exec
// resolves a bare name on this process's PATH, not on the command's).
func nodeTool(st *State, name string) string {
	if st.IPTablesDir == "" || strings.ContainsRune(name, '/') {
		return name
	}
	if p := filepath.Join(st.IPTablesDir, name); fileExists(p) {
		return p
	}
	return name
}

// iptablesBackend is "nft" or "legacy", as `iptables --version` on the
// client node's PATH says, or "" when iptables is missing.
func iptablesBackend(ctx context.Context, st *State) string {
	out, err := exec.CommandContext(ctx, nodeTool(st, "iptables"), "--version").CombinedOutput()
	if err != nil {
		return ""
	}
	return kubeproxy.IPTablesBackend(out)
}

// stepIPTables puts the chosen backend's tools first on the client node's
// PATH.
func (l *Lab) stepIPTables(ctx context.Context, _ build.Binaries) error {
	dir, err := l.iptablesDir(l.cfg.IPTablesBackend)
	if err != nil {
		return err
	}
	return l.update(func(s *State) { s.IPTablesDir = dir })
}
