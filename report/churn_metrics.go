package report

import "github.com/kpbench/kpbench/runs"

// The churn metrics: what a churn point (runs.Point.Churn) measured, one
// number per point, compared and gated as every other metric is. A point
// without churn measures none of them: absent, not zero.

// churnTraffic returns p's churn traffic when it recorded requests.
func churnTraffic(p *runs.Point) (*runs.ChurnTraffic, bool) {
	if p.Churn == nil || p.Churn.Traffic == nil || p.Churn.Traffic.Requests <= 0 {
		return nil, false
	}
	return p.Churn.Traffic, true
}

// churnErrorsPer10k is the requests that failed during churn, of any
// kind, per 10,000 requests.
func churnErrorsPer10k(p *runs.Point) (float64, bool) {
	tr, ok := churnTraffic(p)
	if !ok {
		return 0, false
	}
	var failed int64
	for _, n := range tr.Errors {
		failed += n
	}
	return 1e4 * float64(failed) / float64(tr.Requests), true
}

// churnStalePer10k is the requests a removed backend answered, before
// and after its removal was programmed, per 10,000 requests.
func churnStalePer10k(p *runs.Point) (float64, bool) {
	tr, ok := churnTraffic(p)
	if !ok {
		return 0, false
	}
	return 1e4 * float64(tr.StaleUnprogrammed+tr.StaleProgrammed) / float64(tr.Requests), true
}

// whenProgrammed reads a churn point's programming latency, over the
// changes the node's rules showed; a point where none showed has none.
func whenProgrammed(f func(d runs.DurationSummary) float64) func(p *runs.Point) (float64, bool) {
	return func(p *runs.Point) (float64, bool) {
		if p.Churn == nil || p.Churn.Programming.Count == 0 {
			return 0, false
		}
		return f(p.Churn.Programming), true
	}
}

// churnConnectInSync is the median connect time of the connections that
// started inside a kube-proxy sync during churn (µs); a point where none
// did has none.
func churnConnectInSync(p *runs.Point) (float64, bool) {
	tr, ok := churnTraffic(p)
	if !ok || tr.ConnectInSync.Count == 0 {
		return 0, false
	}
	return tr.ConnectInSync.P50, true
}
