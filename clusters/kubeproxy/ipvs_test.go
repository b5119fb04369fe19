package kubeproxy

import (
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func TestIPVSAvailable(t *testing.T) {
	tests := []struct {
		name   string
		files  map[string]string
		wantOK bool
	}{
		{name: "proc/net/ip_vs present", files: map[string]string{"proc/net/ip_vs": "IP Virtual Server version 1.2.1\n", "proc/sys/kernel/osrelease": "6.1.0\n"}, wantOK: true},
		{name: "module loaded", files: map[string]string{"proc/modules": "nf_tables 1 0 - Live\nip_vs 1 0 - Live\n", "proc/sys/kernel/osrelease": "6.1.0\n"}, wantOK: true},
		{name: "module installed", files: map[string]string{"proc/sys/kernel/osrelease": "6.1.0\n", "root/lib/modules/6.1.0/kernel/net/netfilter/ipvs/ip_vs.ko.xz": "x"}, wantOK: true},
		{name: "built in", files: map[string]string{"proc/sys/kernel/osrelease": "6.1.0\n", "root/lib/modules/6.1.0/modules.builtin": "kernel/net/netfilter/ipvs/ip_vs.ko\n"}, wantOK: true},
		{name: "absent", files: map[string]string{"proc/sys/kernel/osrelease": "6.1.0\n", "proc/modules": "nf_tables 1 0 - Live\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proc, root := fstest.MapFS{}, fstest.MapFS{}
			for p, c := range tt.files {
				dir, name, _ := strings.Cut(p, "/")
				fsys := proc
				if dir == "root" {
					fsys = root
				}
				fsys[name] = &fstest.MapFile{Data: []byte(c)}
			}
			ok, reason := IPVSAvailableFS(proc, root)
			if ok != tt.wantOK {
				t.Fatalf("ok = %v (%s), want %v", ok, reason, tt.wantOK)
			}
			if !ok && !strings.Contains(reason, "6.1.0 has no IP_VS") {
				t.Errorf("reason %q", reason)
			}
		})
	}
	dir := t.TempDir()
	if ok, reason := IPVSAvailable(filepath.Join(dir, "proc"), filepath.Join(dir, "root")); ok || !strings.Contains(reason, "cannot tell") {
		t.Errorf("no /proc at all: %v, %q", ok, reason)
	}
}
