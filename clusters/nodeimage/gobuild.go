package nodeimage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// GoProgram is a small Go program built through the Go module proxy from
// a throwaway module kpbench writes.
type GoProgram struct {
	// Name is the binary's name.
	Name string
	// Files are the module's files (go.mod, main.go, ...).
	Files map[string]string
	// LDFlags are passed to go build.
	LDFlags string
}

// Key is a digest of the program's sources and flags: its cache key.
func (p GoProgram) Key() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", p.Name, p.LDFlags)
	names := make([]string, 0, len(p.Files))
	for n := range p.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(h, "%s %d\n%s", n, len(p.Files[n]), p.Files[n])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// pauseMain is the pod sandbox's process: it sleeps until told to stop
// and reaps the zombies of a pod that shares its PID namespace, as
// Kubernetes' own pause does.
const pauseMain = `// Command pause holds a pod's namespaces until the pod is deleted.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Println("pause (kpbench)")
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "Warning: pause should be the first process")
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			fmt.Fprintf(os.Stderr, "Shutting down, got signal: %v\n", s)
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
`

// PauseProgram is the pause binary of the sandbox image.
func PauseProgram() GoProgram {
	return GoProgram{
		Name: "pause",
		Files: map[string]string{
			"go.mod":  "module kpbench.local/pause\n\ngo 1.24.0\n",
			"main.go": pauseMain,
		},
		LDFlags: "-s -w",
	}
}

// corednsPlugins are the plugins of kubeadm's Corefile, in the order of
// CoreDNS's plugin.cfg (the order a server chains them in): errors,
// health, ready, kubernetes, prometheus, forward, cache, loop, reload,
// loadbalance, and log for debugging.
var corednsPlugins = []struct{ directive, pkg string }{
	{"reload", "reload"},
	{"ready", "ready"},
	{"health", "health"},
	{"prometheus", "metrics"},
	{"errors", "errors"},
	{"log", "log"},
	{"loadbalance", "loadbalance"},
	{"cache", "cache"},
	{"kubernetes", "kubernetes"},
	{"loop", "loop"},
	{"forward", "forward"},
}

// CoreDNSProgram is CoreDNS at version with only the plugins kubeadm's
// Corefile uses (CoreDNS's documented way of building with a plugin
// subset from outside its tree): the cloud providers' plugins and their
// SDKs stay out of the build.
func CoreDNSProgram(version string) GoProgram {
	var imports, directives strings.Builder
	for _, p := range corednsPlugins {
		imports.WriteString("\t_ \"github.com/coredns/coredns/plugin/" + p.pkg + "\"\n")
		directives.WriteString("\t\"" + p.directive + "\",\n")
	}
	main := `// Command coredns is CoreDNS with the plugins of kubeadm's Corefile.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

` + imports.String() + `)

var directives = []string{
` + directives.String() + `}

func init() { dnsserver.Directives = directives }

func main() { coremain.Run() }
`
	return GoProgram{
		Name: "coredns",
		Files: map[string]string{
			"go.mod":  "module kpbench.local/coredns\n\ngo 1.24.0\n\nrequire github.com/coredns/coredns " + version + "\n",
			"main.go": main,
		},
		LDFlags: "-s -w",
	}
}

// GoBuilder builds GoPrograms into a cache directory.
type GoBuilder struct {
	// Go is the go command.
	Go string
	// CacheDir holds the built binaries: CacheDir/<name>-<key>/<name>.
	CacheDir string
}

// Path is where p's binary is cached.
func (b GoBuilder) Path(p GoProgram) string {
	return filepath.Join(b.CacheDir, p.Name+"-"+p.Key(), p.Name)
}

// Ensure returns p's binary, building it unless cached.
func (b GoBuilder) Ensure(ctx context.Context, p GoProgram) (string, error) {
	out := b.Path(p)
	if st, err := os.Stat(out); err == nil && st.Mode().IsRegular() {
		return out, nil
	}
	if err := os.MkdirAll(b.CacheDir, 0o755); err != nil {
		return "", err
	}
	work, err := os.MkdirTemp(b.CacheDir, "build-"+p.Name+"-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	for n, content := range p.Files {
		if err := os.WriteFile(filepath.Join(work, n), []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	goCmd := b.Go
	if goCmd == "" {
		goCmd = "go"
	}
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, goCmd, args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GO111MODULE=on", "GOTOOLCHAIN=local", "GOFLAGS=-mod=mod -buildvcs=false")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			tail := stderr.String()
			if len(tail) > 4000 {
				tail = "..." + tail[len(tail)-4000:]
			}
			return fmt.Errorf("building %s: %s %s: %w\n%s", p.Name, goCmd, strings.Join(args, " "), err, tail)
		}
		return nil
	}
	if err := run("mod", "tidy"); err != nil {
		return "", err
	}
	bin := filepath.Join(work, p.Name)
	if err := run("build", "-trimpath", "-ldflags", p.LDFlags, "-o", bin, "."); err != nil {
		return "", err
	}
	final := filepath.Dir(out)
	if err := os.MkdirAll(filepath.Join(work, "out"), 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(bin, filepath.Join(work, "out", p.Name)); err != nil {
		return "", err
	}
	if err := os.RemoveAll(final); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if err := os.Rename(filepath.Join(work, "out"), final); err != nil {
		return "", err
	}
	return out, nil
}
