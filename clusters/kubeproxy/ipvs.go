package kubeproxy

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
)

// IPVSAvailable tells whether the kernel of the node whose /proc is
// procRoot and whose root filesystem is rootFS can run IPVS (see
// IPVSAvailableFS).
func IPVSAvailable(procRoot, rootFS string) (ok bool, reason string) {
	return IPVSAvailableFS(os.DirFS(procRoot), os.DirFS(rootFS))
}

// IPVSAvailableFS tells whether a kernel can run IPVS, from its /proc
// (proc) and root filesystem (root): the ip_vs module is loaded or built
// in, or its module file exists for the running kernel (kube-proxy loads
// it). This is the one IPVS availability check of the lab, kind and the
// in-cluster agent.
func IPVSAvailableFS(proc, root fs.FS) (ok bool, reason string) {
	if _, err := fs.Stat(proc, "net/ip_vs"); err == nil {
		return true, ""
	}
	if f, err := proc.Open("modules"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "ip_vs ") {
				f.Close()
				return true, ""
			}
		}
		f.Close()
	}
	rel, err := fs.ReadFile(proc, "sys/kernel/osrelease")
	if err != nil {
		return false, "cannot tell whether the kernel has IP_VS: " + err.Error()
	}
	release := strings.TrimSpace(string(rel))
	dir := path.Join("lib/modules", release)
	found := false
	_ = fs.WalkDir(root, path.Join(dir, "kernel/net/netfilter/ipvs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), "ip_vs.ko") {
			found = true
			return fs.SkipAll
		}
		return nil
	})
	if found {
		return true, ""
	}
	if b, err := fs.ReadFile(root, path.Join(dir, "modules.builtin")); err == nil && strings.Contains(string(b), "/ip_vs.ko") {
		return true, ""
	}
	return false, fmt.Sprintf("kernel %s has no IP_VS (/proc/net/ip_vs absent, ip_vs module neither loaded nor installed; "+
		"try `modprobe ip_vs`, or use a kernel built with CONFIG_IP_VS)", release)
}

// IPVSVirtualServers counts the virtual servers in the text of
// /proc/net/ip_vs: the lines of a TCP, UDP or SCTP address, or of a
// firewall mark (FWM). It is kpbench's one reader of that table (ipvsadm
// -Ln, which the collector counts, also lists virtual servers without
// real servers).
func IPVSVirtualServers(procNetIPVS string) int {
	n := 0
	for _, line := range strings.Split(procNetIPVS, "\n") {
		for _, p := range []string{"TCP ", "UDP ", "SCTP ", "FWM "} {
			if strings.HasPrefix(line, p) {
				n++
			}
		}
	}
	return n
}
