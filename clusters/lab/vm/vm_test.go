package vm

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeBzImage writes a file with a bzImage setup header whose
// kernel_version points at version.
func fakeBzImage(t *testing.T, version string) string {
	t.Helper()
	b := make([]byte, 0x1000)
	copy(b[0x202:], "HdrS")
	off := 0x800 - 0x200
	b[0x20E], b[0x20F] = byte(off), byte(off>>8)
	copy(b[0x800:], version+"\x00")
	p := filepath.Join(t.TempDir(), "bzImage")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBzImageRelease(t *testing.T) {
	p := fakeBzImage(t, "6.1.0-57-amd64 (debian-kernel@lists.debian.org) #1 SMP")
	rel, err := BzImageRelease(p)
	if err != nil || rel != "6.1.0-57-amd64" {
		t.Fatalf("release %q, %v", rel, err)
	}
	notKernel := filepath.Join(t.TempDir(), "x")
	os.WriteFile(notKernel, make([]byte, 0x300), 0o644)
	if _, err := BzImageRelease(notKernel); !errors.Is(err, ErrNoKernel) {
		t.Fatalf("not a bzImage: %v", err)
	}
}

func writeModules(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	dep := `kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/netfs/netfs.ko kernel/fs/fscache/fscache.ko
kernel/net/9p/9pnet.ko:
kernel/fs/netfs/netfs.ko:
kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko
kernel/net/9p/9pnet_virtio.ko: kernel/drivers/virtio/virtio_ring.ko kernel/net/9p/9pnet.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/net/netfilter/ipvs/ip_vs.ko:
`
	os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644)
	os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte("kernel/drivers/virtio/virtio.ko\n"), 0o644)
	for _, line := range strings.Split(dep, "\n") {
		mod, _, ok := strings.Cut(line, ":")
		if ok {
			os.MkdirAll(filepath.Join(dir, filepath.Dir(mod)), 0o755)
			os.WriteFile(filepath.Join(dir, mod), []byte("module "+mod), 0o644)
		}
	}
	return dir
}

func TestLoadOrderPutsDependenciesFirst(t *testing.T) {
	m, err := ReadModules(writeModules(t))
	if err != nil {
		t.Fatal(err)
	}
	order, err := m.LoadOrder("virtio", "9pnet_virtio", "9p")
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, p := range order {
		pos[modName(p)] = i
	}
	if _, ok := pos["virtio"]; ok {
		t.Errorf("built-in virtio in the load order %v", order)
	}
	for _, pair := range [][2]string{{"virtio_ring", "9pnet_virtio"}, {"9pnet", "9pnet_virtio"}, {"netfs", "fscache"}, {"fscache", "9p"}, {"9pnet", "9p"}} {
		if pos[pair[0]] >= pos[pair[1]] {
			t.Errorf("%s loads after %s: %v", pair[0], pair[1], order)
		}
	}
	if len(order) != 6 {
		t.Errorf("order %v: want each of 6 module files once", order)
	}
	if !m.Has("ip_vs") || !m.Has("virtio") || m.Has("nope") {
		t.Error("Has is wrong")
	}
	if _, err := m.LoadOrder("nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing module: %v", err)
	}
}

// readCPIO lists a gzip-compressed newc archive's files and contents.
func readCPIO(t *testing.T, r io.Reader) map[string]string {
	t.Helper()
	gz, err := gzip.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(gz)
	files := map[string]string{}
	for len(b) > 0 {
		if string(b[:6]) != "070701" {
			t.Fatalf("bad magic %q", b[:6])
		}
		field := func(i int) int {
			v, _ := strconv.ParseUint(string(b[6+8*i:14+8*i]), 16, 32)
			return int(v)
		}
		size, namesize := field(6), field(11)
		name := string(b[110 : 110+namesize-1])
		off := (110 + namesize + 3) &^ 3
		files[name] = string(b[off : off+size])
		b = b[(off+size+3)&^3:]
		if name == "TRAILER!!!" {
			break
		}
	}
	return files
}

func TestInitramfsHoldsBusyboxModulesAndInit(t *testing.T) {
	mods, _ := ReadModules(writeModules(t))
	bb := filepath.Join(t.TempDir(), "busybox")
	os.WriteFile(bb, []byte("BUSYBOX"), 0o755)
	var buf bytes.Buffer
	err := Initramfs{Busybox: bb, Modules: mods, Init: []string{"/opt/kp bench/kpbench", "lab", "vm-init"}}.Write(&buf)
	if err != nil {
		t.Fatal(err)
	}
	files := readCPIO(t, &buf)
	if files["bin/busybox"] != "BUSYBOX" {
		t.Errorf("busybox: %q", files["bin/busybox"])
	}
	init := files["init"]
	for _, want := range []string{"insmod /modules/$m", "9pnet_virtio.ko", "hostroot /newroot", `switch_root /newroot '/opt/kp bench/kpbench' 'lab' 'vm-init'`} {
		if !strings.Contains(init, want) {
			t.Errorf("init lacks %q:\n%s", want, init)
		}
	}
	if files["modules/9p.ko"] == "" || files["modules/virtio_net.ko"] == "" {
		t.Errorf("modules missing: %v", files)
	}
	if !strings.Contains(init, "virtio_ring.ko") || strings.Index(init, "virtio_ring.ko") > strings.Index(init, "virtio_pci.ko") {
		t.Errorf("virtio_ring must load before virtio_pci:\n%s", init)
	}
}

func TestMachineArgs(t *testing.T) {
	m := Machine{QEMU: "qemu", Accel: AccelTCG, CPUs: 2, MemoryMiB: 1024, Kernel: "/k", Initrd: "/i", Append: "console=ttyS0",
		Tap: "node", MAC: "52:54:00:00:00:01", Console: "/c", Shares: []Share{{Tag: RootTag, Path: "/", ReadOnly: true}, {Tag: LabTag, Path: "/lab"}}}
	got := strings.Join(m.Args(), " ")
	for _, want := range []string{"-accel tcg,thread=multi", "-smp 2", "-m 1024", "-no-reboot",
		"path=/,security_model=none,readonly=on,multidevs=remap", "mount_tag=hostroot", "path=/lab,security_model=none,multidevs=remap",
		"tap,id=n0,ifname=node,script=no,downscript=no", "mac=52:54:00:00:00:01", "-serial file:/c"} {
		if !strings.Contains(got, want) {
			t.Errorf("args lack %q: %s", want, got)
		}
	}
	m.Accel = AccelKVM
	if got := strings.Join(m.Args(), " "); !strings.Contains(got, "-accel kvm -cpu host") {
		t.Errorf("kvm args: %s", got)
	}
}

func TestChooseAccelWithoutKVMDevice(t *testing.T) {
	old := KVMDevice
	KVMDevice = filepath.Join(t.TempDir(), "kvm")
	defer func() { KVMDevice = old }()
	accel, why, err := ChooseAccel(context.Background(), AccelAuto, "qemu", "bb", Kernel{}, t.TempDir())
	if err != nil || accel != AccelTCG || !strings.Contains(why, "not usable") {
		t.Fatalf("accel %q why %q err %v", accel, why, err)
	}
	if a, _, _ := ChooseAccel(context.Background(), AccelKVM, "", "", Kernel{}, ""); a != AccelKVM {
		t.Errorf("forced kvm gave %s", a)
	}
	if _, _, err := ChooseAccel(context.Background(), "hvf", "", "", Kernel{}, ""); err == nil {
		t.Error("unknown accelerator accepted")
	}
}

// agent starts a Server on loopback and returns its client.
func agent(t *testing.T, token string) *Client {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go (&Server{Token: "secret", Log: slog.New(slog.DiscardHandler)}).Serve(ln)
	return &Client{Token: token, DialAgent: func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", ln.Addr().String())
	}}
}

func TestAgentExec(t *testing.T) {
	c := agent(t, "secret")
	ctx := context.Background()
	var out, errOut bytes.Buffer
	if err := c.Exec(ctx, strings.NewReader("hello\n"), &out, &errOut, "sh", "-c", "cat; echo err >&2"); err != nil {
		t.Fatal(err)
	}
	if out.String() != "hello\n" || errOut.String() != "err\n" {
		t.Errorf("stdout %q stderr %q", out.String(), errOut.String())
	}
	err := c.Exec(ctx, nil, nil, nil, "sh", "-c", "exit 3")
	var ee *ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("exit 3: %v", err)
	}
	err = c.Exec(ctx, nil, nil, nil, "sh", "-c", "kill -TERM $$")
	if !errors.As(err, &ee) || ee.ExitCode() != 128+15 {
		t.Errorf("killed: %v", err)
	}
	if err := c.Exec(ctx, nil, nil, nil, "no-such-command-kpbench"); err == nil || !strings.Contains(err.Error(), "no-such-command") {
		t.Errorf("missing command: %v", err)
	}
	// A big output crosses many frames intact.
	out.Reset()
	if err := c.Exec(ctx, nil, &out, nil, "sh", "-c", "head -c 300000 /dev/zero"); err != nil || out.Len() != 300000 {
		t.Errorf("big output: %d bytes, %v", out.Len(), err)
	}
}

func TestAgentExecCancelKillsTheCommand(t *testing.T) {
	c := agent(t, "secret")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Exec(ctx, nil, nil, nil, "sh", "-c", "echo $$ > "+dir+"/pid; sleep 30")
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("cancelled exec: %v after %s", err, time.Since(start))
	}
	b, _ := os.ReadFile(dir + "/pid")
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid) + "/cmdline"); err != nil {
			return
		}
		if st, _ := procStat(pid); st.State == "Z" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("the command (pid %d) still runs after the caller gave up", pid)
}

func TestAgentRejectsBadToken(t *testing.T) {
	c := agent(t, "wrong")
	if err := c.Exec(context.Background(), nil, nil, nil, "true"); err == nil || !strings.Contains(err.Error(), "bad token") {
		t.Fatalf("bad token: %v", err)
	}
}

func TestAgentDialStartStop(t *testing.T) {
	c := agent(t, "secret")
	ctx := context.Background()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "proxied") }))
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{DialContext: c.Dial}}
	resp, err := hc.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "proxied" {
		t.Errorf("body %q", body)
	}

	log := filepath.Join(t.TempDir(), "log")
	p, err := c.Start(ctx, log, "sh", "-c", "echo started; exec sleep 30")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := c.Alive(ctx, p); !ok || err != nil {
		t.Fatalf("alive %v %v", ok, err)
	}
	if ok, _ := c.Alive(ctx, Proc{PID: p.PID, StartTime: p.StartTime + 1}); ok {
		t.Error("a process with another start time counts as alive")
	}
	if err := c.Stop(ctx, p, time.Second); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Alive(ctx, p); ok {
		t.Error("alive after Stop")
	}
	time.Sleep(100 * time.Millisecond)
	if b, _ := os.ReadFile(log); !strings.Contains(string(b), "started") {
		t.Errorf("log: %q", b)
	}
}
