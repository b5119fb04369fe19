package scenarios

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseReportsEveryProblem(t *testing.T) {
	data, err := os.ReadFile("testdata/mistakes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse(data)
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("Parse error = %v, want an ErrorList", err)
	}
	want := map[string]string{
		"spec.load.keepalive": "unknown field",
		"spec.load.rate":      "must be above 0",
		"spec.modes[1]":       `unknown mode "userspace"`,
		"spec.services[2]":    "strictly ascending",
	}
	got := map[string]string{}
	for _, e := range list {
		got[e.Path] = e.Message
	}
	for path, frag := range want {
		msg, ok := got[path]
		if !ok {
			t.Errorf("no problem reported at %s; got %v", path, list)
			continue
		}
		if !strings.Contains(msg, frag) {
			t.Errorf("%s: message %q does not contain %q", path, msg, frag)
		}
	}
	if len(list) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(list), len(want), list)
	}
}

func TestParseErrors(t *testing.T) {
	base := func(spec string) string {
		return "apiVersion: kpbench.io/v1alpha1\nkind: Scenario\nmetadata:\n  name: t\nspec:\n" + spec
	}
	tests := []struct {
		name string
		doc  string
		want []string // paths
	}{
		{"missing services", base("  modes: [iptables]\n"), []string{"spec.services"}},
		{"wrong types", base("  services: [1]\n  load:\n    rate: fast\n    duration: 30\n"), []string{"spec.load.duration", "spec.load.rate"}},
		{"bad duration string", base("  services: [1]\n  load:\n    duration: soon\n"), []string{"spec.load.duration"}},
		{"bad tick", base("  services: [1]\n  load:\n    tick: sometimes\n"), []string{"spec.load.tick"}},
		{"negative tick", base("  services: [1]\n  load:\n    tick: -1ms\n"), []string{"spec.load.tick"}},
		{"tick not a string", base("  services: [1]\n  load:\n    tick: 1\n"), []string{"spec.load.tick"}},
		{"duplicate mode and variant", base("  services: [1]\n  modes: [ipvs, ipvs]\n  load:\n    requestsPerConn: [1, 1]\n"), []string{"spec.load.requestsPerConn[1]", "spec.modes[1]"}},
		{"negative variant", base("  services: [1]\n  load:\n    requestsPerConn: [-1]\n"), []string{"spec.load.requestsPerConn[0]"}},
		{"endpoints exceed backends", base("  services: [1]\n  backends: 3\n  endpointsPerService: 5\n"), []string{"spec.endpointsPerService"}},
		{"bad targets", base("  services: [1]\n  load:\n    targets: all\n"), []string{"spec.load.targets"}},
		{"bad order", base("  services: [1]\n  order: random\n"), []string{"spec.order"}},
		{"zero services step", base("  services: [0, 10]\n"), []string{"spec.services[0]"}},
		{"too many services", base("  services: [70000]\n"), []string{"spec.services[0]"}},
		{"sampling longer than window", base("  services: [1]\n  load:\n    duration: 2s\n  sampling:\n    interval: 5s\n"), []string{"spec.sampling.interval"}},
		{"wrong header", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: Bad_Name\nspec:\n  services: [1]\n", []string{"apiVersion", "kind", "metadata.name"}},
		{"unknown top-level and misspelled", base("  services: [1]\n  Modes: [iptables]\nstatus: {}\n"), []string{"spec.Modes", "status"}},
		{"bad primary", base("  services: [1]\n  modes: [iptables]\n  load:\n    requestsPerConn: [1, 100]\n  primary:\n    metric: p99\n    requestsPerConn: 0\n"),
			[]string{"spec.primary", "spec.primary.metric", "spec.primary.requestsPerConn"}},
		{"primary under order modes", base("  services: [1]\n  modes: [iptables, nftables]\n  order: modes\n  load:\n    requestsPerConn: [1]\n  primary:\n    metric: connect\n    requestsPerConn: 1\n"),
			[]string{"spec.primary"}},
		{"primary on a placement not measured", base("  services: [1]\n  modes: [iptables, nftables]\n  load:\n    requestsPerConn: [1]\n    targets: [deepest, shallowest]\n  primary:\n    metric: connect\n    requestsPerConn: 1\n    targets: median\n"),
			[]string{"spec.primary.targets"}},
		{"bad placement list", base("  services: [1]\n  load:\n    targets: [deepest, all, deepest, random, one, 3]\n"),
			[]string{"spec.load.targets[1]", "spec.load.targets[2]", "spec.load.targets[3]", "spec.load.targets[4]", "spec.load.targets[5]"}},
		{"placements not a list", base("  services: [1]\n  load:\n    targets: {deepest: true}\n"), []string{"spec.load.targets"}},
		{"bad seed", base("  services: [1]\n  seed: soon\n"), []string{"spec.seed"}},
		{"primary at a step not measured", base("  services: [1, 1000]\n  modes: [iptables, nftables]\n  order: steps\n  load:\n    requestsPerConn: [1]\n  primary:\n    metric: connect\n    requestsPerConn: 1\n    services: 3000\n"),
			[]string{"spec.primary.services"}},
		{"primary direction and placement", base("  services: [1, 1000]\n  modes: [iptables, nftables]\n  order: steps\n  load:\n    requestsPerConn: [1]\n  primary:\n    metric: connect\n    requestsPerConn: 1\n    direction: up\n    targets: all\n"),
			[]string{"spec.primary.direction", "spec.primary.targets"}},
		{"gate outside the scenario", base("  services: [1, 1000]\n  gate:\n    metrics: [latency]\n    services: [5]\n"),
			[]string{"spec.gate.metrics[0]", "spec.gate.services[0]"}},
		{"spec not an object", "apiVersion: kpbench.io/v1alpha1\nkind: Scenario\nmetadata:\n  name: t\nspec: [1]\n", []string{"spec", "spec.services"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("Parse error = %v, want an ErrorList", err)
			}
			var paths []string
			for _, e := range list {
				paths = append(paths, e.Path)
			}
			if !reflect.DeepEqual(paths, tc.want) {
				t.Errorf("paths = %v, want %v\n%v", paths, tc.want, list)
			}
		})
	}
}

func TestSuggestsCaseFix(t *testing.T) {
	_, err := Parse([]byte("apiVersion: kpbench.io/v1alpha1\nkind: Scenario\nmetadata:\n  name: t\nspec:\n  services: [1]\n  Modes: [iptables]\n"))
	if err == nil || !strings.Contains(err.Error(), `did you mean "modes"`) {
		t.Errorf("error %v does not suggest the right field", err)
	}
}

func TestDefaults(t *testing.T) {
	s, err := Parse([]byte("apiVersion: kpbench.io/v1alpha1\nkind: Scenario\nmetadata:\n  name: d\nspec:\n  services: [1, 10]\n"))
	if err != nil {
		t.Fatal(err)
	}
	sp := s.Spec
	if !reflect.DeepEqual(sp.Modes, Modes) {
		t.Errorf("modes = %v, want %v", sp.Modes, Modes)
	}
	if sp.Order != OrderSteps {
		t.Errorf("order = %q, want %q", sp.Order, OrderSteps)
	}
	if sp.Seed != nil {
		t.Errorf("seed = %d, want none (the run draws one)", *sp.Seed)
	}
	if sp.EndpointsPerService != 10 || sp.Backends != 10 || sp.Repetitions != 1 {
		t.Errorf("endpoints/backends/repetitions = %d/%d/%d", sp.EndpointsPerService, sp.Backends, sp.Repetitions)
	}
	l := sp.Load
	if l.Rate != 1000 || l.Duration.D() != 30*time.Second || l.WarmupDuration() != 5*time.Second ||
		!reflect.DeepEqual(l.RequestsPerConn, []int{1, 100}) || !reflect.DeepEqual(l.Targets, Placements{TargetsOne}) || l.Clients != 1 {
		t.Errorf("load defaults wrong: %+v", l)
	}
	if sp.Sampling.Interval.D() != time.Second {
		t.Errorf("sampling interval = %s", sp.Sampling.Interval)
	}
}

func TestExplicitZeroWarmupKept(t *testing.T) {
	s, err := Parse([]byte("apiVersion: kpbench.io/v1alpha1\nkind: Scenario\nmetadata:\n  name: d\nspec:\n  services: [1]\n  load:\n    warmup: 0s\n    requestsPerConn: [0]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Spec.Load.WarmupDuration() != 0 {
		t.Errorf("warmup = %s, want 0", s.Spec.Load.WarmupDuration())
	}
	if !reflect.DeepEqual(s.Spec.Load.RequestsPerConn, []int{0}) {
		t.Errorf("requestsPerConn = %v, want [0] (persistent)", s.Spec.Load.RequestsPerConn)
	}
}

func TestCatalog(t *testing.T) {
	names := CatalogNames()
	for _, want := range []string{"smoke", "quick", "tigera-2019", "nftables-2025", "nightly", "aa"} {
		s, ok, err := FromCatalog(want)
		if !ok || err != nil {
			t.Errorf("catalog %s: ok=%v err=%v (have %v)", want, ok, err, names)
			continue
		}
		if s.Metadata.Name != want {
			t.Errorf("catalog file %s names itself %q", want, s.Metadata.Name)
		}
	}
	tig, _, _ := FromCatalog("tigera-2019")
	if tig.Spec.Load.Rate != 1000 || tig.Spec.Services[0] != 1 || tig.Spec.Services[len(tig.Spec.Services)-1] != 10000 ||
		!reflect.DeepEqual(tig.Spec.Load.RequestsPerConn, []int{1, 100}) || tig.Spec.Load.Targets.First() != TargetsDeepest {
		t.Errorf("tigera-2019 does not match the published experiment: %+v", tig.Spec)
	}
	// Tigera's figure is a full walk of the chain, contrasted within each
	// step with the shallowest; the blog connected to every Service; a
	// nightly gate wants fixed depths.
	contrast := Placements{TargetsDeepest, TargetsShallowest}
	for name, want := range map[string]Placements{"tigera-2019": contrast, "quick": contrast, "nightly": contrast, "aa": contrast,
		"nftables-2025": {TargetsRandom}} {
		s, _, _ := FromCatalog(name)
		if !reflect.DeepEqual(s.Spec.Load.Targets, want) {
			t.Errorf("%s: targets %v, want %v", name, s.Spec.Load.Targets, want)
		}
	}
	// Slow resyncs keep tigera-2019 one mode at a time; the rest take
	// turns.
	for name, want := range map[string]Order{"tigera-2019": OrderModes, "quick": OrderSteps, "nightly": OrderSteps, "aa": OrderSteps} {
		if s, _, _ := FromCatalog(name); s.Spec.Order != want {
			t.Errorf("%s: order %q, want %q", name, s.Spec.Order, want)
		}
	}
	q, _, _ := FromCatalog("quick")
	if !reflect.DeepEqual(q.Spec.Services, []int{2000}) || q.Spec.Repetitions != 4 || q.PointsPerMode() != 16 ||
		q.Spec.Primary == nil || q.Spec.Primary.Services != 2000 || q.Spec.PrimaryTargets() != TargetsDeepest {
		t.Errorf("quick: services %v, %d repetitions, %d points per mode, primary %+v", q.Spec.Services, q.Spec.Repetitions, q.PointsPerMode(), q.Spec.Primary)
	}
	aa, _, _ := FromCatalog("aa")
	if !reflect.DeepEqual(aa.Spec.Modes, []Mode{ModeIPTables}) || aa.Spec.Repetitions != 6 || aa.PointsPerMode() != 12 ||
		len(aa.Spec.GatedTargets()) != 1 || len(aa.Spec.GatedMetrics()) != 2 {
		t.Errorf("aa: modes %v, %d repetitions, %d points per mode", aa.Spec.Modes, aa.Spec.Repetitions, aa.PointsPerMode())
	}
	nft, _, _ := FromCatalog("nftables-2025")
	if !reflect.DeepEqual(nft.Spec.Services, []int{5000, 10000, 30000}) {
		t.Errorf("nftables-2025 services = %v", nft.Spec.Services)
	}
	if _, ok, _ := FromCatalog("nope"); ok {
		t.Error("unknown catalog name found")
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	for _, name := range CatalogNames() {
		s, _, err := FromCatalog(name)
		if err != nil {
			t.Fatal(err)
		}
		out, err := Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("%s: effective scenario does not parse back: %v\n%s", name, err, out)
		}
		if !reflect.DeepEqual(s, back) {
			t.Errorf("%s: round trip changed the scenario:\n%+v\n%+v", name, s, back)
		}
	}
}

func TestResolve(t *testing.T) {
	if _, err := Resolve("smoke"); err != nil {
		t.Errorf("Resolve(smoke): %v", err)
	}
	if _, err := Resolve("testdata/mistakes.yaml"); err == nil || !strings.Contains(err.Error(), "testdata/mistakes.yaml") {
		t.Errorf("Resolve(bad file) = %v, want an error naming the file", err)
	}
	if _, err := Resolve("no-such-thing"); err == nil || !strings.Contains(err.Error(), "catalog: ") {
		t.Errorf("Resolve(missing) = %v, want an error listing the catalog", err)
	}
	// A catalog name that is also a file is ambiguous; one that is also a
	// directory (the repository's churn/ package) is not.
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.Mkdir("churn", 0o755); err != nil {
		t.Fatal(err)
	}
	if s, err := Resolve("churn"); err != nil || s.Metadata.Name != "churn" {
		t.Errorf("Resolve(churn) beside a directory churn: %v", err)
	}
	if err := os.WriteFile("smoke", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Resolve("smoke"); err == nil || !strings.Contains(err.Error(), "both a catalog scenario and a file") {
		t.Errorf("Resolve(smoke) beside a file smoke = %v, want the ambiguity named", err)
	}
}

// TestPlacements: spec.load.targets takes one value, as older scenarios
// and run.json files write it, or a list; one entry is written back as a
// single value, so that older readers and today's IDs stay as they were.
func TestPlacements(t *testing.T) {
	doc := func(targets string) []byte {
		return []byte("apiVersion: kpbench.io/v1alpha1\nkind: Scenario\nmetadata:\n  name: p\nspec:\n  services: [1]\n  modes: [iptables, nftables]\n" +
			"  load:\n    requestsPerConn: [1]\n    targets: " + targets + "\n  primary:\n    metric: connect\n    requestsPerConn: 1\n")
	}
	one, err := Parse(doc("deepest"))
	if err != nil {
		t.Fatal(err)
	}
	list, err := Parse(doc("[shallowest, deepest]"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(one.Spec.Load.Targets, Placements{TargetsDeepest}) || !reflect.DeepEqual(list.Spec.Load.Targets, Placements{TargetsShallowest, TargetsDeepest}) {
		t.Errorf("placements %v and %v", one.Spec.Load.Targets, list.Spec.Load.Targets)
	}
	if one.PointsPerMode() != 1 || list.PointsPerMode() != 2 {
		t.Errorf("points per mode %d and %d, want 1 and 2", one.PointsPerMode(), list.PointsPerMode())
	}
	// The primary's placement defaults to the first of the list.
	if list.Spec.Primary.Targets != TargetsShallowest || list.Spec.PrimaryTargets() != TargetsShallowest {
		t.Errorf("primary placement %q", list.Spec.Primary.Targets)
	}
	for _, tc := range []struct {
		s    *Scenario
		want string
	}{{one, `"targets":"deepest"`}, {list, `"targets":["shallowest","deepest"]`}} {
		b, err := json.Marshal(tc.s.Spec.Load)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), tc.want) {
			t.Errorf("load encodes as %s, want %s in it", b, tc.want)
		}
		var back Load
		if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back.Targets, tc.s.Spec.Load.Targets) {
			t.Errorf("decoding %s: %v, %v", b, back.Targets, err)
		}
	}
	// A run.json written before primary.targets existed means the first
	// placement.
	old := Spec{Load: Load{Targets: Placements{TargetsMedian}}, Primary: &Primary{Metric: "connect"}}
	if old.PrimaryTargets() != TargetsMedian {
		t.Errorf("primary placement of an older spec: %q", old.PrimaryTargets())
	}
}

// TestPlacementListErrorsNameEveryProblem: a bad list gets one message per
// bad entry, each saying what is wrong with it.
func TestPlacementListErrorsNameEveryProblem(t *testing.T) {
	_, err := Parse([]byte("apiVersion: kpbench.io/v1alpha1\nkind: Scenario\nmetadata:\n  name: p\nspec:\n  services: [1]\n  load:\n    targets: [deepest, deeper, deepest, random, one]\n"))
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("err = %v", err)
	}
	want := map[string]string{
		"spec.load.targets[1]": `got "deeper"`,
		"spec.load.targets[2]": `"deepest" listed twice`,
		"spec.load.targets[3]": "random\" chooses no depth (each connection goes to a random Service",
		"spec.load.targets[4]": "one\" chooses no depth (its Service sits wherever kube-proxy's map order puts it",
	}
	if len(list) != len(want) {
		t.Errorf("%d problems, want %d:\n%v", len(list), len(want), list)
	}
	for _, e := range list {
		if frag, ok := want[e.Path]; !ok || !strings.Contains(e.Message, frag) {
			t.Errorf("%s: %q, want it to contain %q", e.Path, e.Message, frag)
		}
	}
}

// TestGateOnTheKernelTime: a gate may name the kernel time to first
// packet (its median, p01 and p99), a per-window robust statistic; a
// percentile the report does not carry is refused by name.
func TestGateOnTheKernelTime(t *testing.T) {
	doc := "apiVersion: kpbench.io/v1alpha1\nkind: Scenario\nmetadata:\n  name: t\nspec:\n  services: [1, 1000]\n  gate:\n    metrics: [first-packet, first-packet-p01, first-packet-p99, connect]\n"
	if _, err := Parse([]byte(doc)); err != nil {
		t.Fatalf("a gate on the kernel time: %v", err)
	}
	bad := strings.Replace(doc, "first-packet-p01,", "first-packet-p05,", 1)
	_, err := Parse([]byte(bad))
	if err == nil || !strings.Contains(err.Error(), `"first-packet-p05"`) {
		t.Fatalf("a gate on first-packet-p05: %v", err)
	}
}

// TestLoadTick: spec.load.tick defaults to auto and reads as auto, 0 or a
// positive duration.
func TestLoadTick(t *testing.T) {
	s, err := Parse([]byte("apiVersion: kpbench.io/v1alpha1\nkind: Scenario\nmetadata:\n  name: t\nspec:\n  services: [1]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Spec.Load.Tick != TickAuto {
		t.Errorf("default tick %q, want %q", s.Spec.Load.Tick, TickAuto)
	}
	for _, tt := range []struct {
		tick string
		d    time.Duration
		auto bool
		ok   bool
	}{{"", 0, true, true}, {"auto", 0, true, true}, {"0s", 0, false, true}, {"2ms", 2 * time.Millisecond, false, true},
		{"-1ms", 0, false, false}, {"Auto", 0, false, false}} {
		d, auto, err := Load{Tick: tt.tick}.TickDuration()
		if d != tt.d || auto != tt.auto || (err == nil) != tt.ok {
			t.Errorf("tick %q: %v, auto %v, err %v; want %v, auto %v, ok %v", tt.tick, d, auto, err, tt.d, tt.auto, tt.ok)
		}
	}
}
