package scenarios

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func churnDoc(spec string) []byte {
	return []byte("apiVersion: kpbench.io/v1alpha1\nkind: Scenario\nmetadata:\n  name: c\nspec:\n" + spec)
}

func TestChurnDefaults(t *testing.T) {
	s, err := Parse(churnDoc("  services: [100]\n  backends: 20\n  churn:\n    rate: 10\n"))
	if err != nil {
		t.Fatal(err)
	}
	c := s.Spec.Churn
	if c == nil || c.Rate != 10 || !reflect.DeepEqual(c.Kinds, &ChurnKinds{EndpointReplace: 1}) || c.Fraction != DefaultChurnFraction ||
		!c.TargetOn() || c.Hold.D() != DefaultChurnHold || c.GraceDuration() != DefaultChurnGrace {
		t.Errorf("churn defaults: %+v (kinds %+v)", c, c.Kinds)
	}
	// Explicit values stay, a grace of 0s included.
	s, err = Parse(churnDoc("  services: [2, 100]\n  churn:\n    rate: 2.5\n    kinds:\n      endpointsToZero: 1\n      serviceCreate: 3\n" +
		"    fraction: 0.5\n    target: false\n    hold: 2s\n    grace: 0s\n"))
	if err != nil {
		t.Fatal(err)
	}
	c = s.Spec.Churn
	if !reflect.DeepEqual(c.Kinds, &ChurnKinds{EndpointsToZero: 1, ServiceCreate: 3}) || c.Fraction != 0.5 || c.TargetOn() ||
		c.Hold.D() != 2*time.Second || c.Grace == nil || c.GraceDuration() != 0 {
		t.Errorf("explicit churn: %+v (kinds %+v)", c, c.Kinds)
	}
	// A sync timeout stays as given; unset it is left to the probe's
	// default, so that run.json keeps what the scenario said.
	if s, err := Parse(churnDoc("  services: [100]\n  backends: 20\n  churn:\n    rate: 10\n    syncCosts: true\n    syncTimeout: 90m\n")); err != nil || s.Spec.Churn.SyncTimeout.D() != 90*time.Minute {
		t.Errorf("syncTimeout 90m: %v, %+v", err, s)
	}
	if c.SyncTimeout != 0 {
		t.Errorf("syncTimeout unset parsed as %s", c.SyncTimeout)
	}
	// Without spec.churn a scenario has none.
	if s, err := Parse(churnDoc("  services: [1]\n")); err != nil || s.Spec.Churn != nil {
		t.Errorf("a scenario without churn: %v, %+v", err, s)
	}
}

// TestChurnErrors: every bad churn field is named at once.
func TestChurnErrors(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		want       []string
	}{
		{"every field", "  services: [1, 10]\n  churn:\n    rate: -1\n    kinds:\n      endpointReplace: 1\n      endpointsToZero: -2\n" +
			"    fraction: 2\n    target: false\n    hold: -1s\n    grace: -3s\n",
			[]string{"spec.backends", "spec.churn.fraction", "spec.churn.grace", "spec.churn.hold", "spec.churn.kinds.endpointsToZero", "spec.churn.rate", "spec.churn.target"}},
		{"no weight", "  services: [10]\n  churn:\n    rate: 1\n    kinds:\n      endpointReplace: 0\n", []string{"spec.churn.kinds"}},
		{"no write in the window", "  services: [10]\n  backends: 20\n  load:\n    duration: 30s\n  churn:\n    rate: 0.01\n", []string{"spec.churn.rate"}},
		{"too fast", "  services: [10]\n  backends: 20\n  churn:\n    rate: 5000\n", []string{"spec.churn.rate"}},
		{"out of ClusterIPs", "  services: [65000]\n  load:\n    duration: 30s\n  churn:\n    rate: 1000\n    kinds:\n      serviceCreate: 1\n",
			[]string{"spec.churn.kinds.serviceCreate"}},
		{"unknown and mistyped", "  services: [10]\n  backends: 20\n  churn:\n    rate: 1\n    rat: 10\n    target: yes please\n    kinds:\n      endpointReplace: 1\n      rollout: 1\n",
			[]string{"spec.churn.kinds.rollout", "spec.churn.rat", "spec.churn.target"}},
		{"not an object", "  services: [10]\n  churn: 10\n", []string{"spec.churn"}},
		{"negative sync timeout", "  services: [10]\n  backends: 20\n  churn:\n    rate: 1\n    syncCosts: true\n    syncTimeout: -1m\n", []string{"spec.churn.syncTimeout"}},
		{"sync timeout without sync costs", "  services: [10]\n  backends: 20\n  churn:\n    rate: 1\n    syncTimeout: 90m\n", []string{"spec.churn.syncTimeout"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(churnDoc(tc.spec))
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("err = %v, want an ErrorList", err)
			}
			var paths []string
			for _, e := range list {
				paths = append(paths, e.Path)
			}
			if !reflect.DeepEqual(paths, tc.want) {
				t.Errorf("paths %v, want %v\n%v", paths, tc.want, list)
			}
		})
	}
	// The backends' message says why.
	_, err := Parse(churnDoc("  services: [10]\n  churn:\n    rate: 1\n"))
	if err == nil || !strings.Contains(err.Error(), "not one of its endpoints yet") {
		t.Errorf("err = %v, want why a replacement needs a spare backend", err)
	}
	// Without endpoint replacements the backends may all be endpoints.
	if _, err := Parse(churnDoc("  services: [10]\n  churn:\n    rate: 1\n    kinds:\n      endpointsToZero: 1\n")); err != nil {
		t.Errorf("to-zero churn with every backend an endpoint: %v", err)
	}
}

func TestChurnCatalog(t *testing.T) {
	s, ok, err := FromCatalog("churn")
	if !ok || err != nil {
		t.Fatalf("catalog churn: ok=%v err=%v", ok, err)
	}
	sp := s.Spec
	c := sp.Churn
	if c == nil || c.Rate != 10 || !reflect.DeepEqual(c.Kinds, &ChurnKinds{EndpointReplace: 1}) || !c.TargetOn() || !c.SyncCosts {
		t.Fatalf("churn catalog: %+v", c)
	}
	if !reflect.DeepEqual(sp.Services, []int{1000, 2000}) || sp.Order != OrderSteps || !slices.Contains(sp.Modes, ModeIPTables) || !slices.Contains(sp.Modes, ModeNFTables) ||
		!slices.Contains(sp.Modes, ModeIPVS) || !reflect.DeepEqual(sp.Load.RequestsPerConn, []int{1, 100}) || sp.Backends <= sp.EndpointsPerService {
		t.Errorf("churn catalog spec: %+v", sp)
	}
	if !strings.Contains(s.Metadata.Description, "minutes") {
		t.Error("the churn scenario does not state how long it takes")
	}
}

// TestGateOnChurn: a gate may name the churn metrics in a scenario with
// spec.churn; without it each is refused by name, beside any other error.
func TestGateOnChurn(t *testing.T) {
	gate := "  gate:\n    metrics: [connect, churn-stale-hits, churn-errors, churn-programming-p50, churn-programming-p99, churn-connect-in-sync]\n"
	if _, err := Parse(churnDoc("  services: [100]\n  backends: 20\n  churn:\n    rate: 10\n" + gate)); err != nil {
		t.Fatalf("a gate on churn metrics with churn: %v", err)
	}
	_, err := Parse(churnDoc("  services: [100]\n" + gate + "    services: [7]\n"))
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("err = %v, want an ErrorList", err)
	}
	var paths []string
	for _, e := range list {
		paths = append(paths, e.Path)
	}
	want := []string{"spec.gate.metrics[1]", "spec.gate.metrics[2]", "spec.gate.metrics[3]", "spec.gate.metrics[4]", "spec.gate.metrics[5]", "spec.gate.services[0]"}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("paths %v, want %v\n%v", paths, want, list)
	}
	if !strings.Contains(err.Error(), `"churn-stale-hits" is measured only on churn points and needs spec.churn`) {
		t.Errorf("err = %v, want why", err)
	}
}
