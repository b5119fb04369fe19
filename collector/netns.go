package collector

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"

	"github.com/kpbench/kpbench/runs"
)

// ErrConntrackUnavailable is wrapped when the conntrack proc files are
// missing: the nf_conntrack module is not loaded.
var ErrConntrackUnavailable = errors.New("conntrack not available (nf_conntrack not loaded)")

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// netDir is the directory whose net/ shows pid's network namespace:
// /proc/PID (pid > 0) or the proc root itself (the reader's namespace).
func (fs FS) netDir(pid int) string {
	if pid > 0 {
		return fs.path(strconv.Itoa(pid))
	}
	return fs.root
}

func (fs FS) netPath(pid int, elem ...string) string {
	return filepath.Join(append([]string{fs.netDir(pid), "net"}, elem...)...)
}

// netFS is a procfs.FS rooted at /proc/PID: procfs reads net/... below
// its root, which then is that process's network namespace's view.
func (fs FS) netFS(pid int) (procfs.FS, error) {
	if pid <= 0 {
		return fs.proc, nil
	}
	nfs, err := procfs.NewFS(fs.netDir(pid))
	if err != nil {
		if isNotExist(err) {
			return procfs.FS{}, fmt.Errorf("process %d under %s: %w", pid, fs.root, ErrNoSuchProcess)
		}
		return procfs.FS{}, err
	}
	return nfs, nil
}

// ConntrackStats are a network namespace's connection tracking numbers,
// from /proc/PID/net/stat/nf_conntrack (per-CPU counters of that
// namespace, summed here) and the conntrack sysctls.
//
// /proc/net and /proc/sys/net show the namespace of the process reading
// them, so counters of the client node's namespace are read through a
// process inside it: /proc/<kube-proxy's PID>/net/stat/nf_conntrack.
type ConntrackStats struct {
	// Entries is the number of connections tracked in the namespace now
	// (the file's "entries" column: the namespace's nf_conntrack_count,
	// repeated on every CPU's line).
	Entries int64 `json:"entries"`
	// Max is nf_conntrack_max. It is global (one table size for the
	// machine; namespaces other than the initial one cannot change it) and
	// is read from the proc root's sys/net/netfilter; -1 when unreadable.
	Max int64 `json:"max"`
	// Counters summed over CPUs (cumulative since the namespace was made):
	//  Found: lookups that found an existing entry.
	//  Invalid: packets conntrack could not track (malformed, bad state).
	//  Insert: entries inserted (new connections confirmed); recent
	//   kernels no longer count it and print 0 in its column:
	//   use Entries deltas instead.
	//  InsertFailed: entries that could not be inserted (a clash with an
	//   entry inserted concurrently, e.g. parallel UDP/DNS).
	//  Drop: packets dropped because a new entry could not be made
	//   (table full and nothing evictable).
	//  EarlyDrop: entries evicted to make room when the table was full.
	//  SearchRestart: lookups restarted because a hash resize raced them.
	//  ClashResolve: insert clashes resolved without dropping (newer kernels).
	//  ChainTooLong: inserts refused because a hash chain was too long
	//   (newer kernels; the "chainlength" column).
	Found         uint64 `json:"found"`
	Invalid       uint64 `json:"invalid"`
	Insert        uint64 `json:"insert"`
	InsertFailed  uint64 `json:"insertFailed"`
	Drop          uint64 `json:"drop"`
	EarlyDrop     uint64 `json:"earlyDrop"`
	SearchRestart uint64 `json:"searchRestart"`
	ClashResolve  uint64 `json:"clashResolve"`
	ChainTooLong  uint64 `json:"chainTooLong"`
}

// Conntrack reads the conntrack numbers of pid's network namespace (pid
// 0: the reader's). It wraps ErrConntrackUnavailable when nf_conntrack is
// not loaded.
func (fs FS) Conntrack(pid int) (ConntrackStats, error) {
	path := fs.netPath(pid, "stat", "nf_conntrack")
	b, err := os.ReadFile(path)
	if err != nil {
		if isNotExist(err) {
			if _, perr := os.Stat(fs.netDir(pid)); perr != nil && pid > 0 {
				return ConntrackStats{}, fmt.Errorf("process %d under %s: %w", pid, fs.root, ErrNoSuchProcess)
			}
			return ConntrackStats{}, fmt.Errorf("%s: %w", path, ErrConntrackUnavailable)
		}
		return ConntrackStats{}, fmt.Errorf("reading %s: %w", path, err)
	}
	st, err := ParseConntrackStat(b)
	if err != nil {
		return ConntrackStats{}, fmt.Errorf("%s: %w", path, err)
	}
	st.Max = -1
	if mb, err := os.ReadFile(fs.path("sys", "net", "netfilter", "nf_conntrack_max")); err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(string(mb)), 10, 64); err == nil {
			st.Max = v
		}
	}
	return st, nil
}

// ParseConntrackStat parses /proc/net/stat/nf_conntrack: a header naming
// the columns, then one line of hex counters per CPU. Columns are matched
// by name, since kernels have renamed and reordered them (e.g.
// searched → clashres, delete_list → chainlength in 5.x).
func ParseConntrackStat(b []byte) (ConntrackStats, error) {
	var st ConntrackStats
	sc := bufio.NewScanner(bytes.NewReader(b))
	if !sc.Scan() {
		return st, fmt.Errorf("%w: empty conntrack stat file", ErrParse)
	}
	header := strings.Fields(sc.Text())
	if len(header) == 0 || header[0] != "entries" {
		return st, fmt.Errorf("%w: conntrack stat header %q", ErrParse, sc.Text())
	}
	dst := map[string]*uint64{
		"found": &st.Found, "invalid": &st.Invalid, "insert": &st.Insert, "insert_failed": &st.InsertFailed,
		"drop": &st.Drop, "early_drop": &st.EarlyDrop, "search_restart": &st.SearchRestart,
		"clashres": &st.ClashResolve, "chainlength": &st.ChainTooLong,
	}
	lines := 0
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) != len(header) {
			return st, fmt.Errorf("%w: conntrack stat line has %d columns, header %d", ErrParse, len(fields), len(header))
		}
		lines++
		for i, f := range fields {
			v, err := strconv.ParseUint(f, 16, 64)
			if err != nil {
				return st, fmt.Errorf("%w: conntrack stat column %s: %q", ErrParse, header[i], f)
			}
			if i == 0 {
				st.Entries = int64(v) // the namespace's count, the same on every line
				continue
			}
			if p, ok := dst[header[i]]; ok {
				*p += v
			}
		}
	}
	if lines == 0 {
		return st, fmt.Errorf("%w: conntrack stat file has no CPU lines", ErrParse)
	}
	return st, nil
}

// ConntrackWindow maps two readings onto the results schema: entries
// before and after, and the drop and insert-failed deltas.
func ConntrackWindow(before, after ConntrackStats) runs.Conntrack {
	c := runs.Conntrack{EntriesBefore: before.Entries, EntriesAfter: after.Entries}
	if after.Max > 0 {
		c.Max = after.Max
	}
	if after.Drop >= before.Drop {
		c.Drops = int64(after.Drop - before.Drop)
	}
	if after.InsertFailed >= before.InsertFailed {
		c.InsertFailed = int64(after.InsertFailed - before.InsertFailed)
	}
	return c
}

// SoftnetStats sums /proc/net/softnet_stat over CPUs. The file is per CPU
// and global: every namespace shows the same numbers (the per-CPU packet
// backlog is shared), so it describes the machine, not the node.
type SoftnetStats struct {
	// Processed: packets taken off the per-CPU backlog by the network
	// softirq. Dropped: packets dropped because the backlog was full
	// (netdev_max_backlog). TimeSqueezed: softirq runs that ended with work
	// left because the budget or time ran out.
	Processed    uint64 `json:"processed"`
	Dropped      uint64 `json:"dropped"`
	TimeSqueezed uint64 `json:"timeSqueezed"`
	CPUs         int    `json:"cpus"`
}

// Softnet reads softnet_stat through pid's /proc/PID/net (pid 0: the
// reader's).
func (fs FS) Softnet(pid int) (SoftnetStats, error) {
	nfs, err := fs.netFS(pid)
	if err != nil {
		return SoftnetStats{}, err
	}
	rows, err := nfs.NetSoftnetStat()
	if err != nil {
		return SoftnetStats{}, fmt.Errorf("reading %s: %w", fs.netPath(pid, "softnet_stat"), err)
	}
	var s SoftnetStats
	for _, r := range rows {
		s.Processed += uint64(r.Processed)
		s.Dropped += uint64(r.Dropped)
		s.TimeSqueezed += uint64(r.TimeSqueezed)
		s.CPUs++
	}
	return s, nil
}

// Sub returns s - o (counters only).
func (s SoftnetStats) Sub(o SoftnetStats) SoftnetStats {
	return SoftnetStats{Processed: s.Processed - o.Processed, Dropped: s.Dropped - o.Dropped, TimeSqueezed: s.TimeSqueezed - o.TimeSqueezed, CPUs: s.CPUs}
}
