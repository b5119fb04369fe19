package lab_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/kpbench/kpbench/clusters/lab"
	"github.com/kpbench/kpbench/clusters/lab/labtest"
	"github.com/kpbench/kpbench/scenarios"
)

// TestLabConntrackFlush: connections to a Service fill the client node's
// conntrack table; FlushConntrack empties that table (the node's network
// namespace) and nothing else.
func TestLabConntrackFlush(t *testing.T) {
	labtest.SkipUnlessIntegration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	l := labtest.Start(t, lab.Config{Backends: 1}, scenarios.ModeIPTables)
	cfg, err := l.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	eps, err := l.Backends(ctx)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + net.JoinHostPort(createService(ctx, t, cs, "kpbench-ct", "echo", eps), "80") + "/"
	for i := 0; i < 50; i++ { // each a new connection (getFromNode does not keep them alive)
		if code, err := getFromNode(ctx, l.LabName(), url, 30*time.Second); code != http.StatusOK {
			t.Fatalf("GET %s: %d %v", url, code, err)
		}
	}
	node := l.ClientNode()
	count := func() int {
		var out bytes.Buffer
		if err := node.Run(ctx, nil, &out, nil, "conntrack", "-C"); err != nil {
			t.Fatalf("conntrack -C on the node: %v", err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(out.String()))
		if err != nil {
			t.Fatalf("conntrack -C: %q", out.String())
		}
		return n
	}
	before := count()
	if before < 50 {
		t.Fatalf("%d conntrack entries on the node after 50 connections, want at least 50", before)
	}
	f, ok := node.(interface{ FlushConntrack(context.Context) error })
	if !ok {
		t.Fatalf("the lab's client node %T cannot flush conntrack", node)
	}
	if err := f.FlushConntrack(ctx); err != nil {
		t.Fatal(err)
	}
	// kube-proxy's watch on the apiserver is re-tracked at its next packet.
	if after := count(); after > 5 {
		t.Errorf("%d entries after the flush (%d before), want the table empty but for live connections", after, before)
	}
}
