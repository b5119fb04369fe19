package nodeimage

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
)

// Rootfs is an index of a root filesystem tarball (mmdebstrap's output):
// every entry's header, and the content of the few files the build reads
// (dpkg's database and the default OCI spec).
type Rootfs struct {
	// Path is the tarball.
	Path string
	// Headers maps a clean absolute path to its entry's header.
	Headers map[string]*tar.Header
	// Files holds the content of the files read: dpkg's status, its
	// *.list files and DefaultSpecPath.
	Files map[string][]byte
}

// DefaultSpecPath is where the root filesystem build leaves `ctr oci
// spec`'s output (see RootfsHooks).
const DefaultSpecPath = "/etc/containerd/cri-base.default.json"

const (
	dpkgStatus = "/var/lib/dpkg/status"
	dpkgInfo   = "/var/lib/dpkg/info/"
)

// cleanName is a tar entry's name as a clean absolute path.
func cleanName(name string) string {
	return path.Clean("/" + strings.TrimPrefix(name, "./"))
}

// ReadRootfs indexes the root filesystem tarball at p.
func ReadRootfs(p string) (*Rootfs, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := &Rootfs{Path: p, Headers: map[string]*tar.Header{}, Files: map[string][]byte{}}
	tr := tar.NewReader(bufio.NewReaderSize(f, 1<<20))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		name := cleanName(hdr.Name)
		r.Headers[name] = hdr
		if name == dpkgStatus || name == DefaultSpecPath || (strings.HasPrefix(name, dpkgInfo) && strings.HasSuffix(name, ".list")) {
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, fmt.Errorf("reading %s from %s: %w", name, p, err)
			}
			r.Files[name] = b
		}
	}
	if r.Files[dpkgStatus] == nil {
		return nil, fmt.Errorf("%s has no %s: not a Debian root filesystem", p, dpkgStatus)
	}
	return r, nil
}

// Package is a package of dpkg's status file.
type Package struct {
	Name string
	// Depends holds Pre-Depends and Depends: each element lists the
	// alternatives (a | b), by package name.
	Depends  [][]string
	Provides []string
}

// ParseStatus reads dpkg's status file: the installed packages by name.
func ParseStatus(status []byte) map[string]Package {
	pkgs := map[string]Package{}
	for _, para := range bytes.Split(status, []byte("\n\n")) {
		fields := map[string]string{}
		var key string
		for _, line := range strings.Split(string(para), "\n") {
			if line == "" {
				continue
			}
			if line[0] == ' ' || line[0] == '\t' {
				if key != "" {
					fields[key] += " " + strings.TrimSpace(line)
				}
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			key = k
			fields[k] = strings.TrimSpace(v)
		}
		if fields["Package"] == "" || !strings.HasSuffix(fields["Status"], " installed") {
			continue
		}
		p := Package{Name: fields["Package"]}
		for _, f := range []string{"Pre-Depends", "Depends"} {
			p.Depends = append(p.Depends, parseRelations(fields[f])...)
		}
		for _, alt := range parseRelations(fields["Provides"]) {
			p.Provides = append(p.Provides, alt...)
		}
		pkgs[p.Name] = p
	}
	return pkgs
}

// parseRelations parses "a (>= 1), b:any | c" into [[a] [b c]].
func parseRelations(s string) [][]string {
	var out [][]string
	for _, rel := range strings.Split(s, ",") {
		var alts []string
		for _, alt := range strings.Split(rel, "|") {
			f := strings.Fields(alt)
			if len(f) == 0 {
				continue
			}
			name, _, _ := strings.Cut(f[0], ":")
			name, _, _ = strings.Cut(name, "(")
			if name != "" {
				alts = append(alts, name)
			}
		}
		if len(alts) > 0 {
			out = append(out, alts)
		}
	}
	return out
}

// Closure is roots and every installed package they depend on, sorted.
// Of alternatives the first installed one (or one that provides it) is
// taken; an uninstalled alternative-less dependency is left out, as dpkg
// would have refused it. A root that is not installed is an error.
func Closure(pkgs map[string]Package, roots []string) ([]string, error) {
	providers := map[string]string{}
	names := make([]string, 0, len(pkgs))
	for n := range pkgs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for _, v := range pkgs[n].Provides {
			if _, ok := providers[v]; !ok {
				providers[v] = n
			}
		}
	}
	resolve := func(name string) (string, bool) {
		if _, ok := pkgs[name]; ok {
			return name, true
		}
		p, ok := providers[name]
		return p, ok
	}
	var missing []string
	seen := map[string]bool{}
	var queue []string
	for _, r := range roots {
		n, ok := resolve(r)
		if !ok {
			missing = append(missing, r)
			continue
		}
		if !seen[n] {
			seen[n] = true
			queue = append(queue, n)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("not installed in the root filesystem: %s", strings.Join(missing, ", "))
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, alts := range pkgs[n].Depends {
			for _, a := range alts {
				if d, ok := resolve(a); ok {
					if !seen[d] {
						seen[d] = true
						queue = append(queue, d)
					}
					break
				}
			}
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// skippedPrefixes are package files an image of binaries does not need.
var skippedPrefixes = []string{"/usr/share/doc/", "/usr/share/man/", "/usr/share/info/", "/usr/share/locale/", "/usr/share/lintian/", "/usr/share/bug/"}

// resolve follows the symlinked directories on the way to p (merged-usr
// /lib → usr/lib, say) and returns the path the entry really has, with the
// symlinks it went through.
func (r *Rootfs) resolve(p string) (string, []string) {
	var via []string
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	cur := "/"
	for i, part := range parts {
		next := path.Join(cur, part)
		hdr := r.Headers[next]
		last := i == len(parts)-1
		for hops := 0; !last && hdr != nil && hdr.Typeflag == tar.TypeSymlink && hops < 16; hops++ {
			via = append(via, next)
			t := hdr.Linkname
			if !path.IsAbs(t) {
				t = path.Join(path.Dir(next), t)
			}
			next = path.Clean(t)
			hdr = r.Headers[next]
		}
		cur = next
	}
	return cur, via
}

// PackageFiles lists the paths the packages install that the root
// filesystem holds (dpkg's *.list files), resolved through symlinked
// directories, with those directory symlinks and the targets of hard
// links; documentation is left out.
func (r *Rootfs) PackageFiles(pkgs []string) ([]string, error) {
	want := map[string]bool{}
	var missing []string
	for _, p := range pkgs {
		list, ok := r.Files[dpkgInfo+p+".list"]
		if !ok {
			// Multi-arch packages name their list after the architecture.
			for name, b := range r.Files {
				if strings.HasPrefix(name, dpkgInfo+p+":") && strings.HasSuffix(name, ".list") {
					list, ok = b, true
					break
				}
			}
		}
		if !ok {
			missing = append(missing, p)
			continue
		}
		for _, line := range strings.Split(string(list), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || line == "/." {
				continue
			}
			resolved, via := r.resolve(path.Clean(line))
			if skipped(resolved) {
				continue
			}
			hdr, ok := r.Headers[resolved]
			if !ok {
				continue // diverted or removed by a maintainer script
			}
			want[resolved] = true
			for _, v := range via {
				want[v] = true
			}
			if hdr.Typeflag == tar.TypeLink {
				want[cleanName(hdr.Linkname)] = true
			}
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s: no dpkg file list for %s", r.Path, strings.Join(missing, ", "))
	}
	out := make([]string, 0, len(want))
	for p := range want {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

func skipped(p string) bool {
	for _, s := range skippedPrefixes {
		if strings.HasPrefix(p+"/", s) {
			return true
		}
	}
	return false
}

// CopyFiles writes the entries of the root filesystem tarball whose paths
// are in paths, in the tarball's order (a hard link after its target),
// to tw, each with the directories above it that are not in paths as
// root-owned 0755 directories.
func (r *Rootfs) CopyFiles(tw *tar.Writer, paths []string) error {
	want := map[string]bool{}
	for _, p := range paths {
		want[p] = true
	}
	f, err := os.Open(r.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(bufio.NewReaderSize(f, 1<<20))
	dirs := map[string]bool{"/": true}
	var ensureDir func(p string) error
	ensureDir = func(p string) error {
		if dirs[p] {
			return nil
		}
		if err := ensureDir(path.Dir(p)); err != nil {
			return err
		}
		dirs[p] = true
		mode := int64(0o755)
		if h := r.Headers[p]; h != nil && h.Typeflag == tar.TypeDir {
			mode = h.Mode
		}
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(p, "/") + "/", Mode: mode, ModTime: epoch, Format: tar.FormatPAX})
	}
	found := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", r.Path, err)
		}
		name := cleanName(hdr.Name)
		if !want[name] {
			continue
		}
		found++
		if err := ensureDir(path.Dir(name)); err != nil {
			return err
		}
		out := &tar.Header{
			Typeflag: hdr.Typeflag, Name: strings.TrimPrefix(name, "/"), Linkname: hdr.Linkname,
			Mode: hdr.Mode, Uid: hdr.Uid, Gid: hdr.Gid, Size: hdr.Size, ModTime: epoch, Format: tar.FormatPAX,
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if dirs[name] {
				continue
			}
			dirs[name] = true
			out.Name += "/"
		case tar.TypeLink:
			out.Linkname = strings.TrimPrefix(cleanName(hdr.Linkname), "/")
			out.Size = 0
		case tar.TypeReg, tar.TypeSymlink:
		default:
			continue // devices, fifos: not in an image of binaries
		}
		if err := tw.WriteHeader(out); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := io.Copy(tw, tr); err != nil {
				return err
			}
		}
	}
	if found != len(want) {
		var lost []string
		for p := range want {
			if _, ok := r.Headers[p]; !ok {
				lost = append(lost, p)
			}
		}
		slices.Sort(lost)
		if len(lost) > 0 {
			return errors.New("the root filesystem lacks " + strings.Join(lost, ", "))
		}
	}
	return nil
}
