package sweep

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/collector"
	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// targetProvider is a provider with a scripted capability map that records
// Up and Down; the variants below add the optional interfaces.
type targetProvider struct {
	fakeCluster
	modes    map[scenarios.Mode]string
	backends int
	ups      []scenarios.Mode
	downs    int
	kubecfg  string
}

func (p *targetProvider) KubeconfigPath() string { return p.kubecfg }

func (p *targetProvider) Up(_ context.Context, m scenarios.Mode) error {
	p.ups = append(p.ups, m)
	return nil
}
func (p *targetProvider) Down(context.Context) error { p.downs++; return nil }
func (p *targetProvider) Capabilities(context.Context) (clusters.Capabilities, error) {
	return clusters.Capabilities{Modes: p.modes}, nil
}
func (p *targetProvider) Backends(context.Context) ([]clusters.Endpoint, error) {
	eps := make([]clusters.Endpoint, p.backends)
	for i := range eps {
		eps[i] = clusters.Endpoint{Addr: netip.AddrFrom4([4]byte{198, 18, 1, byte(1 + i)}), Port: 80}
	}
	return eps, nil
}

// reusable is a lab-like provider: already up, pinned, described.
type reusable struct {
	targetProvider
	running bool
}

func (r *reusable) Running(context.Context) bool { return r.running }
func (r *reusable) Describe(context.Context) (string, map[string]string) {
	return "lab1", map[string]string{"etcdVersion": "3.6.5"}
}
func (r *reusable) Pinning(context.Context) ([]int, []int, error) { return []int{1}, []int{0}, nil }
func (r *reusable) Features(context.Context) clusters.Features {
	return clusters.Features{Running: r.Running, Describe: r.Describe, Pinning: r.Pinning, SwitchModes: true}
}

// remote is a kind/existing-like provider: load runs in the cluster.
type remote struct{ targetProvider }

func (r *remote) RunLoad(context.Context, clusters.LoadRequest) ([]clusters.LoadResult, error) {
	return nil, errors.New("not in this test")
}
func (r *remote) Features(context.Context) clusters.Features {
	return clusters.Features{Client: clusters.Client{Where: clusters.ClientPod, Bin: "kpbench", Load: r}}
}

// vmTarget is a provider whose client node is a VM under TCG: the node
// runs its own kpbench (Bin) and the load through ClientNode.Run.
type vmTarget struct{ targetProvider }

func (r *vmTarget) Features(context.Context) clusters.Features {
	return clusters.Features{Client: clusters.Client{Where: clusters.ClientVM, Bin: "kpbench",
		VM: &clusters.VMNodeInfo{Accelerator: "tcg", HostPID: os.Getpid(), Scratch: os.TempDir()}}}
}

func scenarioWith(modes ...scenarios.Mode) *scenarios.Scenario {
	sc := &scenarios.Scenario{}
	sc.Spec.Modes = modes
	sc.Spec.EndpointsPerService = 2
	return sc
}

func TestPrepareBringsUpInTheFirstRunnableMode(t *testing.T) {
	p := &targetProvider{modes: map[scenarios.Mode]string{
		scenarios.ModeIPVS: "no IP_VS", scenarios.ModeNFTables: "", scenarios.ModeIPTables: ""}}
	tg, err := Prepare(context.Background(), p, scenarioWith(scenarios.ModeIPVS, scenarios.ModeNFTables), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.ups, []scenarios.Mode{scenarios.ModeNFTables}) {
		t.Errorf("Up calls %v, want [nftables]", p.ups)
	}
	tg.Teardown(context.Background())
	if p.downs != 1 {
		t.Errorf("Down called %d times, want 1 for a cluster the run brought up", p.downs)
	}
}

func TestPrepareRefusesAScenarioNoModeOfWhichRuns(t *testing.T) {
	p := &targetProvider{modes: map[scenarios.Mode]string{scenarios.ModeIPVS: "no IP_VS", scenarios.ModeIPTables: ""}}
	_, err := Prepare(context.Background(), p, scenarioWith(scenarios.ModeIPVS), nil)
	if !errors.Is(err, ErrCannotRun) || !strings.Contains(err.Error(), "no IP_VS") {
		t.Fatalf("err = %v, want ErrCannotRun naming the reason", err)
	}
	if len(p.ups) != 0 {
		t.Errorf("Up called: %v", p.ups)
	}
}

func TestPrepareFallsBackToExternalWithANote(t *testing.T) {
	p := &targetProvider{modes: map[scenarios.Mode]string{
		scenarios.ModeIPTables: "kube-proxy is replaced", scenarios.ModeExternal: ""}}
	sc := scenarioWith(scenarios.ModeIPTables)
	tg, err := Prepare(context.Background(), p, sc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tg.Modes, []scenarios.Mode{scenarios.ModeExternal}) || !strings.Contains(tg.Note, "external") || len(sc.Spec.Modes) != 1 || sc.Spec.Modes[0] == scenarios.ModeExternal {
		t.Errorf("target modes %v, scenario modes %v, note %q", tg.Modes, sc.Spec.Modes, tg.Note)
	}
	if !reflect.DeepEqual(p.ups, []scenarios.Mode{scenarios.ModeExternal}) {
		t.Errorf("Up calls %v", p.ups)
	}
}

func TestPrepareUsesAClusterThatIsUpAndLeavesItUp(t *testing.T) {
	p := &reusable{targetProvider: targetProvider{backends: 2}, running: true}
	tg, err := Prepare(context.Background(), p, scenarioWith(scenarios.ModeIPTables), nil)
	if err != nil {
		t.Fatal(err)
	}
	tg.Teardown(context.Background())
	if len(p.ups) != 0 || p.downs != 0 {
		t.Errorf("a cluster that was up: Up %v, Down %d times; want neither", p.ups, p.downs)
	}

	p.backends = 1
	if _, err := Prepare(context.Background(), p, scenarioWith(scenarios.ModeIPTables), nil); !errors.Is(err, ErrCannotRun) ||
		!strings.Contains(err.Error(), "lab1 is up with 1 backends; the scenario needs 2") {
		t.Errorf("too few backends: err = %v", err)
	}
}

func TestDescribeAsksTheProviderWhatItOffers(t *testing.T) {
	p := &reusable{targetProvider: targetProvider{backends: 2}, running: true}
	tg, err := Prepare(context.Background(), p, scenarioWith(scenarios.ModeIPTables), nil)
	if err != nil {
		t.Fatal(err)
	}
	var run runs.Run
	if err := tg.Describe(context.Background(), &run); err != nil {
		t.Fatal(err)
	}
	if run.Provider.Name != "fake" || run.Provider.Cluster != "lab1" || run.Provider.Details["etcdVersion"] != "3.6.5" {
		t.Errorf("provider %+v", run.Provider)
	}
	if run.Pinning == nil || !reflect.DeepEqual(run.Pinning.NodeCPUs, []int{1}) || !reflect.DeepEqual(run.Pinning.OtherCPUs, []int{0}) {
		t.Errorf("pinning %+v", run.Pinning)
	}
	if run.Environment.KubernetesVersion != "v1.36.3" || run.Environment.Cores == 0 {
		t.Errorf("environment %+v: want the cluster's versions on this machine's description", run.Environment)
	}
}

func TestEngineRunsLoadWhereTheProviderSays(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n" +
		"users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	sc := scenarioWith(scenarios.ModeIPTables)
	local := &Target{Provider: &targetProvider{backends: 2, kubecfg: kc}}
	inCl := &Target{Provider: &remote{targetProvider{backends: 2, kubecfg: kc}}}
	e, err := local.Engine(context.Background(), sc, EngineOptions{QPS: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := e.Load.(*NodeLoad); !ok {
		t.Errorf("local provider: load %T, want *NodeLoad", e.Load)
	}
	if !observes[*collector.NodeObserver](e.Observer) || !observes[*collector.FirstPacketObserver](e.Observer) {
		t.Errorf("local provider: observer %#v, want the node's and the kernel probe's", e.Observer)
	}
	e, err = inCl.Engine(context.Background(), sc, EngineOptions{QPS: 10})
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := e.Load.(*ClusterLoad); !ok || l.Runner == nil {
		t.Errorf("in-cluster provider: load %T, want *ClusterLoad", e.Load)
	}
	if !observes[*collector.AgentObserver](e.Observer) {
		t.Errorf("in-cluster provider: observer %#v, want the agent's", e.Observer)
	}
	// The probe cannot time a pod's connections: its observer records why.
	if !observes[*collector.FirstPacketObserver](e.Observer) {
		t.Errorf("in-cluster provider: observer %#v, want the kernel probe's (saying why it cannot run)", e.Observer)
	}
	// A VM node: its load client times its own connections in the
	// guest's kernel, and the point takes that figure, labelled emulated.
	vmt := &Target{Provider: &vmTarget{targetProvider{backends: 2, kubecfg: kc}}}
	if e, err = vmt.Engine(context.Background(), sc, EngineOptions{QPS: 10}); err != nil {
		t.Fatal(err)
	}
	if l, ok := e.Load.(*NodeLoad); !ok || !l.FirstPacket || l.Bin != "kpbench" {
		t.Errorf("VM provider: load %#v, want the node's kpbench load with --first-packet", e.Load)
	}
	if !observes[*collector.LoadFirstPacketObserver](e.Observer) || observes[*collector.FirstPacketObserver](e.Observer) {
		t.Errorf("VM provider: observer %#v, want the load's own figure, not this kernel's probe", e.Observer)
	}
	sc.Spec.Sampling.FirstPacket = new(bool)
	if e, err = local.Engine(context.Background(), sc, EngineOptions{QPS: 10}); err != nil {
		t.Fatal(err)
	}
	if observes[*collector.FirstPacketObserver](e.Observer) {
		t.Error("spec.sampling.firstPacket: false, and the kernel probe observes anyway")
	}
	if e, err = vmt.Engine(context.Background(), sc, EngineOptions{QPS: 10}); err != nil {
		t.Fatal(err)
	}
	if l := e.Load.(*NodeLoad); l.FirstPacket || observes[*collector.LoadFirstPacketObserver](e.Observer) {
		t.Error("spec.sampling.firstPacket: false, and the VM's load times its connections anyway")
	}
}

// observes reports whether o is, or holds, an observer of type T.
func observes[T collector.Observer](o collector.Observer) bool {
	if all, ok := o.(collector.Observers); ok {
		for _, x := range all {
			if observes[T](x) {
				return true
			}
		}
		return false
	}
	_, ok := o.(T)
	return ok
}
