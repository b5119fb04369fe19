package kind

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kpbench/kpbench/scenarios"
)

// netavark's tables as `nft list table` prints them on a host whose
// iptables is iptables-nft, after kind's nodes are gone (as seen on the
// test machine).
const (
	netavarkIP6Nat = `# Warning: table ip6 nat is managed by iptables-nft, do not touch!
table ip6 nat {
	chain POSTROUTING {
		type nat hook postrouting priority srcnat; policy accept;
		counter packets 0 bytes 0 jump NETAVARK-HOSTPORT-MASQ
	}

	chain NETAVARK-HOSTPORT-SETMARK {
		counter packets 0 bytes 0 meta mark set mark or 0x2000
	}

	chain NETAVARK-HOSTPORT-MASQ {
		 meta mark & 0x00002000 == 0x00002000 counter packets 0 bytes 0 masquerade
	}

	chain NETAVARK-HOSTPORT-DNAT {
	}

	chain PREROUTING {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local counter packets 6 bytes 549 jump NETAVARK-HOSTPORT-DNAT
	}

	chain OUTPUT {
		type nat hook output priority -100; policy accept;
		fib daddr type local counter packets 0 bytes 0 jump NETAVARK-HOSTPORT-DNAT
	}
}
`
	netavarkIP6Filter = `table ip6 filter {
	chain NETAVARK_FORWARD {
	}

	chain FORWARD {
		type filter hook forward priority filter; policy accept;
		 counter packets 2 bytes 132 jump NETAVARK_FORWARD
	}
}
`
	foreignTable = `table inet other {
	chain input {
		type filter hook input priority filter; policy accept;
		tcp dport 22 accept
	}
}
`
)

func TestNetavarkOnly(t *testing.T) {
	tests := []struct {
		name, listing string
		want          bool
	}{
		{"netavark's nat", netavarkIP6Nat, true},
		{"netavark's filter", netavarkIP6Filter, true},
		{"another table", foreignTable, false},
		{"netavark's with a rule of someone else's", strings.Replace(netavarkIP6Filter, "jump NETAVARK_FORWARD", "jump NETAVARK_FORWARD\n\t\tip6 saddr ::1 drop", 1), false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		if got := netavarkOnly(tt.listing); got != tt.want {
			t.Errorf("%s: netavarkOnly = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// fakeHost answers podman and nft as a machine would and records what
// was run.
type fakeHost struct {
	mu         sync.Mutex
	tables     map[string]string // "ip6 nat" -> listing
	network    bool
	containers string
	ran        []string
}

func (h *fakeHost) run(_ context.Context, name string, args ...string) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cmd := strings.Join(append([]string{name}, args...), " ")
	h.ran = append(h.ran, cmd)
	switch {
	case cmd == "nft list tables":
		var out []string
		for t := range h.tables {
			out = append(out, "table "+t)
		}
		slices.Sort(out)
		return []byte(strings.Join(out, "\n") + "\n"), nil
	case strings.HasPrefix(cmd, "nft list table "):
		l, ok := h.tables[strings.TrimPrefix(cmd, "nft list table ")]
		if !ok {
			return []byte("Error: No such file or directory"), errors.New("exit status 1")
		}
		return []byte(l), nil
	case strings.HasPrefix(cmd, "nft delete table "):
		delete(h.tables, strings.TrimPrefix(cmd, "nft delete table "))
		return nil, nil
	case cmd == "podman network exists kind":
		if !h.network {
			return nil, errors.New("exit status 1")
		}
		return nil, nil
	case cmd == "podman network rm kind":
		h.network = false
		return []byte("kind\n"), nil
	case cmd == "podman ps --all --quiet":
		return []byte(h.containers), nil
	}
	return []byte("unexpected command"), errors.New("exit status 127")
}

// A create notes the tables there before it; the delete removes the
// network and the tables that netavark added since, and nothing else.
func TestDownRemovesWhatKindAndNetavarkLeave(t *testing.T) {
	tests := []struct {
		name       string
		others     []string // kind clusters left after the delete
		containers string   // podman containers left
		wantRm     bool
		wantTables []string
	}{
		{"last cluster, no containers", nil, "", true, []string{"inet other", "ip filter", "ip nat"}},
		{"another kind cluster", []string{"other"}, "", false, []string{"inet other", "ip filter", "ip nat", "ip6 filter", "ip6 nat"}},
		{"another podman container", nil, "0123abcd\n", true, []string{"inet other", "ip filter", "ip nat", "ip6 filter", "ip6 nat"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &fakeHost{tables: map[string]string{"ip nat": "table ip nat {\n}\n", "ip filter": "table ip filter {\n}\n"}}
			f := &fakeKind{clusters: tt.others}
			p := newTestProvider(t, f, Options{Runtime: h.run})
			if err := p.Create(context.Background(), scenarios.ModeIPTables); err != nil {
				t.Fatal(err)
			}
			// What kind's create made: its network, netavark's ip6
			// tables, and meanwhile someone else's table.
			h.network, h.containers = true, tt.containers
			h.tables["ip6 nat"], h.tables["ip6 filter"], h.tables["inet other"] = netavarkIP6Nat, netavarkIP6Filter, foreignTable
			if err := p.Down(context.Background()); err != nil {
				t.Fatal(err)
			}
			if h.network == tt.wantRm {
				t.Errorf("network kind still there = %v, want removed = %v (ran %q)", h.network, tt.wantRm, h.ran)
			}
			var got []string
			for tb := range h.tables {
				got = append(got, tb)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.wantTables) {
				t.Errorf("tables left = %q, want %q (ran %q)", got, tt.wantTables, h.ran)
			}
			_, err := os.Stat(tablesFile(p.opts.StateDir, p.opts.Name))
			if done := len(tt.others) == 0 && tt.containers == ""; done != errors.Is(err, os.ErrNotExist) {
				t.Errorf("the note of the tables: %v (all done: %v)", err, done)
			}
		})
	}
}

// A fake kind API without a Runtime (the other tests) runs nothing on
// this machine.
func TestNoRuntimeNoCleanup(t *testing.T) {
	p := newTestProvider(t, &fakeKind{}, Options{})
	if p.runtimeRunner() != nil {
		t.Error("a fake API got a runner for this machine")
	}
}
