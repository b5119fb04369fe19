package existing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// This file is what the CPU agent pod does when kpbench execs into it
// (`kpbench cluster agent ...`): small probes that a scratch image has no
// tools for.

// ErrNotLoopback is returned by AgentGet for a URL that is not on
// loopback: the agent only talks to the node's own kube-proxy.
var ErrNotLoopback = errors.New("agent fetches loopback URLs only")

// AgentGet fetches a loopback URL (kube-proxy's metrics port) and copies
// the body to w. A non-2xx status is an error carrying the body's start.
func AgentGet(ctx context.Context, rawURL string, w io.Writer) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("invalid URL %q: %w", rawURL, err)
	}
	if u.Scheme != "http" {
		return fmt.Errorf("%w: %s is not http", ErrNotLoopback, rawURL)
	}
	host := u.Hostname()
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%w: %s", ErrNotLoopback, rawURL)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", rawURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", rawURL, resp.Status, strings.TrimSpace(string(b)))
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("GET %s: reading body: %w", rawURL, err)
	}
	return nil
}

// ErrProcessNotFound is returned by FindPID when no process has the name.
var ErrProcessNotFound = errors.New("process not found")

// FindPID returns the lowest PID under procRoot whose comm is name (comm
// holds the first 15 bytes of the executable's name).
func FindPID(procRoot, name string) (int, error) {
	if len(name) > 15 {
		name = name[:15]
	}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", procRoot, err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "comm"))
		if err != nil {
			continue // the process exited meanwhile
		}
		if strings.TrimSpace(string(comm)) == name {
			pids = append(pids, pid)
		}
	}
	if len(pids) == 0 {
		return 0, fmt.Errorf("%w: %s in %s", ErrProcessNotFound, name, procRoot)
	}
	sort.Ints(pids)
	return pids[0], nil
}

// hostPATH is searched for commands run from the node's root filesystem.
const hostPATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// HostCommand returns a command that runs args from the node's root
// filesystem mounted at root (chroot), with the node's usual PATH. The
// agent container is privileged and shares the node's namespaces, so
// iptables-save, nft and ipvsadm see the node's rules.
func HostCommand(ctx context.Context, root string, args []string) (*exec.Cmd, error) {
	if len(args) == 0 {
		return nil, errors.New("host: no command")
	}
	path := args[0]
	if !strings.Contains(path, "/") {
		found := ""
		for _, dir := range filepath.SplitList(hostPATH) {
			p := filepath.Join(dir, path)
			if st, err := statIn(root, p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
				found = p
				break
			}
		}
		if found == "" {
			return nil, fmt.Errorf("host: %s not found in the node's PATH under %s", path, root)
		}
		path = found
	}
	cmd := exec.CommandContext(ctx, path, args[1:]...)
	cmd.Path = path
	cmd.Env = []string{"PATH=" + hostPATH, "LC_ALL=C"}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	return cmd, nil
}

// statIn stats p as a process chrooted to root sees it: every symlink on
// the way is followed inside root, absolute targets from root. Debian's
// /usr/sbin/iptables-save is a link to /etc/alternatives/iptables-save,
// itself a link to the backend's binary: os.Stat under root would follow
// those into the agent's own filesystem and miss a tool the node has.
func statIn(root, p string) (os.FileInfo, error) {
	rest := strings.Split(strings.Trim(filepath.Clean("/"+p), "/"), "/")
	cur := "/"
	for hops := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		next := filepath.Join(cur, c)
		st, err := os.Lstat(filepath.Join(root, next))
		if err != nil {
			return nil, err
		}
		if st.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		if hops++; hops > 40 {
			return nil, fmt.Errorf("%s: too many levels of symbolic links under %s", p, root)
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return nil, err
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		rest = append(strings.Split(strings.Trim(filepath.Clean(target), "/"), "/"), rest...)
	}
	return os.Stat(filepath.Join(root, cur))
}
