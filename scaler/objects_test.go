package scaler

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"
)

func TestNamesSortInCreationOrder(t *testing.T) {
	var names []string
	for _, i := range []int{0, 1, 9, 10, 99, 100, 999, 1000, 9999, 10000, MaxServices} {
		names = append(names, ServiceName(i))
	}
	if !sort.StringsAreSorted(names) {
		t.Errorf("names do not sort in index order: %v", names)
	}
	if got := ServiceName(42); got != "kpb-svc-00042" {
		t.Errorf("ServiceName(42) = %q", got)
	}
}

func TestParseIndex(t *testing.T) {
	tests := []struct {
		name   string
		want   int
		wantOK bool
	}{
		{"kpb-svc-00000", 0, true},
		{"kpb-svc-00042", 42, true},
		{"kpb-svc-99999", 99999, true},
		{"kpb-svc-42", 0, false},
		{"kpb-svc-000042", 0, false},
		{"kpb-svc--0001", 0, false},
		{"kpb-svc-0004x", 0, false},
		{"other-00042", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseIndex(tt.name)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("ParseIndex(%q) = %d, %v; want %d, %v", tt.name, got, ok, tt.want, tt.wantOK)
			}
		})
	}
	for i := range 2000 {
		if got, ok := ParseIndex(ServiceName(i)); !ok || got != i {
			t.Fatalf("round trip of %d: %d, %v", i, got, ok)
		}
	}
}

// Every backend gets the same share of endpoints over a full rotation.
func TestEndpointsSpreadOverBackends(t *testing.T) {
	ips := make([]netip.Addr, 10)
	for i := range ips {
		ips[i] = netip.AddrFrom4([4]byte{198, 18, 0, byte(10 + i)})
	}
	tmpl := Template{Namespace: ns, Port: 80, TargetPort: 8080, EndpointIPs: ips, EndpointsPerService: 3}
	count := map[string]int{}
	for i := range 100 {
		sl := tmpl.EndpointSlice(i, "")
		seen := map[string]bool{}
		for _, e := range sl.Endpoints {
			a := e.Addresses[0]
			if seen[a] {
				t.Fatalf("slice %d lists %s twice", i, a)
			}
			seen[a] = true
			count[a]++
		}
		if *sl.Ports[0].Port != 8080 {
			t.Fatalf("slice port %d, want the target port 8080", *sl.Ports[0].Port)
		}
	}
	for a, c := range count {
		if c != 30 {
			t.Errorf("%s has %d endpoints, want 30", a, c)
		}
	}
	if svc := tmpl.Service(0); svc.Spec.Ports[0].Port != 80 || svc.Spec.Ports[0].TargetPort.IntVal != 8080 {
		t.Errorf("service ports = %+v", svc.Spec.Ports)
	}
}

func TestLogProgress(t *testing.T) {
	var buf bytes.Buffer
	p := &LogProgress{Logger: slog.New(slog.NewTextHandler(&buf, nil)), Interval: 5 * time.Millisecond}
	p.Start("create", 10)
	p.Add(4)
	time.Sleep(30 * time.Millisecond)
	p.Add(6)
	p.Finish()
	p.Finish() // a second Finish is harmless
	out := buf.String()
	if !strings.Contains(out, "msg=scaling phase=create done=4 total=10") {
		t.Errorf("no periodic line with 4/10 in:\n%s", out)
	}
	if !strings.Contains(out, "eta=") {
		t.Errorf("periodic line has no ETA:\n%s", out)
	}
	last := out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:]
	if !strings.Contains(last, "msg=scaled phase=create done=10 total=10") {
		t.Errorf("last line = %q, want the final 10/10", last)
	}
}

type fakeClientNode struct {
	args []string
	err  error
}

func (f *fakeClientNode) Run(_ context.Context, _ io.Reader, _, stderr io.Writer, args ...string) error {
	f.args = args
	if f.err != nil && stderr != nil {
		_, _ = io.WriteString(stderr, "bash: connect: Connection refused\n")
	}
	return f.err
}
func (f *fakeClientNode) CPUs() []int                               { return nil }
func (f *fakeClientNode) ProcRoot() string                          { return "/proc" }
func (f *fakeClientNode) KubeProxyPID(context.Context) (int, error) { return 1, nil }
func (f *fakeClientNode) KubeProxyGet(_ context.Context, path string) ([]byte, error) {
	return []byte(path), nil
}

func TestClientNodeAdapter(t *testing.T) {
	fc := &fakeClientNode{}
	n := ClientNode{Node: fc}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := n.Connect(ctx, netip.MustParseAddrPort("198.19.0.5:80")); err != nil {
		t.Fatal(err)
	}
	if len(fc.args) != 7 || fc.args[0] != "timeout" || fc.args[1] != "-s" || fc.args[2] != "KILL" || fc.args[4] != "bash" || fc.args[6] != "exec 3<>/dev/tcp/198.19.0.5/80" {
		t.Errorf("probe args = %q", fc.args)
	}
	fc.err = errors.New("exit status 1")
	if err := n.Connect(ctx, netip.MustParseAddrPort("198.19.0.5:80")); err == nil || !strings.Contains(err.Error(), "Connection refused") {
		t.Errorf("failed probe err = %v, want it to carry the probe's stderr", err)
	}
	if b, _ := n.Metrics(ctx); string(b) != "/metrics" {
		t.Errorf("Metrics fetched %q", b)
	}
}

// BenchmarkObjects measures building one Service and its EndpointSlice
// (10 endpoints): the scaler's per-Service client-side cost before any I/O.
func BenchmarkObjects(b *testing.B) {
	ips := make([]netip.Addr, 10)
	for i := range ips {
		ips[i] = netip.AddrFrom4([4]byte{198, 18, 0, byte(10 + i)})
	}
	tmpl := Template{Namespace: ns, Port: 80, TargetPort: 80, EndpointIPs: ips, EndpointsPerService: 10}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = tmpl.Service(i % MaxServices)
		_ = tmpl.EndpointSlice(i%MaxServices, "uid")
	}
}

// BenchmarkScaleFake scales 0 → 200 → 0 against the fake clientset: the
// scaler's own overhead (planning, worker pool, bookkeeping) with an
// in-memory API.
func BenchmarkScaleFake(b *testing.B) {
	ips := make([]netip.Addr, 10)
	for i := range ips {
		ips[i] = netip.AddrFrom4([4]byte{198, 18, 0, byte(10 + i)})
	}
	b.ReportAllocs()
	for b.Loop() {
		s, err := New(fake.NewClientset(), Config{Namespace: ns, EndpointIPs: ips})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Scale(context.Background(), 200); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Scale(context.Background(), 0); err != nil {
			b.Fatal(err)
		}
	}
}

// dialingNode is a client node that can dial from inside itself.
type dialingNode struct {
	fakeClientNode
	dialed []string
}

func (d *dialingNode) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.dialed = append(d.dialed, addr)
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

func TestClientNodeAdapterDialsWhenItCan(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dn := &dialingNode{}
	n := ClientNode{Node: dn}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addr := netip.MustParseAddrPort(l.Addr().String())
	if err := n.Connect(ctx, addr); err != nil {
		t.Fatal(err)
	}
	if len(dn.dialed) != 1 || dn.args != nil {
		t.Errorf("dialed %v, ran %q: want one dial and no process", dn.dialed, dn.args)
	}
	l.Close()
	if err := n.Connect(ctx, addr); err == nil {
		t.Error("connect to a closed port succeeded")
	}
}
