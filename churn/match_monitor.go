package churn

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// MonitorReader reads kube-proxy's nftables rules from `nft monitor`'s
// event stream instead of listing them: at 10,000 Services one `nft list
// chain` costs seconds (nft loads every set of the table first), while the
// monitor loads its cache once and then prints each transaction kube-proxy
// commits — the rules it adds (a service chain's DNAT map inline), the
// rules it deletes (a flush), the service-ips elements it adds and deletes
// — followed by "# new generation N". The reader applies a transaction's
// events when its generation line arrives and answers Read from memory,
// so a read costs nothing on the node. It starts from one listing of the
// whole table (`nft list table ip kube-proxy`), taken after the monitor
// started: start it before the window's first write, while kube-proxy is
// idle, so that no transaction falls between the listing and the
// monitor's subscription. Measured with nft 1.0.6: at 10,000 Services the
// monitor's start-up cache load (every set's elements) did not end in
// 90 s, commits restarting it; it serves up to about 1,000 Services
// (docs/churn-syncs.md).
type MonitorReader struct {
	now func() time.Time

	mu     sync.Mutex
	seeded bool
	elems  map[string]string   // service-ips key → chain (present)
	known  map[string]bool     // keys the listing or an event told about
	chains map[string][]string // service chain → its rules' text
	tx     monitorTx
	events int
	last   time.Time
	err    error
	done   chan struct{}
}

// monitorTx is the transaction being printed.
type monitorTx struct {
	flushed map[string]bool
	rules   map[string][]string
	add     map[string]string
	del     map[string]bool
}

// NodeRun runs a command on the client node, streaming its output
// (clusters.ClientNode's Run).
type NodeRun func(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, args ...string) error

// StartMonitor starts `nice -n 19 nft monitor` on the client node through
// run (it stops with ctx), then reads the whole table once.
func StartMonitor(ctx context.Context, run NodeRun, now func() time.Time) (*MonitorReader, error) {
	if now == nil {
		now = time.Now
	}
	m := &MonitorReader{now: now, elems: map[string]string{}, known: map[string]bool{},
		chains: map[string][]string{}, done: make(chan struct{})}
	m.tx.reset()
	pr, pw := io.Pipe()
	go func() {
		var stderr bytes.Buffer
		err := run(ctx, nil, pw, &stderr, append(append([]string(nil), LowPriority...), "nft", "monitor")...)
		if err != nil && ctx.Err() == nil {
			err = fmt.Errorf("nft monitor on the client node: %w: %s", err, strings.TrimSpace(stderr.String()))
		} else {
			err = nil
		}
		pw.CloseWithError(err)
	}()
	go func() {
		defer close(m.done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			m.line(sc.Text())
		}
		m.mu.Lock()
		m.err = sc.Err()
		if m.err == nil {
			m.err = fmt.Errorf("nft monitor on the client node ended")
		}
		m.mu.Unlock()
	}()
	var out, stderr bytes.Buffer
	args := append(append([]string(nil), LowPriority...), "nft", "list", "table", "ip", "kube-proxy")
	if err := run(ctx, nil, &out, &stderr, args...); err != nil {
		return m, fmt.Errorf("listing kube-proxy's nftables table: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	elems, err := ParseNFTServiceIPs(out.Bytes())
	if err != nil {
		return m, fmt.Errorf("listing kube-proxy's nftables table: %w", err)
	}
	chains := parseNFTChains(out.Bytes())
	m.mu.Lock()
	for k, c := range elems {
		if !m.known[k] { // an event that came first is newer
			m.elems[k], m.known[k] = c, true
		}
	}
	for c, rs := range chains {
		if _, ok := m.chains[c]; !ok {
			m.chains[c] = rs
		}
	}
	m.seeded = true
	m.mu.Unlock()
	return m, nil
}

// Wait returns once the monitor has ended, with why.
func (m *MonitorReader) Wait() error {
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// Events is the number of changes applied and when the last transaction
// arrived.
func (m *MonitorReader) Events() (int, time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.events, m.last
}

func (tx *monitorTx) reset() {
	*tx = monitorTx{flushed: map[string]bool{}, rules: map[string][]string{}, add: map[string]string{}, del: map[string]bool{}}
}

// line applies one line of the monitor's output.
func (m *MonitorReader) line(l string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := strings.Fields(l)
	switch {
	case strings.HasPrefix(l, "# new generation"):
		m.commit()
	case len(f) >= 5 && f[2] == "ip" && f[3] == "kube-proxy":
		op, obj := f[0], f[1]
		name, body, _ := strings.Cut(strings.SplitN(l, " ", 5)[4], " ")
		switch {
		case obj == "rule" && op == "add":
			m.tx.rules[name] = append(m.tx.rules[name], body)
		case (obj == "rule" || obj == "chain") && op == "delete":
			m.tx.flushed[name] = true
			delete(m.tx.rules, name)
		case obj == "element" && name == nftServiceIPs:
			for k, chain := range elementKeys(body) {
				if op == "add" {
					m.tx.add[k] = chain
					delete(m.tx.del, k)
				} else {
					m.tx.del[k] = true
					delete(m.tx.add, k)
				}
			}
		}
	case len(f) >= 4 && f[0] == "delete" && f[1] == "table" && f[2] == "ip" && f[3] == "kube-proxy":
		for k := range m.known {
			m.tx.del[k] = true
		}
		for c := range m.chains {
			m.tx.flushed[c] = true
		}
	}
}

// elementKeys reads "{ <ip> . <proto> . <port> [: goto <chain>], ... }".
func elementKeys(body string) map[string]string {
	out := map[string]string{}
	body = strings.TrimSpace(strings.Trim(strings.TrimSpace(body), "{}"))
	for _, el := range strings.Split(body, ",") {
		k, v, _ := strings.Cut(el, " : ")
		parts := strings.Split(strings.TrimSpace(k), " . ")
		if len(parts) != 3 {
			continue
		}
		chain := ""
		if vf := strings.Fields(v); len(vf) == 2 {
			chain = vf[1]
		}
		out[ruleKey(strings.TrimSpace(parts[0]), strings.TrimSpace(parts[2]), strings.TrimSpace(parts[1]))] = chain
	}
	return out
}

// commit applies the transaction just printed.
func (m *MonitorReader) commit() {
	for c := range m.tx.flushed {
		m.chains[c] = nil
	}
	for c, rs := range m.tx.rules {
		m.chains[c] = append(m.chains[c], rs...)
	}
	for k := range m.tx.del {
		delete(m.elems, k)
		m.known[k] = true
	}
	for k, c := range m.tx.add {
		m.elems[k], m.known[k] = c, true
	}
	m.events += len(m.tx.flushed) + len(m.tx.rules) + len(m.tx.add) + len(m.tx.del)
	m.last = m.now()
	m.tx.reset()
}

// Read answers from the listing and the events since.
func (m *MonitorReader) Read(_ context.Context, svc ServiceRef) (ServiceRules, error) {
	key, want := svc.key(), NFTServiceChain(svc)
	m.mu.Lock()
	err, seeded := m.err, m.seeded
	chain, present := m.elems[key]
	chainRules := append([]string(nil), m.chains[want]...)
	m.mu.Unlock()
	switch {
	case err != nil:
		return ServiceRules{}, err
	case !seeded:
		return ServiceRules{}, fmt.Errorf("the nftables monitor has not read the table yet")
	case !present:
		return ServiceRules{}, nil
	case chain != want:
		return ServiceRules{}, fmt.Errorf("%w: %s: service-ips sends it to %s, not to %s, kube-proxy's cluster-policy chain for it", ErrRules, svc, chain, want)
	}
	eps, err := ParseNFTServiceChain([]byte("chain "+want+" {\n"+strings.Join(chainRules, "\n")+"\n}\n"), want)
	if err != nil {
		return ServiceRules{}, err
	}
	return rules(eps), nil
}

// parseNFTChains reads every chain's rules out of an nft listing, in one
// pass.
func parseNFTChains(out []byte) map[string][]string {
	chains := map[string][]string{}
	sc := lineScanner(out)
	cur, depth := "", 0
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if cur == "" {
			if f := strings.Fields(l); len(f) == 3 && f[0] == "chain" && f[2] == "{" {
				cur, depth = f[1], 1
				chains[cur] = nil
			}
			continue
		}
		depth += strings.Count(l, "{") - strings.Count(l, "}")
		if depth <= 0 {
			cur = ""
			continue
		}
		if f := strings.Fields(l); len(f) > 0 && f[0] != "type" && f[0] != "policy" && f[0] != "comment" {
			chains[cur] = append(chains[cur], l)
		}
	}
	return chains
}
