package kubeproxy

import (
	"strconv"
	"strings"
)

// AtLeast reports whether version is at least min, comparing major and
// minor. Both may be a kernel release ("6.18.44-fc", "5.13") or a
// Kubernetes version ("v1.31.2", "v1.31"). An unreadable version passes:
// the mode's own start then tells what is wrong, which beats refusing a
// version string kpbench did not foresee.
func AtLeast(version, min string) bool {
	ma, mi, ok := majorMinor(version)
	if !ok {
		return true
	}
	wa, wi, ok := majorMinor(min)
	if !ok {
		return true
	}
	return ma > wa || (ma == wa && mi >= wi)
}

func majorMinor(v string) (major, minor int, ok bool) {
	parts := strings.SplitN(strings.TrimPrefix(strings.TrimSpace(v), "v"), ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	ma, err1 := strconv.Atoi(parts[0])
	// "13-rc1", "13+": the leading digits are the minor version.
	digits := parts[1]
	if i := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		digits = digits[:i]
	}
	mi, err2 := strconv.Atoi(digits)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return ma, mi, true
}
