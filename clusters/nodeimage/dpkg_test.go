package nodeimage

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const statusFixture = `Package: iptables
Status: install ok installed
Depends: libc6 (>= 2.34), libxtables12 (= 1.8.9-2), netbase
Provides: iptables-legacy

Package: libxtables12
Status: install ok installed
Multi-Arch: same
Depends: libc6 (>= 2.14)

Package: libc6
Status: install ok installed
Depends: libgcc-s1
Recommends: libidn2-0

Package: libgcc-s1
Status: install ok installed
Pre-Depends: gcc-12-base:any (= 12.2.0-14)

Package: gcc-12-base
Status: install ok installed

Package: netbase
Status: install ok installed

Package: nftables
Status: install ok installed
Depends: libnftables1 (= 1.0.6-2+deb12u2),
 libc6 (>= 2.34), libedit2 | libreadline8

Package: libnftables1
Status: install ok installed
Depends: libjansson4 (>= 2.14), mawk | awk

Package: libjansson4
Status: install ok installed

Package: libreadline8
Status: install ok installed

Package: mawk
Status: install ok installed
Provides: awk

Package: removed-one
Status: deinstall ok config-files
Depends: netbase
`

func TestParseStatus(t *testing.T) {
	pkgs := ParseStatus([]byte(statusFixture))
	if _, ok := pkgs["removed-one"]; ok {
		t.Error("a removed package counts as installed")
	}
	if got := pkgs["nftables"].Depends; !reflect.DeepEqual(got, [][]string{{"libnftables1"}, {"libc6"}, {"libedit2", "libreadline8"}}) {
		t.Errorf("nftables depends (continuation line, alternatives) = %v", got)
	}
	if got := pkgs["libgcc-s1"].Depends; !reflect.DeepEqual(got, [][]string{{"gcc-12-base"}}) {
		t.Errorf("libgcc-s1 pre-depends (:any, version) = %v", got)
	}
	if got := pkgs["mawk"].Provides; !reflect.DeepEqual(got, []string{"awk"}) {
		t.Errorf("mawk provides %v", got)
	}
}

func TestClosure(t *testing.T) {
	pkgs := ParseStatus([]byte(statusFixture))
	got, err := Closure(pkgs, []string{"iptables", "nftables"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"gcc-12-base", "iptables", "libc6", "libgcc-s1", "libjansson4", "libnftables1", "libreadline8", "libxtables12", "mawk", "netbase", "nftables"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("closure = %v\nwant      %v\n(libedit2 is not installed: its alternative libreadline8 is taken; awk is provided by mawk; Recommends are not followed)", got, want)
	}
	if _, err := Closure(pkgs, []string{"iptables", "ipset", "conntrack"}); err == nil || !strings.Contains(err.Error(), "ipset, conntrack") {
		t.Errorf("missing roots: %v", err)
	}
	// A virtual root resolves to its provider.
	if got, err := Closure(pkgs, []string{"awk"}); err != nil || !reflect.DeepEqual(got, []string{"mawk"}) {
		t.Errorf("closure of awk = %v, %v", got, err)
	}
}

type tarEntry struct {
	name     string
	typ      byte
	link     string
	content  string
	mode     int64
	uid, gid int
}

func writeTar(t *testing.T, entries []tarEntry) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
			if e.typ == tar.TypeDir {
				mode = 0o755
			}
		}
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: mode, Size: int64(len(e.content)), Uid: e.uid, Gid: e.gid}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.content)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// mergedUsrRootfs is a tiny Debian-like root filesystem as mmdebstrap
// writes it: ./-prefixed names, merged /usr, dpkg's database.
func mergedUsrRootfs(t *testing.T, withLegacy bool) string {
	status := `Package: iptables
Status: install ok installed
Depends: libc6

Package: nftables
Status: install ok installed
Depends: libc6

Package: ipset
Status: install ok installed

Package: conntrack
Status: install ok installed

Package: libc6
Status: install ok installed

Package: bash
Status: install ok installed
`
	entries := []tarEntry{
		{name: "./", typ: tar.TypeDir},
		{name: "./usr/", typ: tar.TypeDir},
		{name: "./usr/lib/", typ: tar.TypeDir},
		{name: "./usr/lib/x86_64-linux-gnu/", typ: tar.TypeDir},
		{name: "./usr/lib64/", typ: tar.TypeDir},
		{name: "./usr/sbin/", typ: tar.TypeDir},
		{name: "./usr/share/", typ: tar.TypeDir},
		{name: "./usr/share/doc/", typ: tar.TypeDir},
		{name: "./usr/share/doc/iptables/", typ: tar.TypeDir},
		{name: "./usr/share/doc/iptables/copyright", typ: tar.TypeReg, content: "GPL"},
		{name: "./lib", typ: tar.TypeSymlink, link: "usr/lib"},
		{name: "./lib64", typ: tar.TypeSymlink, link: "usr/lib64"},
		{name: "./sbin", typ: tar.TypeSymlink, link: "usr/sbin"},
		{name: "./etc/", typ: tar.TypeDir},
		{name: "./etc/ld.so.cache", typ: tar.TypeReg, content: "cache"},
		{name: "./usr/lib/x86_64-linux-gnu/libc.so.6", typ: tar.TypeReg, content: "libc", mode: 0o755},
		{name: "./usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", typ: tar.TypeReg, content: "ld", mode: 0o755},
		{name: "./usr/lib64/ld-linux-x86-64.so.2", typ: tar.TypeSymlink, link: "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
		{name: "./usr/sbin/xtables-nft-multi", typ: tar.TypeReg, content: "nft-multi", mode: 0o755},
		{name: "./usr/sbin/iptables-nft", typ: tar.TypeSymlink, link: "xtables-nft-multi"},
		{name: "./usr/sbin/nft", typ: tar.TypeReg, content: "nft", mode: 0o755},
		{name: "./usr/sbin/ipset", typ: tar.TypeReg, content: "ipset", mode: 0o755},
		{name: "./usr/sbin/conntrack", typ: tar.TypeReg, content: "conntrack", mode: 0o755},
		{name: "./usr/sbin/conntrack-hard", typ: tar.TypeLink, link: "./usr/sbin/conntrack"},
		{name: "./usr/bin/", typ: tar.TypeDir},
		{name: "./usr/bin/bash", typ: tar.TypeReg, content: "bash", mode: 0o755},
		{name: "./dev/", typ: tar.TypeDir},
		{name: "./dev/null", typ: tar.TypeChar},
		{name: "./var/lib/dpkg/status", typ: tar.TypeReg, content: status},
		// dpkg names a Multi-Arch: same package's list after its architecture.
		{name: "./var/lib/dpkg/info/libc6:amd64.list", typ: tar.TypeReg, content: "/.\n/lib\n/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu/libc.so.6\n/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n/lib64\n/lib64/ld-linux-x86-64.so.2\n"},
		{name: "./var/lib/dpkg/info/iptables.list", typ: tar.TypeReg, content: "/.\n/usr/sbin/xtables-nft-multi\n/usr/sbin/iptables-nft\n/usr/share/doc/iptables/copyright\n/usr/sbin/xtables-legacy-multi\n" + legacyList(withLegacy)},
		{name: "./var/lib/dpkg/info/nftables.list", typ: tar.TypeReg, content: "/usr/sbin/nft\n"},
		{name: "./var/lib/dpkg/info/ipset.list", typ: tar.TypeReg, content: "/sbin/ipset\n"},
		{name: "./var/lib/dpkg/info/conntrack.list", typ: tar.TypeReg, content: "/usr/sbin/conntrack\n/usr/sbin/conntrack-hard\n"},
		{name: "./var/lib/dpkg/info/bash.list", typ: tar.TypeReg, content: "/usr/bin/bash\n"},
		{name: "./etc/containerd/cri-base.default.json", typ: tar.TypeReg, content: defaultSpec},
	}
	if withLegacy {
		entries = append(entries,
			tarEntry{name: "./usr/sbin/xtables-legacy-multi", typ: tar.TypeReg, content: "legacy-multi", mode: 0o755})
		for _, c := range iptablesCommands {
			base, rest, _ := strings.Cut(c, "-")
			n := base + "-legacy"
			if rest != "" {
				n += "-" + rest
			}
			entries = append(entries, tarEntry{name: "./usr/sbin/" + n, typ: tar.TypeSymlink, link: "xtables-legacy-multi"})
		}
	}
	return writeTar(t, entries)
}

func legacyList(with bool) string {
	if !with {
		return ""
	}
	var b strings.Builder
	for _, c := range iptablesCommands {
		base, rest, _ := strings.Cut(c, "-")
		n := base + "-legacy"
		if rest != "" {
			n += "-" + rest
		}
		b.WriteString("/usr/sbin/" + n + "\n")
	}
	return b.String()
}

func TestReadRootfsAndPackageFiles(t *testing.T) {
	r, err := ReadRootfs(mergedUsrRootfs(t, true))
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Files[DefaultSpecPath]) != defaultSpec {
		t.Error("the default spec was not read")
	}
	files, err := r.PackageFiles([]string{"libc6", "iptables", "conntrack", "ipset"})
	if err != nil {
		t.Fatal(err)
	}
	has := map[string]bool{}
	for _, f := range files {
		has[f] = true
	}
	for _, want := range []string{
		"/lib", "/lib64", "/sbin", // the merged-usr symlinks the listed paths go through
		"/usr/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib64/ld-linux-x86-64.so.2",
		"/usr/sbin/iptables-nft", "/usr/sbin/ipset", "/usr/sbin/conntrack", "/usr/sbin/conntrack-hard",
	} {
		if !has[want] {
			t.Errorf("%s missing from %v", want, files)
		}
	}
	for _, not := range []string{"/usr/share/doc/iptables/copyright", "/lib/x86_64-linux-gnu/libc.so.6", "/usr/bin/bash", "/."} {
		if has[not] {
			t.Errorf("%s should not be listed", not)
		}
	}
	if _, err := r.PackageFiles([]string{"iptables", "nosuch"}); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("a package without a list: %v", err)
	}
	if _, err := ReadRootfs(writeTar(t, []tarEntry{{name: "./etc/", typ: tar.TypeDir}})); err == nil {
		t.Error("a root filesystem without dpkg's status was accepted")
	}
}

func TestKubeProxyBase(t *testing.T) {
	r, err := ReadRootfs(mergedUsrRootfs(t, true))
	if err != nil {
		t.Fatal(err)
	}
	layer, pkgs, err := KubeProxyBase(r)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(pkgs, []string{"conntrack", "ipset", "iptables", "libc6", "nftables"}) {
		t.Errorf("packages = %v", pkgs)
	}
	hdrs, data, order := readLayer(t, bytes.NewReader(layer))
	for _, c := range iptablesCommands {
		h := hdrs["/usr/sbin/"+c]
		base, rest, _ := strings.Cut(c, "-")
		want := base + "-legacy"
		if rest != "" {
			want += "-" + rest
		}
		if h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != want {
			t.Errorf("/usr/sbin/%s = %+v, want a symlink to %s", c, h, want)
		}
	}
	if string(data["/usr/lib/x86_64-linux-gnu/libc.so.6"]) != "libc" || hdrs["/usr/lib/x86_64-linux-gnu/libc.so.6"].Mode != 0o755 {
		t.Error("libc's content or mode was not copied")
	}
	if h := hdrs["/lib"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "usr/lib" {
		t.Errorf("/lib = %+v, want the merged-usr symlink", h)
	}
	if h := hdrs["/usr/sbin/conntrack-hard"]; h == nil || h.Typeflag != tar.TypeLink || h.Linkname != "usr/sbin/conntrack" {
		t.Errorf("hard link = %+v", h)
	}
	if hdrs["/etc/ld.so.cache"] == nil {
		t.Error("the loader's cache is missing")
	}
	for _, not := range []string{"/dev/null", "/usr/bin/bash", "/var/lib/dpkg/status"} {
		if hdrs[not] != nil {
			t.Errorf("%s is in kube-proxy's tools", not)
		}
	}
	pos := map[string]int{}
	for i, p := range order {
		pos[p] = i
	}
	if pos["/usr/sbin/conntrack-hard"] < pos["/usr/sbin/conntrack"] {
		t.Error("the hard link comes before its target")
	}
	for _, p := range order {
		if d := filepath.Dir(p); d != "/" {
			if i, ok := pos[d]; !ok || i > pos[p] {
				t.Errorf("%s: its directory %s is missing or comes later", p, d)
			}
		}
	}
	// Without the legacy backend there is nothing to point iptables at.
	r, err = ReadRootfs(mergedUsrRootfs(t, false))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := KubeProxyBase(r); err == nil || !strings.Contains(err.Error(), "iptables-legacy") {
		t.Errorf("no legacy backend: %v", err)
	}
}
