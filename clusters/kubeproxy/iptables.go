package kubeproxy

import "strings"

// IPTablesBackend reads `iptables --version` output: "nft" for
// "iptables v1.8.9 (nf_tables)", "legacy" for "(legacy)" or a version
// before 1.8 (which names no backend and has only legacy), "" for anything
// else (no iptables: the command's error text).
func IPTablesBackend(versionOutput []byte) string {
	s := strings.TrimSpace(string(versionOutput))
	switch {
	case strings.Contains(s, "(nf_tables)"):
		return "nft"
	case strings.Contains(s, "(legacy)"):
		return "legacy"
	case strings.HasPrefix(s, "iptables v"):
		return "legacy"
	}
	return ""
}
