package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNodeToolUsesTheLabsBackend(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink("/usr/sbin/xtables-legacy-multi", filepath.Join(dir, "iptables-save")); err != nil {
		t.Fatal(err)
	}
	st := &State{IPTablesDir: dir}
	for _, c := range []struct{ name, want string }{
		{"iptables-save", filepath.Join(dir, "iptables-save")},
		{"nft", "nft"},
		{"/usr/sbin/iptables-save", "/usr/sbin/iptables-save"},
	} {
		if got := nodeTool(st, c.name); got != c.want {
			t.Errorf("nodeTool(%q) = %q, want %q", c.name, got, c.want)
		}
	}
	if got := nodeTool(&State{}, "iptables-save"); got != "iptables-save" {
		t.Errorf("without a backend: %q", got)
	}
	env := strings.Join(nodeEnv(st), "\n")
	if !strings.Contains(env, "PATH="+dir+":") {
		t.Errorf("kube-proxy's PATH does not start with the backend's directory:\n%s", env)
	}
	if nodeEnv(&State{}) != nil {
		t.Error("without a backend the environment should be inherited as it is")
	}
}

func TestValidIPTablesBackend(t *testing.T) {
	for _, b := range []string{"", IPTablesNFT, IPTablesLegacy} {
		if err := validIPTablesBackend(b); err != nil {
			t.Errorf("%q: %v", b, err)
		}
	}
	if err := (Config{IPTablesBackend: "ebtables", Node: NodeVM}).Validate(); err == nil || !strings.Contains(err.Error(), `"ebtables"`) {
		t.Errorf("a bad backend: %v", err)
	}
	if err := (Config{IPTablesBackend: IPTablesLegacy, Node: NodeVM}).Validate(); err == nil || !strings.Contains(err.Error(), "netns") {
		t.Errorf("legacy with the VM node: %v", err)
	}
}
