package sweep

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/loadgen"
)

// This file holds the adapters for providers whose client node is not this
// machine (kind, existing): load clients run as Jobs in the cluster and the
// node is observed by the CPU agent pod.

// ClusterLoad runs the load client as in-cluster Jobs (clusters.LoadRunner)
// and merges the clients' summaries into one (loadgen.MergeSummaries).
type ClusterLoad struct {
	Runner clusters.LoadRunner
	// Clients is the number of load clients (scenario spec.load.clients).
	Clients int
	// StartMargin is added to each client's deadline for the pod to be
	// scheduled and started (default 2 minutes).
	StartMargin time.Duration
}

// RawLoadJSON is the load client's summary in a point's raw directory
// (merged over the clients when there are several).
const RawLoadJSON = "load.json"

// Run implements LoadRunner. req.Rate is the point's total: each of N
// clients sends req.Rate/N, so that the merged summary's target and
// achieved rates (the sums over the clients) are the point's. The
// clients' own summaries are kept under RawDir as load-client-N.json, the
// merged one as load.json.
func (l *ClusterLoad) Run(ctx context.Context, req LoadRequest) (*LoadResult, error) {
	if req.RequestsLog {
		// A client pod reports through its log only its summary.
		return nil, errors.New("per-request records (the traffic during churn) need the load client on the client node (the lab); in-cluster load clients do not return them")
	}
	clients := max(l.Clients, 1)
	margin := l.StartMargin
	if margin <= 0 {
		margin = 2 * time.Minute
	}
	each := req.Load()
	each.Rate = req.Rate / float64(clients)
	args := each.Args()
	results, err := l.Runner.RunLoad(ctx, clusters.LoadRequest{
		ID: JobID(req.ID), Args: args, Clients: clients, Deadline: req.Warmup + req.Duration + req.Timeout + margin,
	})
	if err != nil {
		return nil, err
	}
	if len(results) != clients {
		return nil, fmt.Errorf("%d load clients reported, %d ran", len(results), clients)
	}
	if req.RawDir != "" {
		for _, r := range results {
			if err := writeJSON(filepath.Join(req.RawDir, "load-client-"+strconv.Itoa(r.Client)+".json"), r.Summary); err != nil {
				return nil, err
			}
		}
	}
	// One client's summary is the point's as it is; several are merged
	// by loadgen, which owns the format.
	merged := results[0].Summary
	if clients > 1 {
		parts := make([]json.RawMessage, len(results))
		for i, r := range results {
			parts[i] = r.Summary
		}
		if merged, err = loadgen.MergeSummaries(parts); err != nil {
			return nil, fmt.Errorf("merging %d load clients: %w", clients, err)
		}
	}
	if req.RawDir != "" {
		if err := writeJSON(filepath.Join(req.RawDir, RawLoadJSON), merged); err != nil {
			return nil, err
		}
	}
	s, err := loadgen.ReadSummary(bytes.NewReader(merged))
	if err != nil {
		return nil, fmt.Errorf("reading the load summary: %w", err)
	}
	res := loadResultOf(s)
	if clients > 1 {
		// The merge judges the merged numbers as one client's; a point
		// is valid only if every client held its own rate too (a client
		// that fell behind was queueing on its machine). Each client's
		// reasons are in the merge, as "client N: reason".
		res.InvalidReasons = append(res.InvalidReasons, s.ClientInvalidReasons...)
		res.Valid = len(res.InvalidReasons) == 0
	}
	return res, nil
}

func writeJSON(path string, raw json.RawMessage) error {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		b.Reset()
		b.Write(raw)
	}
	b.WriteByte('\n')
	return os.WriteFile(path, b.Bytes(), 0o644)
}

var notDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// JobID turns a point id into a DNS label of at most 40 characters for
// the load Jobs' names: lowercased, other characters dashed, the middle
// elided when too long (the end, repetition and warm-up, is kept).
func JobID(id string) string {
	s := strings.Trim(notDNS.ReplaceAllString(strings.ToLower(id), "-"), "-")
	if len(s) > 40 {
		s = strings.Trim(s[:19], "-") + "-" + strings.Trim(s[len(s)-20:], "-")
	}
	if s == "" {
		s = "load"
	}
	return s
}
