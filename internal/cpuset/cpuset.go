// Package cpuset reads and writes Linux CPU lists, the syntax of taskset,
// cpuset.cpus and /proc/PID/status's Cpus_allowed_list ("0-2,5"). The lab
// pins its client node with them and the collector names the CPUs whose
// time is the node's.
package cpuset

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// ErrBad is wrapped by Parse for malformed input.
var ErrBad = errors.New("bad CPU list")

// Parse parses a CPU list: comma-separated CPU numbers and inclusive
// ranges ("0-1,3"). The result is sorted and free of duplicates. An empty
// string is an error (callers decide what "all" is).
func Parse(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrBad)
	}
	seen := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("%w: %q: %q is not a CPU number", ErrBad, s, lo)
		}
		b := a
		if isRange {
			b, err = strconv.Atoi(hi)
			if err != nil || b < 0 {
				return nil, fmt.Errorf("%w: %q: %q is not a CPU number", ErrBad, s, hi)
			}
			if b < a {
				return nil, fmt.Errorf("%w: %q: range %s is backwards", ErrBad, s, part)
			}
			if b-a > 1<<16 {
				return nil, fmt.Errorf("%w: %q: range %s is too large", ErrBad, s, part)
			}
		}
		for c := a; c <= b; c++ {
			seen[c] = true
		}
	}
	out := make([]int, 0, len(seen))
	for c := range seen {
		out = append(out, c)
	}
	sort.Ints(out)
	return out, nil
}

// Format writes cpus as a CPU list ("0-2,5"), sorted; "" for none.
func Format(cpus []int) string {
	if len(cpus) == 0 {
		return ""
	}
	s := append([]int(nil), cpus...)
	sort.Ints(s)
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j+1 < len(s) && s[j+1] == s[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if j > i {
			fmt.Fprintf(&b, "%d-%d", s[i], s[j])
		} else {
			fmt.Fprintf(&b, "%d", s[i])
		}
		i = j + 1
	}
	return b.String()
}
