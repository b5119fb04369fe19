// Package build provides the lab's control-plane and node binaries — etcd,
// kube-apiserver and kube-proxy — for a pinned Kubernetes version. It builds
// them from source through the Go module proxy: a throwaway module requires
// k8s.io/kubernetes at that version, replaces every staging module the
// version's own go.mod lists with its published v0.Y.Z, and builds etcd's
// server at the version Kubernetes pins. Results are cached per version; a
// directory of binaries the user already has can be used instead.
package build

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/kpbench/kpbench/internal/flock"
)

// DefaultVersion is the Kubernetes version the lab runs unless told otherwise.
const DefaultVersion = "v1.36.3"

// The binaries the lab needs, by file name.
const (
	Etcd          = "etcd"
	KubeAPIServer = "kube-apiserver"
	KubeProxy     = "kube-proxy"
)

// Names lists the binaries the lab needs.
var Names = []string{Etcd, KubeAPIServer, KubeProxy}

// ErrBadVersion is wrapped when a Kubernetes version is not of the form
// v1.Y.Z (optionally with a pre-release suffix).
var ErrBadVersion = errors.New("bad Kubernetes version")

// ErrMissingBinary is wrapped when a binary directory lacks one of Names.
var ErrMissingBinary = errors.New("missing binary")

// stampFile records what a cache directory holds; its presence marks a
// complete build (it is written last, then the directory is renamed into
// place).
const stampFile = "kpbench-build.json"

// Binaries are the paths of the lab's executables.
type Binaries struct {
	Dir           string `json:"dir"`
	Etcd          string `json:"etcd"`
	KubeAPIServer string `json:"kubeAPIServer"`
	KubeProxy     string `json:"kubeProxy"`
	// Version is the Kubernetes version built, empty for user binaries.
	Version string `json:"version,omitempty"`
	// EtcdVersion is the etcd server module version built.
	EtcdVersion string `json:"etcdVersion,omitempty"`
	// Cached is true when the binaries came from the cache without a build.
	Cached bool `json:"-"`
}

// FromDir returns the binaries in dir, checking that each exists and is
// executable.
func FromDir(dir string) (Binaries, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Binaries{}, fmt.Errorf("binary directory %s: %w", dir, err)
	}
	b := Binaries{
		Dir:           abs,
		Etcd:          filepath.Join(abs, Etcd),
		KubeAPIServer: filepath.Join(abs, KubeAPIServer),
		KubeProxy:     filepath.Join(abs, KubeProxy),
	}
	var missing []string
	for _, p := range []string{b.Etcd, b.KubeAPIServer, b.KubeProxy} {
		st, err := os.Stat(p)
		if err != nil || st.IsDir() || st.Mode().Perm()&0o111 == 0 {
			missing = append(missing, filepath.Base(p))
		}
	}
	if len(missing) > 0 {
		return Binaries{}, fmt.Errorf("%s lacks executable %s: %w", abs, strings.Join(missing, ", "), ErrMissingBinary)
	}
	if data, err := os.ReadFile(filepath.Join(abs, stampFile)); err == nil {
		var stamp Binaries
		if json.Unmarshal(data, &stamp) == nil {
			b.Version, b.EtcdVersion = stamp.Version, stamp.EtcdVersion
		}
	}
	return b, nil
}

var versionRE = regexp.MustCompile(`^v1\.(\d+)\.(\d+)(-[0-9A-Za-z.-]+)?$`)

// StagingVersion returns the version the staging modules (k8s.io/api, ...)
// are published at for a Kubernetes version: v1.Y.Z → v0.Y.Z.
func StagingVersion(k8sVersion string) (string, error) {
	m := versionRE.FindStringSubmatch(k8sVersion)
	if m == nil {
		return "", fmt.Errorf("%q (want v1.Y.Z, e.g. %s): %w", k8sVersion, DefaultVersion, ErrBadVersion)
	}
	return "v0." + m[1] + "." + m[2] + m[3], nil
}

// Progress is a build's state, reported as it changes.
type Progress struct {
	// Phase is what the build is doing ("resolving modules", "compiling",
	// "done").
	Phase string
	// Done and Total count packages compiled in the compiling phase; Total
	// is zero when unknown. Packages already in Go's build cache are not
	// compiled again, so Done may stay below Total.
	Done, Total int
	// Package is the package that just finished compiling.
	Package string
	// Elapsed is the time since the build started.
	Elapsed time.Duration
}

// Options configure Ensure.
type Options struct {
	// Version is the Kubernetes version (default DefaultVersion).
	Version string
	// CacheDir is kpbench's cache root; binaries go to
	// CacheDir/k8s/<version>/. Default: the user cache dir + "/kpbench".
	CacheDir string
	// Go is the go command (default "go" from PATH).
	Go string
	// Force rebuilds even when the cache holds the version.
	Force bool
	// Logger receives phase messages; nil discards them.
	Logger *slog.Logger
	// Progress, if set, is called on every phase change and compiled package.
	Progress func(Progress)
	// Set is what to build; the zero Set is the lab's (LabSet).
	Set Set
}

// DefaultCacheDir is the user cache dir + "/kpbench".
func DefaultCacheDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding the user cache directory: %w", err)
	}
	return filepath.Join(dir, "kpbench"), nil
}

func (o *Options) defaults() error {
	if o.Version == "" {
		o.Version = DefaultVersion
	}
	if _, err := StagingVersion(o.Version); err != nil {
		return err
	}
	if o.CacheDir == "" {
		dir, err := DefaultCacheDir()
		if err != nil {
			return err
		}
		o.CacheDir = dir
	}
	if o.Go == "" {
		o.Go = "go"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Dir returns where the binaries of opts.Version (of opts.Set) are cached.
func (o Options) Dir() (string, error) {
	if err := o.defaults(); err != nil {
		return "", err
	}
	return filepath.Join(o.CacheDir, "k8s", o.Set.dirName(o.Version)), nil
}

// Cached returns the lab's cached binaries of opts.Version, if complete.
func Cached(opts Options) (Binaries, bool) {
	opts.Set = Set{}
	dir, ok := cachedDir(opts)
	if !ok {
		return Binaries{}, false
	}
	b, err := FromDir(dir)
	if err != nil {
		return Binaries{}, false
	}
	b.Cached = true
	return b, true
}

// Ensure returns the lab's binaries of opts.Version, building them first
// unless the cache holds them. Concurrent callers (other processes too)
// wait for one build rather than racing.
func Ensure(ctx context.Context, opts Options) (Binaries, error) {
	opts.Set = Set{}
	dir, cached, err := ensure(ctx, opts)
	if err != nil {
		return Binaries{}, err
	}
	b, err := FromDir(dir)
	if err != nil {
		return Binaries{}, err
	}
	b.Cached = cached
	return b, nil
}

// ensure returns the directory holding a complete build of opts.Set at
// opts.Version, building it under a lock unless the cache holds it.
func ensure(ctx context.Context, opts Options) (dir string, cached bool, err error) {
	if err := opts.defaults(); err != nil {
		return "", false, err
	}
	if !opts.Force {
		if dir, ok := cachedDir(opts); ok {
			return dir, true, nil
		}
	}
	root := filepath.Join(opts.CacheDir, "k8s")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", false, fmt.Errorf("creating cache directory: %w", err)
	}
	name := opts.Set.dirName(opts.Version)
	unlock, err := lockFile(ctx, filepath.Join(root, name+".lock"), opts.Logger)
	if err != nil {
		return "", false, err
	}
	defer unlock()
	if !opts.Force {
		if dir, ok := cachedDir(opts); ok { // another process built it meanwhile
			return dir, true, nil
		}
	}
	dir, err = build(ctx, opts, root)
	return dir, false, err
}

// cachedDir is the cache directory of opts when it holds a complete build
// of every binary of opts.Set.
func cachedDir(opts Options) (string, bool) {
	dir, err := opts.Dir()
	if err != nil {
		return "", false
	}
	if _, err := os.Stat(filepath.Join(dir, stampFile)); err != nil {
		return "", false
	}
	for _, n := range opts.Set.names() {
		st, err := os.Stat(filepath.Join(dir, n))
		if err != nil || st.IsDir() || st.Mode().Perm()&0o111 == 0 {
			return "", false
		}
	}
	return dir, true
}

// lockFile takes an exclusive flock on path, waiting until ctx is done.
func lockFile(ctx context.Context, path string, logger *slog.Logger) (func(), error) {
	return flock.Lock(ctx, path, 0o644, 500*time.Millisecond, func() {
		logger.Info("waiting for another kpbench process building the same version", "lock", path)
	})
}

// goMod is the part of `go mod edit -json` output the build reads.
type goMod struct {
	Go      string
	GoDebug []struct{ Key, Value string }
	Require []struct{ Path, Version string }
	Replace []struct {
		Old struct{ Path, Version string }
		New struct{ Path, Version string }
	}
}

// Plan is what a build compiles, derived from Kubernetes' go.mod.
type Plan struct {
	Version        string
	StagingVersion string
	EtcdVersion    string
	GoVersion      string
	GoDebug        []string
	// Staging lists the staging modules replaced with StagingVersion.
	Staging []string
}

// PlanFromGoMod derives a build plan from the `go mod edit -json` output of
// k8s.io/kubernetes' go.mod at version.
func PlanFromGoMod(version string, modJSON []byte) (Plan, error) {
	staging, err := StagingVersion(version)
	if err != nil {
		return Plan{}, err
	}
	var m goMod
	if err := json.Unmarshal(modJSON, &m); err != nil {
		return Plan{}, fmt.Errorf("decoding k8s.io/kubernetes %s go.mod: %w", version, err)
	}
	p := Plan{Version: version, StagingVersion: staging, GoVersion: m.Go}
	for _, d := range m.GoDebug {
		p.GoDebug = append(p.GoDebug, d.Key+"="+d.Value)
	}
	for _, r := range m.Replace {
		if strings.HasPrefix(r.New.Path, "./staging/") && r.New.Version == "" {
			p.Staging = append(p.Staging, r.Old.Path)
		}
	}
	for _, r := range m.Require {
		if r.Path == "go.etcd.io/etcd/server/v3" {
			p.EtcdVersion = r.Version
		}
	}
	if len(p.Staging) == 0 {
		return Plan{}, fmt.Errorf("k8s.io/kubernetes %s go.mod replaces no staging module; cannot build it as a dependency", version)
	}
	if p.EtcdVersion == "" {
		return Plan{}, fmt.Errorf("k8s.io/kubernetes %s go.mod does not pin go.etcd.io/etcd/server/v3", version)
	}
	return p, nil
}

// GoModFile renders the throwaway module's go.mod.
func (p Plan) GoModFile() string {
	var b strings.Builder
	b.WriteString("// Generated by kpbench to build Kubernetes " + p.Version + " binaries.\n")
	b.WriteString("module kpbench.local/k8sbuild\n\n")
	if p.GoVersion != "" {
		b.WriteString("go " + p.GoVersion + "\n\n")
	}
	for _, d := range p.GoDebug {
		b.WriteString("godebug " + d + "\n")
	}
	if len(p.GoDebug) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("require (\n")
	b.WriteString("\tgo.etcd.io/etcd/server/v3 " + p.EtcdVersion + "\n")
	b.WriteString("\tk8s.io/kubernetes " + p.Version + "\n")
	b.WriteString(")\n\nreplace (\n")
	for _, s := range p.Staging {
		b.WriteString("\t" + s + " => " + s + " " + p.StagingVersion + "\n")
	}
	b.WriteString(")\n")
	return b.String()
}

// Packages are the main packages the lab's build compiles, in the
// module's terms.
var Packages = LabSet.packages()

const etcdMain = `// Command etcd is etcd's server, built at the version Kubernetes pins.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
`

// LDFlags stamps the Kubernetes version into the binaries the way the
// Kubernetes release build does.
func LDFlags(version string) string {
	m := versionRE.FindStringSubmatch(version)
	if m == nil {
		return ""
	}
	pkg := "k8s.io/component-base/version"
	return strings.Join([]string{
		"-s", "-w",
		"-X " + pkg + ".gitVersion=" + version,
		"-X " + pkg + ".gitMajor=1",
		"-X " + pkg + ".gitMinor=" + m[1],
		"-X " + pkg + ".gitTreeState=clean",
	}, " ")
}

type builder struct {
	opts  Options
	start time.Time
	work  string
}

func (b *builder) report(p Progress) {
	p.Elapsed = time.Since(b.start)
	if b.opts.Progress != nil {
		b.opts.Progress(p)
	}
}

func (b *builder) phase(name string) {
	b.opts.Logger.Info("building Kubernetes binaries", "version", b.opts.Version, "phase", name, "elapsed", time.Since(b.start).Round(time.Second))
	b.report(Progress{Phase: name})
}

// goCmd runs the go command in the work directory; output goes to out (or
// is captured for the error when out is nil).
func (b *builder) goCmd(ctx context.Context, out io.Writer, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, b.opts.Go, args...)
	cmd.Dir = b.work
	cmd.Env = append(os.Environ(),
		"CGO_ENABLED=0", "GOWORK=off", "GO111MODULE=on", "GOTOOLCHAIN=local", "GOFLAGS=-mod=mod -buildvcs=false")
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	if out != nil {
		cmd.Stderr = io.MultiWriter(out, &stderr)
	} else {
		cmd.Stderr = &stderr
	}
	if err := cmd.Run(); err != nil {
		tail := stderr.String()
		if len(tail) > 4000 {
			tail = "..." + tail[len(tail)-4000:]
		}
		return stdout.Bytes(), fmt.Errorf("%s %s: %w\n%s", b.opts.Go, strings.Join(args, " "), err, tail)
	}
	return stdout.Bytes(), nil
}

func build(ctx context.Context, opts Options, root string) (string, error) {
	b := &builder{opts: opts, start: time.Now()}
	name := opts.Set.dirName(opts.Version)
	work, err := os.MkdirTemp(root, "build-"+name+"-")
	if err != nil {
		return "", fmt.Errorf("creating build directory: %w", err)
	}
	b.work = work
	defer os.RemoveAll(work)

	b.phase("downloading k8s.io/kubernetes " + opts.Version)
	out, err := b.goCmd(ctx, nil, "mod", "download", "-json", "k8s.io/kubernetes@"+opts.Version)
	if err != nil {
		return "", fmt.Errorf("downloading k8s.io/kubernetes %s: %w", opts.Version, err)
	}
	var dl struct{ GoMod, Error string }
	if err := json.Unmarshal(out, &dl); err != nil {
		return "", fmt.Errorf("decoding go mod download output: %w", err)
	}
	if dl.Error != "" || dl.GoMod == "" {
		return "", fmt.Errorf("downloading k8s.io/kubernetes %s: %s", opts.Version, dl.Error)
	}
	modJSON, err := b.goCmd(ctx, nil, "mod", "edit", "-json", dl.GoMod)
	if err != nil {
		return "", fmt.Errorf("reading k8s.io/kubernetes %s go.mod: %w", opts.Version, err)
	}
	plan, err := PlanFromGoMod(opts.Version, modJSON)
	if err != nil {
		return "", err
	}
	opts.Logger.Debug("build plan", "staging", len(plan.Staging), "stagingVersion", plan.StagingVersion, "etcd", plan.EtcdVersion, "go", plan.GoVersion)

	files := map[string]string{
		"go.mod":       plan.GoModFile(),
		"tools.go":     opts.Set.toolsGo(),
		"etcd/main.go": etcdMain,
	}
	for name, content := range files {
		p := filepath.Join(work, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", fmt.Errorf("writing build module: %w", err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return "", fmt.Errorf("writing build module: %w", err)
		}
	}

	b.phase("resolving modules")
	if _, err := b.goCmd(ctx, nil, "mod", "tidy"); err != nil {
		return "", fmt.Errorf("resolving modules for Kubernetes %s: %w", opts.Version, err)
	}
	deps, err := b.goCmd(ctx, nil, append([]string{"list", "-deps"}, opts.Set.packages()...)...)
	if err != nil {
		return "", fmt.Errorf("listing packages: %w", err)
	}
	total := bytes.Count(deps, []byte("\n"))

	b.phase("compiling")
	outDir := filepath.Join(work, "out")
	pr, pw := io.Pipe()
	counted := make(chan struct{})
	go func() {
		defer close(counted)
		done := 0
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			// -v prints one import path per compiled package; error output
			// has spaces or colons.
			if line == "" || strings.ContainsAny(line, " :") {
				continue
			}
			done++
			b.report(Progress{Phase: "compiling", Done: min(done, total), Total: total, Package: line})
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	_, err = b.goCmd(ctx, pw, append([]string{"build", "-v", "-trimpath", "-ldflags", LDFlags(opts.Version), "-o", outDir + "/"}, opts.Set.packages()...)...)
	pw.Close()
	<-counted
	if err != nil {
		return "", fmt.Errorf("compiling Kubernetes %s: %w", opts.Version, err)
	}

	stamp := Binaries{Version: opts.Version, EtcdVersion: plan.EtcdVersion}
	data, _ := json.MarshalIndent(stamp, "", "  ")
	if err := os.WriteFile(filepath.Join(outDir, stampFile), append(data, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("writing build stamp: %w", err)
	}
	final := filepath.Join(root, name)
	if err := os.RemoveAll(final); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("replacing %s: %w", final, err)
	}
	if err := os.Rename(outDir, final); err != nil {
		return "", fmt.Errorf("installing binaries into %s: %w", final, err)
	}
	b.report(Progress{Phase: "done", Done: total, Total: total})
	opts.Logger.Info("built Kubernetes binaries", "version", opts.Version, "etcd", plan.EtcdVersion, "dir", final, "elapsed", time.Since(b.start).Round(time.Second))
	return final, nil
}
