package runs

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kpbench/kpbench/scenarios"
)

func samplePoint(rep int) Point {
	return Point{
		ID: PointID(scenarios.ModeIPTables, 1000, 1, rep), Mode: scenarios.ModeIPTables, Services: 1000,
		EndpointsPerService: 10, RequestsPerConn: 1, Targets: scenarios.TargetsOne, Repetition: rep,
		Rate: Rate{Target: 1000, Achieved: 999.7}, StartedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		DurationSeconds: 30, Requests: 29991,
		Latency:     Latency{MeanUs: 310, P50Us: 290, P90Us: 400, P99Us: 800, P999Us: 1500, MaxUs: 4000},
		ServiceTime: Latency{MeanUs: 300, P50Us: 280},
		Connect:     Connect{Count: 29991, P01Us: 60, P50Us: 160, P90Us: 220, P99Us: 400},
		Lag:         Lag{P50Us: 3, P99Us: 40, MaxUs: 900},
		Errors:      Errors{Total: 2, ByKind: map[string]int64{"timeout": 2}},
		CPU:         CPU{Node: NodeCPU{User: 0.1, System: 0.2, SoftIRQ: 0.05, Total: 0.35, MaxTotal: 0.4}, Processes: ProcessesCPU{KubeProxy: 0.01, Client: 0.08}},
		Conntrack:   Conntrack{EntriesBefore: 10, EntriesAfter: 30000},
		Rules:       Rules{Total: 39400, ChainLength: 1002},
		Sync:        Sync{LastDurationSeconds: 1.5, FullSyncs: 1, FullSyncMeanSeconds: 1.5},
		Valid:       false, InvalidReasons: []string{ReasonRateShort},
	}
}

func TestRunRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, _, err := scenarios.FromCatalog("smoke")
	if err != nil {
		t.Fatal(err)
	}
	fin := time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC)
	in := &Run{
		ID: NewID(time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)), "smoke"), Scenario: *s,
		Provider:     Provider{Name: "lab", Cluster: "kpbench"},
		Environment:  Environment{Kernel: "6.1", CPUModel: "x", Cores: 2, KubernetesVersion: "v1.36.3", KubeProxyVersion: "v1.36.3", IPTablesBackend: "nft"},
		Pinning:      &Pinning{NodeCPUs: []int{1}, OtherCPUs: []int{0}},
		SkippedModes: []SkippedMode{{Mode: scenarios.ModeIPVS, Reason: "no IP_VS"}},
		StartedAt:    time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), FinishedAt: &fin, Status: StatusComplete,
	}
	if in.ID != "2026-01-02T020405_smoke" {
		t.Errorf("run id %q, want UTC time and scenario name", in.ID)
	}
	if err := WriteRun(dir, in); err != nil {
		t.Fatal(err)
	}
	out, err := ReadRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	if out.SchemaVersion != SchemaVersion || !reflect.DeepEqual(in, out) {
		t.Errorf("run.json round trip differs:\n%+v\n%+v", in, out)
	}
}

func TestPointsAppendAndRead(t *testing.T) {
	dir := t.TempDir()
	if pts, err := ReadPoints(dir); err != nil || pts != nil {
		t.Fatalf("no points file: got %v, %v", pts, err)
	}
	var want []Point
	for rep := 1; rep <= 3; rep++ {
		p := samplePoint(rep)
		if err := AppendPoint(dir, &p); err != nil {
			t.Fatal(err)
		}
		want = append(want, p)
	}
	got, err := ReadPoints(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("points round trip differs:\n%+v\n%+v", got, want)
	}
	if got[0].Key() != got[2].Key() {
		t.Error("repetitions of one condition have different keys")
	}
}

func TestReadPointsTornAndBad(t *testing.T) {
	dir := t.TempDir()
	p := samplePoint(1)
	if err := AppendPoint(dir, &p); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(filepath.Join(dir, PointsFile), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"schemaVersion":1,"id":"torn`)
	f.Close()
	got, err := ReadPoints(dir)
	if err != nil || len(got) != 1 {
		t.Fatalf("torn last line: got %d points, err %v; want 1 point and no error", len(got), err)
	}

	os.WriteFile(filepath.Join(dir, PointsFile), []byte("garbage\n{\"schemaVersion\":1}\n"), 0o644)
	if _, err := ReadPoints(dir); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("bad middle line: err = %v, want one naming line 1", err)
	}

	os.WriteFile(filepath.Join(dir, PointsFile), []byte("{\"schemaVersion\":99}\n"), 0o644)
	if _, err := ReadPoints(dir); !errors.Is(err, ErrUnknownSchema) {
		t.Errorf("future schema: err = %v, want ErrUnknownSchema", err)
	}
}

// TestAppendAfterTornLine: a writer died mid-append, leaving half a line;
// the next append (a resume) must cut it off, not glue onto it.
func TestAppendAfterTornLine(t *testing.T) {
	for _, torn := range []string{`{"schemaVersion":1,"id":"iptables-s00001-rpc1-r3","mode":"ipt`, `{`} {
		dir := t.TempDir()
		for _, id := range []string{"a", "b"} {
			if err := AppendPoint(dir, &Point{ID: id}); err != nil {
				t.Fatal(err)
			}
		}
		f, err := os.OpenFile(filepath.Join(dir, PointsFile), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(torn)
		f.Close()
		if pts, err := ReadPoints(dir); err != nil || len(pts) != 2 {
			t.Fatalf("torn file: %d points, %v", len(pts), err)
		}
		if err := AppendPoint(dir, &Point{ID: "c"}); err != nil {
			t.Fatal(err)
		}
		pts, err := ReadPoints(dir)
		if err != nil {
			t.Fatalf("after append: %v", err)
		}
		var ids []string
		for _, p := range pts {
			ids = append(ids, p.ID)
		}
		if strings.Join(ids, ",") != "a,b,c" {
			t.Errorf("points %v, want a,b,c", ids)
		}
	}
	// A file that is nothing but a torn line.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, PointsFile), []byte(`{"schemaVers`), 0o644)
	if err := AppendPoint(dir, &Point{ID: "x"}); err != nil {
		t.Fatal(err)
	}
	if pts, err := ReadPoints(dir); err != nil || len(pts) != 1 || pts[0].ID != "x" {
		t.Errorf("points %+v, %v", pts, err)
	}
}

func TestFingerprint(t *testing.T) {
	e := Environment{Kernel: "6.18", CPUModel: "AMD EPYC", Cores: 2, KubernetesVersion: "v1.36.3", KubeProxyVersion: "v1.36.3", IPTablesBackend: "nft", Hostname: "a"}
	f := Fingerprint("lab", e)
	if len(f) != 12 {
		t.Fatalf("fingerprint %q", f)
	}
	same := e
	same.Hostname, same.MemoryBytes, same.GoVersion = "b", 1, "go9"
	if Fingerprint("lab", same) != f {
		t.Error("host name, memory or Go version changed the fingerprint")
	}
	other := e
	other.KubeProxyVersion = "v1.37.0"
	if Fingerprint("lab", other) == f || Fingerprint("kind", e) == f {
		t.Error("kube-proxy version or provider did not change the fingerprint")
	}
	if d := EnvironmentDifferences("lab", e, "kind", other); strings.Join(d, "; ") != "provider: lab → kind; kube-proxy: v1.36.3 → v1.37.0" {
		t.Errorf("differences %q", d)
	}
}
