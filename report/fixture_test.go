package report

import (
	"bytes"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// go test ./report -run TestFixtures -update rewrites testdata/ from the
// generator below.
var update = flag.Bool("update", false, "rewrite the fixture result directories under testdata/")

// fixtureSpec describes a synthetic but plausible run: iptables' latency,
// connect time and CPU grow with the number of Services when every request
// opens a connection; nftables stays flat; every value carries noise.
type fixtureSpec struct {
	name     string
	seed     uint64
	modes    []scenarios.Mode
	skipped  []runs.SkippedMode
	services []int
	rpcs     []int
	reps     int
	noise    float64 // relative standard deviation of every measured value
	invalid  map[string]string
	scale    func(p *runs.Point) float64 // multiplies latency, connect and CPU; nil for 1
	problems []string
	// churn, when set, makes every point a churn point (spec.churn) with
	// backends backends; gate is spec.gate; staleScale multiplies the
	// expected stale hits (nil for 1).
	churn      *scenarios.Churn
	backends   int
	gate       *scenarios.Gate
	staleScale func(p *runs.Point) float64
}

var fixtureStart = time.Date(2026, 11, 20, 22, 0, 0, 0, time.UTC)

func fixtureSpecs() []fixtureSpec {
	regressed := func(p *runs.Point) float64 {
		if p.Mode == scenarios.ModeIPTables && p.Services == 10000 {
			return 1.20
		}
		return 1
	}
	shifted := func(p *runs.Point) float64 {
		if p.Mode == scenarios.ModeIPTables && p.Services == 10000 {
			return 1.04 // real but within a 10% threshold
		}
		return 1
	}
	cmpSpec := func(name string, seed uint64, scale func(p *runs.Point) float64) fixtureSpec {
		return fixtureSpec{
			name: name, seed: seed,
			modes:    []scenarios.Mode{scenarios.ModeIPTables, scenarios.ModeNFTables},
			services: []int{1, 10000}, rpcs: []int{1}, reps: 6, noise: 0.015,
			scale: scale,
		}
	}
	yes, grace := true, scenarios.Duration(20*time.Second)
	churnSpec := func(name string, seed uint64, staleScale func(p *runs.Point) float64) fixtureSpec {
		s := cmpSpec(name, seed, nil)
		s.services = []int{1000, 5000}
		s.backends = 20
		s.churn = &scenarios.Churn{Rate: 10, Kinds: &scenarios.ChurnKinds{EndpointReplace: 1}, Fraction: 0.01, Target: &yes,
			Hold: scenarios.Duration(5 * time.Second), Grace: &grace}
		s.gate = &scenarios.Gate{Metrics: []string{"connect", "churn-stale-hits", "churn-programming-p99"}}
		s.staleScale = staleScale
		return s
	}
	doubled := func(*runs.Point) float64 { return 2 }
	return []fixtureSpec{
		{
			name: "sweep", seed: 1,
			modes: []scenarios.Mode{scenarios.ModeIPTables, scenarios.ModeIPVS, scenarios.ModeNFTables},
			skipped: []runs.SkippedMode{{Mode: scenarios.ModeIPVS,
				Reason: "kernel has no IP_VS support (/proc/net/ip_vs missing and modprobe ip_vs failed)"}},
			services: []int{1, 100, 1000, 5000, 10000}, rpcs: []int{1, 100}, reps: 4, noise: 0.03,
			invalid: map[string]string{
				runs.PointID(scenarios.ModeIPTables, 10000, 1, 2): runs.ReasonRateShort + " (951.2/s of 1000/s)",
			},
			problems: []string{"kube-proxy restarted once during mode switch to nftables"},
		},
		cmpSpec("compare-base", 11, nil),
		cmpSpec("compare-regressed", 12, regressed),
		cmpSpec("compare-noise", 13, shifted),
		// Churn at 10 endpoint replacements per second; the second is
		// another run of the same (A/A), the third doubles every stale hit.
		churnSpec("churn-base", 21, nil),
		churnSpec("churn-aa", 22, nil),
		churnSpec("churn-stale-doubled", 23, doubled),
	}
}

// generateFixture writes the results directory described by s into dir.
func generateFixture(t testing.TB, s fixtureSpec, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, runs.PointsFile))
	rng := rand.New(rand.NewPCG(s.seed, 42))
	// Four significant digits keep the fixtures small and readable.
	noisy := func(v float64) float64 { return sig4(v * (1 + s.noise*rng.NormFloat64())) }

	warmup := scenarios.Duration(5 * time.Second)
	finished := fixtureStart.Add(3 * time.Hour)
	backends := 10
	if s.backends > 0 {
		backends = s.backends
	}
	run := &runs.Run{
		ID: runs.NewID(fixtureStart, s.name),
		Scenario: scenarios.Scenario{
			APIVersion: scenarios.APIVersion, Kind: scenarios.Kind,
			Metadata: scenarios.Metadata{Name: s.name, Description: "fixture: synthetic points shaped like a lab run"},
			Spec: scenarios.Spec{
				Modes: s.modes, Services: s.services, EndpointsPerService: 10, Backends: backends,
				Load: scenarios.Load{Rate: 1000, Duration: scenarios.Duration(30 * time.Second), Warmup: &warmup,
					RequestsPerConn: s.rpcs, Targets: scenarios.Placements{scenarios.TargetsOne},
					Timeout: scenarios.Duration(2 * time.Second), MaxInflight: 1000, Clients: 1},
				Repetitions: s.reps,
				Sampling:    scenarios.Sampling{Interval: scenarios.Duration(time.Second)},
				Gate:        s.gate,
				Churn:       s.churn,
			},
		},
		Provider: runs.Provider{Name: "lab", Cluster: "kpb-lab"},
		Environment: runs.Environment{
			Kernel: "6.12.48-1-amd64", CPUModel: "Intel(R) Xeon(R) CPU @ 2.20GHz", Cores: 2, MemoryBytes: 24 << 30,
			Hostname: "bench-1", KubernetesVersion: "v1.36.3", KubeProxyVersion: "v1.36.3", IPTablesBackend: "nft", GoVersion: "go1.26.8",
		},
		Pinning:        &runs.Pinning{NodeCPUs: []int{1}, OtherCPUs: []int{0}},
		SkippedModes:   s.skipped,
		StartedAt:      fixtureStart,
		FinishedAt:     &finished,
		Status:         runs.StatusComplete,
		Problems:       s.problems,
		KpbenchVersion: "v0.1.0",
		Command:        []string{"kpbench", "run", "--scenario", s.name},
	}
	if err := runs.WriteRun(dir, run); err != nil {
		t.Fatal(err)
	}
	skipped := map[scenarios.Mode]bool{}
	for _, sm := range s.skipped {
		skipped[sm.Mode] = true
	}
	at := fixtureStart
	for _, mode := range s.modes {
		if skipped[mode] {
			continue
		}
		ipt := mode == scenarios.ModeIPTables
		for _, svc := range s.services {
			S := float64(svc)
			for ri, rpc := range s.rpcs {
				for rep := 1; rep <= s.reps; rep++ {
					p := &runs.Point{
						ID:   runs.PointID(mode, svc, rpc, rep),
						Mode: mode, Services: svc, EndpointsPerService: 10, RequestsPerConn: rpc,
						Targets: scenarios.TargetsOne, Repetition: rep,
						StartedAt: at, DurationSeconds: 30, Valid: true,
					}
					at = at.Add(40 * time.Second)
					scale := 1.0
					if s.scale != nil {
						scale = s.scale(p)
					}
					// Per-connection cost: what every new connection pays
					// walking the rules; amortized over rpc requests.
					connFrac := 1.0
					if rpc == 0 {
						connFrac = 0
					} else {
						connFrac = 1 / float64(rpc)
					}
					connUs := 55 + 0.0006*S
					if ipt {
						connUs = 55 + 0.012*S
					}
					lat := 260 + connFrac*(90+connUs)
					cpu := 0.07 + connFrac*0.04
					if ipt {
						cpu += connFrac * 0.000030 * S
					} else {
						cpu += connFrac * 0.000002 * S
					}
					lat, cpu, connUs = lat*scale, cpu*scale, connUs*scale
					p.Rate = runs.Rate{Target: 1000, Achieved: sig4(1000 * (1 - 0.001*math.Abs(rng.NormFloat64())))}
					p.Requests = int64(p.Rate.Achieved * 30)
					p.Latency = runs.Latency{MeanUs: noisy(lat), P50Us: noisy(lat * 0.9), P90Us: noisy(lat * 1.4),
						P99Us: noisy(lat * 2.5), P999Us: noisy(lat * 5), MaxUs: noisy(lat * 20)}
					p.ServiceTime = runs.Latency{MeanUs: noisy(lat * 0.97), P50Us: noisy(lat * 0.88), P90Us: noisy(lat * 1.35),
						P99Us: noisy(lat * 2.3), P999Us: noisy(lat * 4.5), MaxUs: noisy(lat * 18)}
					if rpc > 0 {
						p.Connect = runs.Connect{Count: p.Requests / int64(rpc), P01Us: noisy(connUs * 0.6),
							P50Us: noisy(connUs), P90Us: noisy(connUs * 1.5), P99Us: noisy(connUs * 3)}
					}
					p.Lag = runs.Lag{P50Us: noisy(8), P99Us: noisy(40), MaxUs: noisy(400)}
					total := noisy(cpu)
					p.CPU = runs.CPU{
						Node: runs.NodeCPU{User: sig4(total * 0.35), System: sig4(total * 0.40), SoftIRQ: sig4(total * 0.25),
							Total: total, MaxTotal: sig4(total * 1.2)},
						Processes: runs.ProcessesCPU{KubeProxy: noisy(0.002), Client: sig4(total * 0.5)},
					}
					p.Conntrack = runs.Conntrack{EntriesBefore: int64(50 + rep), EntriesAfter: int64(120*connFrac*100) + 50}
					if ipt {
						p.Rules = runs.Rules{Total: 40 + 39*svc + svc/2, ChainLength: svc + 3}
						p.Sync = runs.Sync{LastDurationSeconds: noisy(0.04 + 0.00012*S), FullSyncs: 1, FullSyncMeanSeconds: noisy(0.04 + 0.00012*S)}
					} else {
						p.Rules = runs.Rules{Total: 30 + 4*svc, MapElements: 2 * svc}
						p.Sync = runs.Sync{LastDurationSeconds: noisy(0.02 + 0.000004*S), PartialSyncs: 2, PartialMeanSeconds: noisy(0.01)}
					}
					if ri == 0 && rep == 1 {
						ttp := 0.3 + 0.00005*S
						if ipt {
							ttp = 0.5 + 0.0004*S
						}
						p.TimeToProgrammedSeconds = noisy(ttp)
					}
					if s.churn != nil {
						p.Churn = fixtureChurn(s, p, rng, connUs)
					}
					if reason, ok := s.invalid[p.ID]; ok {
						p.Valid = false
						p.InvalidReasons = []string{reason}
						p.Rate.Achieved = 951.2
						p.Errors = runs.Errors{Total: 3, ByKind: map[string]int64{"timeout": 3}}
					}
					if err := runs.AppendPoint(dir, p); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
}

// fixtureChurn is what a churn point of s plausibly records: the
// programming latency grows with the Services (faster in iptables mode);
// the target is one of max(1, 1% of the Services) touched in turn, so it
// changes 30 × rate / touched times a window, and each change sends a
// tenth of the traffic (one endpoint of 10) to a removed backend until
// the removal is programmed. Counts are Poisson; the API writes' own
// records (changes) are left out to keep the fixture small.
func fixtureChurn(s fixtureSpec, p *runs.Point, rng *rand.Rand, connUs float64) *runs.Churn {
	S, ipt := float64(p.Services), p.Mode == scenarios.ModeIPTables
	noisy := func(v float64) float64 { return sig4(v * (1 + s.noise*rng.NormFloat64())) }
	poisson := func(mean float64) int64 {
		if mean > 30 {
			return max(0, int64(math.Round(mean+math.Sqrt(mean)*rng.NormFloat64())))
		}
		var k int64
		for l, q := math.Exp(-mean), rng.Float64(); q > l; q *= rng.Float64() {
			k++
		}
		return k
	}
	writes := int(s.churn.Rate * p.DurationSeconds)
	p50 := 0.12 + 0.00002*S
	if ipt {
		p50 = 0.2 + 0.00005*S
	}
	c := &runs.Churn{AskedPerSecond: s.churn.Rate, AchievedPerSecond: s.churn.Rate, Planned: writes, Written: writes,
		Programming: runs.DurationSummary{Count: writes, P50: noisy(p50), P99: noisy(2.5 * p50), Max: noisy(3 * p50)}}
	touched := max(1, math.Round(s.churn.Fraction*S))
	targetChanges := float64(writes) / touched
	stale := targetChanges * p.Rate.Achieved / 10 * p50
	if s.staleScale != nil {
		stale *= s.staleScale(p)
	}
	tr := &runs.ChurnTraffic{Requests: p.Requests, StaleUnprogrammed: poisson(stale), StaleProgrammed: poisson(0.02 * stale)}
	if n := poisson(0.5 * float64(p.Requests) / 1e4); n > 0 {
		tr.Errors = map[string]int64{"refused": n}
	}
	if p.Connect.Count > 0 {
		in := p.Connect.Count / 10
		tr.ConnectInSync = runs.Percentiles{Count: in, P50: noisy(1.3 * connUs), P99: noisy(4 * connUs)}
		tr.ConnectOutOfSync = runs.Percentiles{Count: p.Connect.Count - in, P50: noisy(connUs), P99: noisy(3 * connUs)}
	}
	c.Traffic = tr
	return c
}

// fixtureDir returns the committed fixture directory for name
// (TestFixtures -update regenerates them).
func fixtureDir(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join("testdata", name)
}

// TestFixtures checks that testdata/ is what the generator writes, so the
// fixtures stay reproducible; -update rewrites them.
func TestFixtures(t *testing.T) {
	for _, s := range fixtureSpecs() {
		t.Run(s.name, func(t *testing.T) {
			dir := filepath.Join("testdata", s.name)
			if *update {
				generateFixture(t, s, dir)
			}
			tmp := t.TempDir()
			generateFixture(t, s, tmp)
			for _, f := range []string{runs.RunFile, runs.PointsFile} {
				want, err := os.ReadFile(filepath.Join(tmp, f))
				if err != nil {
					t.Fatal(err)
				}
				got, err := os.ReadFile(filepath.Join(dir, f))
				if err != nil {
					t.Fatalf("%v (regenerate with go test ./report -run TestFixtures -update)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs from the generator's output (regenerate with -update)", filepath.Join(dir, f))
				}
			}
		})
	}
}

// copyFixture copies a committed fixture into a temporary directory, so a
// report can be written beside it.
func copyFixture(t testing.TB, name string) string {
	t.Helper()
	dst := t.TempDir()
	for _, f := range []string{runs.RunFile, runs.PointsFile} {
		data, err := os.ReadFile(filepath.Join(fixtureDir(t, name), f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func sig4(v float64) float64 {
	if v == 0 {
		return 0
	}
	e := math.Pow(10, 3-math.Floor(math.Log10(math.Abs(v))))
	return math.Round(v*e) / e
}
