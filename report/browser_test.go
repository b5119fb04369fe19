package report

import (
	"bytes"
	"context"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// chromium finds a Chromium binary, skipping the test where browser tests
// cannot run. As root (CI) a missing browser is a failure: make deps
// installs it.
func chromium(t *testing.T) string {
	t.Helper()
	if os.Getenv("KPBENCH_SKIP_INTEGRATION") == "1" {
		t.Skip("KPBENCH_SKIP_INTEGRATION=1: skipping the headless Chromium test")
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("no chromium in PATH (install Debian's chromium package, or run make deps as root)")
	}
	t.Fatal("no chromium in PATH: run make deps (hack/deps.sh installs Debian's chromium package)")
	return ""
}

// runChromium runs headless Chromium with args in its own process group,
// killing the whole group when it returns or times out.
func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if cmd.Process != nil {
		// Chromium leaves helper processes behind when killed; end the group.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		t.Fatalf("chromium %s: %v\nstderr:\n%s", strings.Join(args, " "), err, tail(stderr.String(), 2000))
	}
	return stdout.Bytes()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// imageCheck is appended to a copy of report.html: once the page has
// loaded it records how many images decoded and how many did not.
const imageCheck = `<script>
window.addEventListener("load", function () {
  var imgs = document.images, ok = 0, broken = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (imgs[i].complete && imgs[i].naturalWidth > 0) { ok++; } else { broken++; }
  }
  document.body.setAttribute("data-images-ok", String(ok));
  document.body.setAttribute("data-images-broken", String(broken));
});
</script>`

var imageMarks = regexp.MustCompile(`data-images-ok="(\d+)" data-images-broken="(\d+)"`)

// TestHTMLInChromium opens report.html in headless Chromium: every
// embedded image must load, and a screenshot must show the rendered page
// with the plots' colours in it.
func TestHTMLInChromium(t *testing.T) {
	bin := chromium(t)
	d, _ := generateSweep(t)
	page := filepath.Join(d.Dir, HTMLFile)

	t.Run("images load", func(t *testing.T) {
		html, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		probe := filepath.Join(d.Dir, "probe.html")
		withCheck := strings.Replace(string(html), "</body>", imageCheck+"\n</body>", 1)
		if err := os.WriteFile(probe, []byte(withCheck), 0o644); err != nil {
			t.Fatal(err)
		}
		dom := runChromium(t, bin, "--virtual-time-budget=10000", "--dump-dom", "file://"+probe)
		m := imageMarks.FindSubmatch(dom)
		if m == nil {
			t.Fatalf("the page's load handler did not run; DOM starts:\n%s", tail(string(dom), 500))
		}
		if string(m[1]) != "5" || string(m[2]) != "0" {
			t.Errorf("%s images loaded, %s broken; want 5 and 0", m[1], m[2])
		}
	})

	t.Run("screenshot", func(t *testing.T) {
		shot := filepath.Join(t.TempDir(), "report.png")
		runChromium(t, bin, "--hide-scrollbars", "--screenshot="+shot, "--window-size=1200,3000", "file://"+page)
		data, err := os.ReadFile(shot)
		if err != nil {
			t.Fatalf("no screenshot: %v", err)
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("screenshot does not decode: %v", err)
		}
		if b := img.Bounds(); b.Dx() != 1200 || b.Dy() != 3000 {
			t.Errorf("screenshot is %dx%d, want 1200x3000", b.Dx(), b.Dy())
		}
		white, vermillion, green := 0, 0, 0
		b := img.Bounds()
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := toRGBA(img.At(x, y))
				switch {
				case c.R > 245 && c.G > 245 && c.B > 245:
					white++
				case closeTo(c, toRGBA(modeColors["iptables"])):
					vermillion++
				case closeTo(c, toRGBA(modeColors["nftables"])):
					green++
				}
			}
		}
		total := b.Dx() * b.Dy()
		if white > total*97/100 {
			t.Errorf("screenshot is %d%% white: the page did not render", 100*white/total)
		}
		// The modes' colours appear only in the plots: if they are in the
		// screenshot, the embedded images were drawn.
		if vermillion < 300 || green < 300 {
			t.Errorf("screenshot has %d iptables-coloured and %d nftables-coloured pixels; the plots did not render", vermillion, green)
		}
	})
}

func closeTo(a, b color.RGBA) bool {
	d := func(x, y uint8) int {
		if x > y {
			return int(x - y)
		}
		return int(y - x)
	}
	return d(a.R, b.R) < 24 && d(a.G, b.G) < 24 && d(a.B, b.B) < 24
}
