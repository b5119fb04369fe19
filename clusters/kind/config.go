package kind

import (
	"errors"
	"fmt"
	"strings"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"

	"github.com/kpbench/kpbench/clusters/manifests"
	"github.com/kpbench/kpbench/scenarios"
)

// Topology is the shape of a kpbench kind cluster.
type Topology struct {
	// ClientNodes run kube-proxy under test, the CPU agent and the load
	// clients (default 1; more for multi-client load).
	ClientNodes int
	// ServerNodes run the backends (default 1).
	ServerNodes int
	// NodeImage is the node image: a reference, NodeImageOffline for
	// kpbench's own (`kpbench image node`), or "" to pick (kind's default
	// where it can be had, else kpbench's).
	NodeImage string
	// Offline marks kpbench's node image: it has no kindnetd, so kind's
	// default CNI is disabled (the node sets up its own pod network).
	Offline bool
	// CgroupV1 marks a host with cgroup v1: the kubelet (1.35 and later)
	// then needs failCgroupV1: false.
	CgroupV1 bool
}

// withDefaults fills the zero fields.
func (t Topology) withDefaults() Topology {
	if t.ClientNodes == 0 {
		t.ClientNodes = 1
	}
	if t.ServerNodes == 0 {
		t.ServerNodes = 1
	}
	return t
}

// validate reports every problem at once.
func (t Topology) validate() error {
	var errs []error
	if t.ClientNodes < 1 {
		errs = append(errs, fmt.Errorf("client nodes must be at least 1, got %d", t.ClientNodes))
	}
	if t.ServerNodes < 1 {
		errs = append(errs, fmt.Errorf("server nodes (--workers) must be at least 1, got %d", t.ServerNodes))
	}
	if t.ClientNodes+t.ServerNodes > 50 {
		errs = append(errs, fmt.Errorf("%d nodes is more than a kind cluster on one machine should hold (50)", t.ClientNodes+t.ServerNodes))
	}
	if t.Offline && (t.NodeImage == "" || t.NodeImage == NodeImageOffline) {
		errs = append(errs, errors.New("an offline node image needs its reference (kpbench image node prints it)"))
	}
	if t.NodeImage != "" && strings.ContainsAny(t.NodeImage, " \t\n") {
		errs = append(errs, fmt.Errorf("node image %q contains whitespace", t.NodeImage))
	}
	return errors.Join(errs...)
}

// KindProxyMode maps a kpbench mode to kind's networking.kubeProxyMode.
// ModeExternal has no kind equivalent (kind runs kube-proxy).
func KindProxyMode(mode scenarios.Mode) (v1alpha4.ProxyMode, error) {
	switch mode {
	case scenarios.ModeIPTables:
		return v1alpha4.IPTablesProxyMode, nil
	case scenarios.ModeIPVS:
		return v1alpha4.IPVSProxyMode, nil
	case scenarios.ModeNFTables:
		return v1alpha4.NFTablesProxyMode, nil
	case scenarios.ModeExternal:
		return "", fmt.Errorf("mode external measures a kube-proxy replacement on an existing cluster; a kind cluster runs kube-proxy (use iptables, ipvs or nftables)")
	default:
		return "", fmt.Errorf("unknown mode %q (want iptables, ipvs or nftables)", mode)
	}
}

// KubeletCgroupV1Patch is the kubeadm config patch that lets the kubelet
// (1.35 and later) run on a cgroup v1 host.
const KubeletCgroupV1Patch = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
`

// Config is the v1alpha4 kind config of a kpbench cluster: one
// control-plane, ClientNodes workers labelled kpbench.io/role=client and
// ServerNodes workers labelled kpbench.io/role=server, with kube-proxy in
// mode. An Offline node image gets kind's default CNI disabled; a cgroup
// v1 host, KubeletCgroupV1Patch.
func Config(mode scenarios.Mode, topo Topology) (*v1alpha4.Cluster, error) {
	topo = topo.withDefaults()
	pm, err := KindProxyMode(mode)
	if err := errors.Join(err, topo.validate()); err != nil {
		return nil, fmt.Errorf("kind config: %w", err)
	}
	if topo.NodeImage == NodeImageOffline {
		return nil, errors.New("kind config: the offline node image must be resolved to its reference first")
	}
	cfg := &v1alpha4.Cluster{
		TypeMeta: v1alpha4.TypeMeta{Kind: "Cluster", APIVersion: "kind.x-k8s.io/v1alpha4"},
		Nodes:    []v1alpha4.Node{{Role: v1alpha4.ControlPlaneRole, Image: topo.NodeImage}},
		Networking: v1alpha4.Networking{
			KubeProxyMode:     pm,
			DisableDefaultCNI: topo.Offline,
		},
	}
	if topo.CgroupV1 {
		cfg.KubeadmConfigPatches = []string{KubeletCgroupV1Patch}
	}
	for i := 0; i < topo.ClientNodes; i++ {
		cfg.Nodes = append(cfg.Nodes, v1alpha4.Node{
			Role:   v1alpha4.WorkerRole,
			Image:  topo.NodeImage,
			Labels: map[string]string{manifests.LabelRole: manifests.RoleClient},
		})
	}
	for i := 0; i < topo.ServerNodes; i++ {
		cfg.Nodes = append(cfg.Nodes, v1alpha4.Node{
			Role:   v1alpha4.WorkerRole,
			Image:  topo.NodeImage,
			Labels: map[string]string{manifests.LabelRole: manifests.RoleServer},
		})
	}
	return cfg, nil
}

// ConfigYAML renders cfg as the YAML `kind create cluster --config`
// reads.
func ConfigYAML(cfg *v1alpha4.Cluster) ([]byte, error) {
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("rendering kind config: %w", err)
	}
	return b, nil
}
