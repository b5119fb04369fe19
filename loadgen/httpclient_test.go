package loadgen

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		name      string
		url       string
		wantAddr  string
		wantReq   string
		wantError bool
	}{
		{"ip and port", "http://127.0.0.1:8080/", "127.0.0.1:8080", "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: kpbench\r\n\r\n", false},
		{"default port and path", "http://198.19.0.10", "198.19.0.10:80", "GET / HTTP/1.1\r\nHost: 198.19.0.10\r\nUser-Agent: kpbench\r\n\r\n", false},
		{"path and query kept", "http://svc.ns:81/a/b?c=d", "svc.ns:81", "GET /a/b?c=d HTTP/1.1\r\nHost: svc.ns:81\r\nUser-Agent: kpbench\r\n\r\n", false},
		{"ipv6", "http://[::1]:9000/x", "[::1]:9000", "GET /x HTTP/1.1\r\nHost: [::1]:9000\r\nUser-Agent: kpbench\r\n\r\n", false},
		{"https refused", "https://127.0.0.1/", "", "", true},
		{"no scheme", "127.0.0.1:8080", "", "", true},
		{"no host", "http:///path", "", "", true},
		{"user info refused", "http://u:p@127.0.0.1/", "", "", true},
		{"unparsable", "http://[::1", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTarget(tt.url)
			if tt.wantError {
				if err == nil {
					t.Fatalf("ParseTarget(%q) accepted a bad URL", tt.url)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Addr != tt.wantAddr || string(got.req) != tt.wantReq {
				t.Errorf("ParseTarget(%q) = addr %q req %q, want %q %q", tt.url, got.Addr, got.req, tt.wantAddr, tt.wantReq)
			}
			wantClose := strings.TrimSuffix(tt.wantReq, "\r\n") + "Connection: close\r\n\r\n"
			if string(got.reqClose) != wantClose {
				t.Errorf("closing request = %q, want %q", got.reqClose, wantClose)
			}
		})
	}
}

// fakeConn serves a canned response in chunks of at most chunk bytes and
// records what was written.
type fakeConn struct {
	resp    []byte
	chunk   int
	written bytes.Buffer
}

func (f *fakeConn) Write(p []byte) (int, error) { return f.written.Write(p) }

func (f *fakeConn) Read(p []byte) (int, error) {
	if len(f.resp) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), f.chunk, len(f.resp))
	copy(p, f.resp[:n])
	f.resp = f.resp[n:]
	return n, nil
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		fixture    string
		wantStatus int
		wantClose  bool
		wantKind   string // Classify's verdict
		wantLeft   int    // bytes left unread on the connection
	}{
		{"resp-200.http", 200, false, "", 0},
		{"resp-503-close.http", 503, true, "http_503", 0},
		{"resp-http10-noclen.http", 200, true, "", 0},
		{"resp-204.http", 204, false, "", 0},
		{"resp-301.http", 301, false, "", 0},
		{"resp-chunked.http", 200, false, KindBadResponse, -1},
		{"resp-extra-bytes.http", 200, false, KindBadResponse, -1},
		{"resp-short-body.http", 200, false, KindEOF, -1},
		{"resp-bad-status.http", 0, false, KindBadResponse, -1},
		{"resp-bad-length.http", 200, false, KindBadResponse, -1},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 7, 4096} {
			t.Run(tt.fixture+"/chunk="+itoa(chunk), func(t *testing.T) {
				raw, err := os.ReadFile(filepath.Join("testdata", tt.fixture))
				if err != nil {
					t.Fatal(err)
				}
				c := &fakeConn{resp: raw, chunk: chunk}
				req := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
				resp, err := roundTrip(c, req, make([]byte, 4096))
				wantKind := tt.wantKind
				if tt.fixture == "resp-extra-bytes.http" && chunk == 1 {
					// Read a byte at a time, the body ends exactly; the stray
					// bytes would fail the next request on the connection.
					wantKind = ""
				}
				if got := Classify(err, resp.status); got != wantKind {
					t.Fatalf("outcome %q (err %v, status %d), want %q", got, err, resp.status, wantKind)
				}
				if c.written.String() != string(req) {
					t.Errorf("wrote %q, want %q", c.written.String(), req)
				}
				if err != nil || wantKind != tt.wantKind {
					return
				}
				if resp.status != tt.wantStatus || resp.close != tt.wantClose {
					t.Errorf("status %d close %v, want %d %v", resp.status, resp.close, tt.wantStatus, tt.wantClose)
				}
				if len(c.resp) != tt.wantLeft {
					t.Errorf("%d bytes left unread, want %d", len(c.resp), tt.wantLeft)
				}
				if resp.bytes != len(raw) {
					t.Errorf("counted %d response bytes, want %d", resp.bytes, len(raw))
				}
			})
		}
	}
}

func TestRoundTripHeadersTooLarge(t *testing.T) {
	raw := "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 5000) + "\r\nContent-Length: 0\r\n\r\n"
	_, err := roundTrip(&fakeConn{resp: []byte(raw), chunk: 4096}, []byte("GET / HTTP/1.1\r\n\r\n"), make([]byte, 4096))
	if !errors.Is(err, ErrBadResponse) {
		t.Fatalf("err = %v, want ErrBadResponse", err)
	}
}

func TestRoundTripReportsWriteError(t *testing.T) {
	_, err := roundTrip(failWriter{}, []byte("GET"), make([]byte, 64))
	if !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("err = %v, want the write error", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }
func (failWriter) Read([]byte) (int, error)  { return 0, io.EOF }
