package lab

import (
	"context"
	"fmt"
	"io"
)

// FlushConntrack empties the client node's connection tracking table
// (clusters.Client.FlushConntrack), whether the node is a namespace or a
// VM; see the node's own FlushConntrack.
func (l *Lab) FlushConntrack(ctx context.Context) error { return flushConntrack(ctx, l.node()) }

// FlushConntrack empties the client node's connection tracking table,
// between repetitions, so that each starts from the same state (a
// repetition would otherwise inherit the thousands of TIME_WAIT entries
// of the ones before it). Connection tracking tables are per network
// namespace: `conntrack -F` run inside the node's namespace (or in the VM)
// touches the node's table only, never the host's.
func (n *clientNode) FlushConntrack(ctx context.Context) error { return flushConntrack(ctx, n) }

// FlushConntrack implements the same for a VM client node.
func (n *vmNode) FlushConntrack(ctx context.Context) error { return flushConntrack(ctx, n) }

func flushConntrack(ctx context.Context, n nodeAccess) error {
	if err := n.Run(ctx, nil, io.Discard, nil, "conntrack", "-F"); err != nil {
		return fmt.Errorf("flushing the client node's conntrack table: %w", err)
	}
	return nil
}
