package lab

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestSplitCPUs(t *testing.T) {
	tests := []struct {
		name             string
		allowed, request []int
		node, other      []int
		wantErr          bool
	}{
		{name: "two cores default", allowed: []int{0, 1}, node: []int{1}, other: []int{0}},
		{name: "four cores default", allowed: []int{0, 1, 2, 3}, node: []int{3}, other: []int{0, 1, 2}},
		{name: "requested", allowed: []int{0, 1, 2, 3}, request: []int{2, 3}, node: []int{2, 3}, other: []int{0, 1}},
		{name: "single cpu unpinned", allowed: []int{0}},
		{name: "single cpu with request", allowed: []int{0}, request: []int{0}, wantErr: true},
		{name: "not allowed", allowed: []int{0, 1}, request: []int{5}, wantErr: true},
		{name: "all cpus", allowed: []int{0, 1}, request: []int{0, 1}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node, other, err := SplitCPUs(tt.allowed, tt.request)
			if tt.wantErr {
				if !errors.Is(err, ErrBadConfig) {
					t.Fatalf("SplitCPUs = %v, %v, %v; want ErrBadConfig", node, other, err)
				}
				return
			}
			if err != nil || !slices.Equal(node, tt.node) || !slices.Equal(other, tt.other) {
				t.Fatalf("SplitCPUs = %v, %v, %v; want %v, %v", node, other, err, tt.node, tt.other)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	err := Config{Name: "Bad-Name", K8sVersion: "1.36", Backends: 9999, ReadyTimeout: -1}.Validate()
	if !errors.Is(err, ErrBadConfig) {
		t.Fatalf("Validate = %v, want ErrBadConfig", err)
	}
	for _, want := range []string{"Bad-Name", "1.36", "9999", "negative"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error lacks %q: %v", want, err)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero Config invalid: %v", err)
	}
	if err := (Config{Name: "lab2", Backends: 250}).Validate(); err != nil {
		t.Errorf("valid Config rejected: %v", err)
	}
}

func TestBackendIP(t *testing.T) {
	tests := []struct {
		i    int
		want string
	}{{0, "198.18.1.1"}, {9, "198.18.1.10"}, {249, "198.18.1.250"}}
	for _, tt := range tests {
		if got := BackendIP(tt.i).String(); got != tt.want {
			t.Errorf("BackendIP(%d) = %s, want %s", tt.i, got, tt.want)
		}
		if !PodCIDR.Contains(BackendIP(tt.i)) {
			t.Errorf("BackendIP(%d) is outside the pod CIDR", tt.i)
		}
	}
	for _, a := range []netip.Addr{GatewayIP, APIServerIP, NodeIP} {
		if !PodCIDR.Contains(a) {
			t.Errorf("%s is outside the pod CIDR", a)
		}
	}
	if !ServiceCIDR.Contains(KubernetesIP) || PodCIDR.Overlaps(ServiceCIDR) {
		t.Error("address plan inconsistent")
	}
}

func TestCheckKpbenchBin(t *testing.T) {
	if err := checkKpbenchBin("/tmp/lab.test"); !errors.Is(err, ErrBadConfig) {
		t.Errorf("test binary accepted: %v", err)
	}
	if err := checkKpbenchBin("/nonexistent/kpbench"); !errors.Is(err, ErrBadConfig) {
		t.Errorf("missing binary accepted: %v", err)
	}
	if err := checkKpbenchBin("/bin/sh"); err != nil {
		t.Errorf("executable rejected: %v", err)
	}
}
