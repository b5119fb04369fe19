package lab

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"sigs.k8s.io/yaml"

	"github.com/kpbench/kpbench/clusters/kubeproxy"
	"github.com/kpbench/kpbench/scenarios"
)

func fakeMachine(missing []string, files []string, kernel string, cpus int) machine {
	proc := fstest.MapFS{"sys/kernel/osrelease": {Data: []byte(kernel + "\n")}}
	for _, f := range files {
		proc[strings.TrimPrefix(f, "/proc/")] = &fstest.MapFile{Data: []byte("IP Virtual Server version 1.2.1\n")}
	}
	return machine{
		lookPath: func(name string) (string, error) {
			for _, m := range missing {
				if m == name {
					return "", errors.New("not found")
				}
			}
			return "/usr/sbin/" + name, nil
		},
		ipvs:          func() (bool, string) { return kubeproxy.IPVSAvailableFS(proc, fstest.MapFS{}) },
		kernelRelease: kernel,
		cpus:          cpus,
	}
}

func TestCapabilities(t *testing.T) {
	tests := []struct {
		name    string
		m       machine
		runs    []scenarios.Mode
		refused map[scenarios.Mode]string // mode -> text the reason must hold
	}{
		{
			name:    "this kind of machine: no IP_VS",
			m:       fakeMachine(nil, nil, "6.18.44-fc-v657", 2),
			runs:    []scenarios.Mode{scenarios.ModeIPTables, scenarios.ModeNFTables},
			refused: map[scenarios.Mode]string{scenarios.ModeIPVS: "IP_VS"},
		},
		{
			name: "ipvs kernel and tools",
			m:    fakeMachine(nil, []string{"/proc/net/ip_vs"}, "6.1.0", 4),
			runs: []scenarios.Mode{scenarios.ModeIPTables, scenarios.ModeNFTables, scenarios.ModeIPVS},
		},
		{
			name:    "ipvs kernel without ipset",
			m:       fakeMachine([]string{"ipset"}, []string{"/proc/net/ip_vs"}, "6.1.0", 2),
			runs:    []scenarios.Mode{scenarios.ModeIPTables, scenarios.ModeNFTables},
			refused: map[scenarios.Mode]string{scenarios.ModeIPVS: "ipset"},
		},
		{
			name: "no nft, old kernel, one CPU",
			m:    fakeMachine([]string{"nft"}, nil, "5.10.0-28-amd64", 1),
			runs: []scenarios.Mode{scenarios.ModeIPTables},
			refused: map[scenarios.Mode]string{
				scenarios.ModeNFTables: "missing nft",
				scenarios.ModeIPVS:     "IP_VS",
			},
		},
		{
			name: "nft present, kernel too old",
			m:    fakeMachine(nil, nil, "5.10.0", 2),
			runs: []scenarios.Mode{scenarios.ModeIPTables},
			refused: map[scenarios.Mode]string{
				scenarios.ModeNFTables: "5.13",
			},
		},
		{
			name: "no iptables",
			m:    fakeMachine([]string{"iptables-restore"}, nil, "6.6.0", 2),
			runs: []scenarios.Mode{scenarios.ModeNFTables},
			refused: map[scenarios.Mode]string{
				scenarios.ModeIPTables: "iptables-restore",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caps := capabilities(tt.m)
			for _, m := range tt.runs {
				if ok, reason := caps.Runnable(m); !ok {
					t.Errorf("%s refused: %s", m, reason)
				}
			}
			for m, want := range tt.refused {
				ok, reason := caps.Runnable(m)
				if ok || !strings.Contains(reason, want) {
					t.Errorf("Runnable(%s) = %v, %q; want refused mentioning %q", m, ok, reason, want)
				}
			}
			if ok, _ := caps.Runnable(scenarios.ModeExternal); ok {
				t.Error("the lab claims to run an external dataplane")
			}
		})
	}
}

func TestKubeProxyConfig(t *testing.T) {
	for _, mode := range []scenarios.Mode{scenarios.ModeIPTables, scenarios.ModeNFTables, scenarios.ModeIPVS} {
		t.Run(string(mode), func(t *testing.T) {
			data, err := kubeProxyConfig(mode, "/x/kube-proxy.kubeconfig")
			if err != nil {
				t.Fatal(err)
			}
			var cfg kubeProxyConfiguration
			if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
				t.Fatalf("kube-proxy would reject its configuration: %v\n%s", err, data)
			}
			if cfg.Kind != "KubeProxyConfiguration" || cfg.APIVersion != "kubeproxy.config.k8s.io/v1alpha1" ||
				cfg.Mode != string(mode) || cfg.ClusterCIDR != "198.18.0.0/16" ||
				cfg.HostnameOverride != NodeName || cfg.MetricsBindAddress != "0.0.0.0:10249" ||
				cfg.ClientConnection.Kubeconfig != "/x/kube-proxy.kubeconfig" {
				t.Errorf("config = %s", data)
			}
			if len(cfg.NodePortAddresses) != 1 || cfg.NodePortAddresses[0] != "primary" {
				t.Errorf("nodePortAddresses = %v", cfg.NodePortAddresses)
			}
			if cfg.Conntrack.MaxPerCore == nil || *cfg.Conntrack.MaxPerCore != 0 {
				t.Error("conntrack.maxPerCore must be 0: the global conntrack sysctl is read-only in a namespace")
			}
		})
	}
}
