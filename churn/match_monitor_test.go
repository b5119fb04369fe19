package churn

import (
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// monitorNode plays the client node for a MonitorReader: the lab's real
// table listing, and `nft monitor`'s real output (testdata/nft-monitor.txt)
// one transaction per release.
type monitorNode struct {
	t       *testing.T
	listing []byte
	txs     []string
	release chan struct{}
}

func (n *monitorNode) run(ctx context.Context, _ io.Reader, stdout, _ io.Writer, args ...string) error {
	cmd := strings.Join(args, " ")
	switch cmd {
	case "nice -n 19 nft list table ip kube-proxy":
		_, err := stdout.Write(n.listing)
		return err
	case "nice -n 19 nft monitor":
		for _, tx := range n.txs {
			select {
			case <-n.release:
			case <-ctx.Done():
				return ctx.Err()
			}
			if _, err := io.WriteString(stdout, tx); err != nil {
				return err
			}
		}
		<-ctx.Done()
		return ctx.Err()
	}
	return errors.New("unexpected command " + cmd)
}

func TestMonitorReader(t *testing.T) {
	newSvc := ServiceRef{Namespace: "kpbench-fixture", Name: "svc-new", ClusterIP: "198.19.99.99", Port: 80, PortName: "http"}
	text := strings.ReplaceAll(string(fixture(t, "nft-monitor.txt")), "service-ABCDEFGH-kpbench-fixture/svc-new/tcp/http", NFTServiceChain(newSvc))
	var txs []string
	for _, tx := range strings.SplitAfter(text, ")\n") { // each ends "# new generation N by process P (nft)"
		if strings.TrimSpace(tx) != "" {
			txs = append(txs, tx)
		}
	}
	if len(txs) != 3 {
		t.Fatalf("%d transactions in the fixture", len(txs))
	}
	n := &monitorNode{t: t, listing: labFixture(t, "nft-list-table-ip-kube-proxy-20svc.txt"), txs: txs, release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m, err := StartMonitor(ctx, n.run, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc006 := ServiceRef{Namespace: "kpbench-fixture", Name: "svc-006", ClusterIP: "198.19.224.16", Port: 80, PortName: "http"}
	svc007 := ServiceRef{Namespace: "kpbench-fixture", Name: "svc-007", ClusterIP: "198.19.71.16", Port: 80, PortName: "http"}
	read := func(s ServiceRef) ServiceRules {
		t.Helper()
		got, err := m.Read(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	step := func(events int) {
		t.Helper()
		n.release <- struct{}{}
		for i := 0; i < 200; i++ {
			if e, _ := m.Events(); e >= events {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("the monitor applied fewer than %d changes", events)
	}
	if got := read(svc006); !got.Present || len(got.Endpoints) != 10 {
		t.Errorf("svc-006 from the listing: %+v", got)
	}
	if got := read(newSvc); got.Present {
		t.Errorf("a Service not created yet: %+v", got)
	}
	step(2) // svc-006's chain flushed and rewritten
	if got := read(svc006); !reflect.DeepEqual(got.Endpoints, []string{"198.18.1.2:80", "198.18.1.3:80"}) {
		t.Errorf("svc-006 after the replace: %+v", got)
	}
	step(4) // svc-007 to zero
	if got := read(svc007); got.Present {
		t.Errorf("svc-007 after to zero: %+v", got)
	}
	step(7) // svc-007 restored, svc-new created
	if got := read(svc007); !reflect.DeepEqual(got, ServiceRules{Present: true, Endpoints: []string{"198.18.1.4:80"}}) {
		t.Errorf("svc-007 restored: %+v", got)
	}
	if got := read(newSvc); !reflect.DeepEqual(got, ServiceRules{Present: true, Endpoints: []string{"198.18.1.5:80"}}) {
		t.Errorf("svc-new created: %+v", got)
	}
	wrong := svc007
	wrong.PortName = ""
	if _, err := m.Read(ctx, wrong); !errors.Is(err, ErrRules) {
		t.Errorf("wrong port name: %v", err)
	}
	cancel()
	if err := m.Wait(); err == nil {
		t.Error("the monitor's end was not reported")
	}
	if _, err := m.Read(context.Background(), svc006); err == nil {
		t.Error("a read after the monitor ended answered")
	}
}
