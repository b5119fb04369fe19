package kind

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// What kind leaves on the machine after deleting a cluster whose nodes
// podman ran, and how kpbench removes it. kind deletes the node containers
// and their volumes, but not the podman network it made for them
// ("kind"); and netavark, podman's network stack, adds firewall chains
// when the first container joins a network and never removes them: on a
// host whose iptables is iptables-nft, whole nftables tables (ip6 nat and
// ip6 filter for kind's dual-stack network, and ip nat and ip filter on a
// machine where no podman container ran before) stay behind.
//
// So kpbench notes the nftables tables present before it creates a
// cluster (a file in its state directory) and, after deleting it, removes
// the network when no kind cluster is left, and each table that appeared
// since and holds nothing but netavark's chains and the jumps to them,
// when no podman container is left (netavark makes them again for the
// next container). A table that was there before is left as it is, even
// with netavark's chains added to it.

// Runner runs a command on this machine and returns its combined output.
type Runner func(ctx context.Context, name string, args ...string) ([]byte, error)

func execRunner(ctx context.Context, name string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, name, args...).CombinedOutput()
}

// KindNetwork is the podman network kind puts every cluster's nodes on.
const KindNetwork = "kind"

// tablesFile is where the tables present before a create are noted.
func tablesFile(stateDir, name string) string {
	return filepath.Join(stateDir, "kind-"+name+".nftables")
}

// nftTables lists this machine's nftables tables as "FAMILY NAME".
func nftTables(ctx context.Context, run Runner) ([]string, error) {
	out, err := run(ctx, "nft", "list", "tables")
	if err != nil {
		return nil, fmt.Errorf("nft list tables: %w: %s", err, strings.TrimSpace(string(out)))
	}
	var tables []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 3 && f[0] == "table" {
			tables = append(tables, f[1]+" "+f[2])
		}
	}
	return tables, nil
}

// netavarkOnly reports whether a table, as `nft list table` prints it,
// holds only netavark's chains (NETAVARK-* and NETAVARK_*) and base chains
// whose every rule jumps to one of them.
func netavarkOnly(listing string) bool {
	chain, chains := "", 0
	for _, l := range strings.Split(listing, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || l == "}" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "table "):
		case strings.HasPrefix(l, "chain "):
			chain = strings.TrimSuffix(strings.TrimSpace(strings.TrimPrefix(l, "chain ")), " {")
			chains++
		case strings.HasPrefix(l, "type ") && strings.Contains(l, " hook "):
			// the base chain's declaration
		case strings.HasPrefix(chain, "NETAVARK"):
			// netavark's own rules
		case strings.Contains(l, "jump NETAVARK") || strings.Contains(l, "goto NETAVARK"):
		default:
			return false
		}
	}
	return chains > 0
}

// runtimeRunner is the runner for podman and nft, or nil where kpbench
// does not clean up after kind: Docker's nodes, or a fake API (tests)
// without a Runtime.
func (p *Provider) runtimeRunner() Runner {
	if p.opts.Runtime != nil {
		return p.opts.Runtime
	}
	if p.opts.API != nil || containerRuntime() != "podman" {
		return nil
	}
	return execRunner
}

// noteTables notes the tables present before a create, unless a note is
// there already (a create retried after a failure keeps the first). No
// nft, no note: nothing is removed afterwards.
func (p *Provider) noteTables(ctx context.Context) {
	run := p.runtimeRunner()
	if run == nil {
		return
	}
	f := tablesFile(p.opts.StateDir, p.opts.Name)
	if _, err := os.Stat(f); err == nil {
		return
	}
	tables, err := nftTables(ctx, run)
	if err != nil {
		p.opts.Logger.Debug("not noting the firewall's tables", "err", err)
		return
	}
	if err := os.WriteFile(f, []byte(strings.Join(tables, "\n")+"\n"), 0o644); err != nil {
		p.opts.Logger.Warn("noting the firewall's tables", "err", err)
	}
}

// removeLeftovers removes, after the cluster's delete, the podman network
// when no kind cluster is left, and the tables that appeared since the
// create and hold only netavark's rules when no podman container is left.
func (p *Provider) removeLeftovers(ctx context.Context) error {
	run := p.runtimeRunner()
	if run == nil {
		return nil
	}
	names, err := p.api.List()
	if err != nil {
		return fmt.Errorf("listing kind clusters: %w", err)
	}
	if len(names) > 0 {
		p.opts.Logger.Info("keeping podman network "+KindNetwork+": kind clusters remain", "clusters", names)
		return nil
	}
	var errs []error
	if _, err := run(ctx, "podman", "network", "exists", KindNetwork); err == nil {
		if out, err := run(ctx, "podman", "network", "rm", KindNetwork); err != nil {
			errs = append(errs, fmt.Errorf("podman network rm %s: %w: %s", KindNetwork, err, strings.TrimSpace(string(out))))
		} else {
			p.opts.Logger.Info("removed podman network " + KindNetwork)
		}
	}
	note := tablesFile(p.opts.StateDir, p.opts.Name)
	data, err := os.ReadFile(note)
	if err != nil {
		return errors.Join(errs...) // no note: nothing known to be kpbench's
	}
	out, err := run(ctx, "podman", "ps", "--all", "--quiet")
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("podman ps: %w: %s", err, strings.TrimSpace(string(out))))...)
	}
	if strings.TrimSpace(string(out)) != "" {
		p.opts.Logger.Info("keeping netavark's firewall tables: podman containers remain")
		return errors.Join(errs...)
	}
	before := strings.Split(strings.TrimSpace(string(data)), "\n")
	now, err := nftTables(ctx, run)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, t := range now {
		if slices.Contains(before, t) {
			continue
		}
		fam, name, _ := strings.Cut(t, " ")
		listing, err := run(ctx, "nft", "list", "table", fam, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("nft list table %s: %w: %s", t, err, strings.TrimSpace(string(listing))))
			continue
		}
		if !netavarkOnly(string(listing)) {
			p.opts.Logger.Info("keeping a firewall table that holds more than netavark's rules", "table", t)
			continue
		}
		if out, err := run(ctx, "nft", "delete", "table", fam, name); err != nil {
			errs = append(errs, fmt.Errorf("nft delete table %s: %w: %s", t, err, strings.TrimSpace(string(out))))
			continue
		}
		p.opts.Logger.Info("removed netavark's firewall table", "table", t)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return os.Remove(note)
}
