package nodeimage

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeTools puts scripts named after commands first on PATH (dir); each
// logs its arguments to dir/log.
func fakeTools(t *testing.T, tools map[string]string) (env []string, dir string) {
	t.Helper()
	dir = t.TempDir()
	log := filepath.Join(dir, "log")
	for name, body := range tools {
		script := "#!/bin/sh\necho \"" + name + " $*\" >>" + log + "\n" + body + "\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH")), dir
}

func runScript(t *testing.T, script string, env []string) (string, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "script.sh")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", p)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// ipFake answers `ip -4 -o addr show dev eth0 scope global` with addr and
// records the batch it is fed.
func ipFake(addr string) string {
	return `case "$1" in
-4) [ -n "` + addr + `" ] && echo "2: eth0    inet ` + addr + ` brd 10.89.0.255 scope global eth0\       valid_lft forever preferred_lft forever" ;;
-force) cat >>"$(dirname "$0")/batch" ;;
esac
exit 0`
}

func TestCNIScriptPlansTheNodesPodNetwork(t *testing.T) {
	env, tools := fakeTools(t, map[string]string{
		"ip":       ipFake("10.89.0.7/24"),
		"iptables": `case "$*" in *-C*) exit 1 ;; esac; exit 0`,
	})
	conf := t.TempDir()
	env = append(env, "KPBENCH_CNI_CONF_DIR="+conf)
	out, err := runScript(t, cniScript, env)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(conf, "10-kpbench.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	var cl struct {
		CNIVersion string
		Name       string
		Plugins    []struct {
			Type   string
			IPMasq bool
			IPAM   struct {
				Type   string
				Ranges [][]struct{ Subnet string }
			}
		}
	}
	if err := json.Unmarshal(raw, &cl); err != nil {
		t.Fatalf("conflist is not JSON: %v\n%s", err, raw)
	}
	if len(cl.Plugins) != 2 || cl.Plugins[0].Type != "ptp" || cl.Plugins[0].IPAM.Type != "host-local" || cl.Plugins[1].Type != "portmap" {
		t.Fatalf("plugins = %+v", cl.Plugins)
	}
	if got := cl.Plugins[0].IPAM.Ranges[0][0].Subnet; got != "10.244.7.0/24" {
		t.Errorf("node 10.89.0.7's pod subnet = %s, want 10.244.7.0/24", got)
	}
	batch, err := os.ReadFile(filepath.Join(tools, "batch"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(batch)), "\n")
	if len(lines) != 253 {
		t.Errorf("%d routes, want 253 (every other node of the /24)", len(lines))
	}
	if !strings.Contains(string(batch), "route replace 10.244.8.0/24 via 10.89.0.8 dev eth0\n") {
		t.Errorf("no route to node 8's pods:\n%s", lines[:3])
	}
	if strings.Contains(string(batch), "10.244.7.0/24") {
		t.Error("a route to the node's own pods")
	}
	logged, _ := os.ReadFile(filepath.Join(tools, "log"))
	if !strings.Contains(string(logged), "iptables -w -t nat -A POSTROUTING -s 10.244.0.0/16 ! -d 10.244.0.0/16 -j MASQUERADE") {
		t.Errorf("no masquerade rule appended:\n%s", logged)
	}
	if _, err := os.Stat(filepath.Join(conf, ".10-kpbench.conflist.tmp")); err == nil {
		t.Error("the temporary conflist was left behind")
	}
}

func TestCNIScriptKeepsAnExistingRule(t *testing.T) {
	env, tools := fakeTools(t, map[string]string{"ip": ipFake("10.89.0.2/16"), "iptables": "exit 0"})
	env = append(env, "KPBENCH_CNI_CONF_DIR="+t.TempDir())
	if out, err := runScript(t, cniScript, env); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	logged, _ := os.ReadFile(filepath.Join(tools, "log"))
	if strings.Contains(string(logged), " -A ") {
		t.Errorf("rule appended although -C found it:\n%s", logged)
	}
}

func TestCNIScriptRefuses(t *testing.T) {
	for name, addr := range map[string]string{"no address": "", "network narrower than /24": "10.89.0.7/25"} {
		t.Run(name, func(t *testing.T) {
			env, _ := fakeTools(t, map[string]string{"ip": ipFake(addr), "iptables": "exit 0"})
			conf := t.TempDir()
			env = append(env, "KPBENCH_CNI_CONF_DIR="+conf)
			out, err := runScript(t, cniScript, env)
			if err == nil {
				t.Fatalf("succeeded:\n%s", out)
			}
			if !strings.Contains(out, "kpbench-cni:") {
				t.Errorf("output does not say why: %s", out)
			}
			if _, err := os.Stat(filepath.Join(conf, "10-kpbench.conflist")); err == nil {
				t.Error("a conflist was written")
			}
		})
	}
}

func TestImportScriptImportsEveryArchive(t *testing.T) {
	env, tools := fakeTools(t, map[string]string{"ctr": "exit 0"})
	images := t.TempDir()
	for _, n := range []string{"etcd.tar", "pause.tar", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(images, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := runScript(t, importScript, append(env, "KPBENCH_IMAGES_DIR="+images))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	logged, _ := os.ReadFile(filepath.Join(tools, "log"))
	for _, n := range []string{"etcd.tar", "pause.tar"} {
		if !strings.Contains(string(logged), "ctr --namespace=k8s.io images import "+filepath.Join(images, n)+"\n") {
			t.Errorf("%s not imported into k8s.io:\n%s", n, logged)
		}
	}
	if strings.Contains(string(logged), "notes.txt") {
		t.Error("a non-archive was imported")
	}
}
