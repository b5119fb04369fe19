package loadgen

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestNewServerRejectsNegatives(t *testing.T) {
	for _, cfg := range []ServerConfig{{BodyBytes: -1}, {MaxRequestsPerConn: -1}} {
		if _, err := NewServer(cfg); err == nil {
			t.Errorf("NewServer(%+v) accepted", cfg)
		}
	}
}

func TestParseRequestHead(t *testing.T) {
	tests := []struct {
		name      string
		head      string
		want      serverRequest
		wantBody  int
		wantError bool
	}{
		{"HTTP/1.1 GET keeps alive", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", serverRequest{}, 0, false},
		{"Connection close", "GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", serverRequest{close: true}, 0, false},
		{"HTTP/1.0 closes", "GET / HTTP/1.0\r\n\r\n", serverRequest{close: true}, 0, false},
		{"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n", serverRequest{}, 0, false},
		{"HEAD", "HEAD /x HTTP/1.1\r\n\r\n", serverRequest{head: true}, 0, false},
		{"body length", "POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n", serverRequest{}, 12, false},
		{"chunked body refused", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", serverRequest{}, 0, true},
		{"bad length", "POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", serverRequest{}, 0, true},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\n", serverRequest{}, 0, true},
		{"garbage", "hello\r\n\r\n", serverRequest{}, 0, true},
		{"header without colon", "GET / HTTP/1.1\r\nbogus\r\n\r\n", serverRequest{}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, body, err := parseRequestHead([]byte(tt.head))
			if tt.wantError {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil || got != tt.want || body != tt.wantBody {
				t.Errorf("got %+v body %d err %v, want %+v body %d", got, body, err, tt.want, tt.wantBody)
			}
		})
	}
}

// exchange writes raw to a fresh connection to url and returns all the
// server sent until it closed (or the deadline passed).
func exchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(c)
	return string(out)
}

func TestServerAnswers(t *testing.T) {
	srv, url := startServer(t, ServerConfig{BodyBytes: 10, MaxRequestsPerConn: 3})
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/")
	const body = "kkkkkkkkkk"
	ok := "HTTP/1.1 200 OK\r\nServer: kpbench\r\nContent-Type: text/html\r\nContent-Length: 10\r\n\r\n"
	okClose := "HTTP/1.1 200 OK\r\nServer: kpbench\r\nContent-Type: text/html\r\nContent-Length: 10\r\nConnection: close\r\n\r\n"
	// Asked, the answer names the backend: the address the connection reached.
	named := "HTTP/1.1 200 OK\r\nServer: kpbench\r\nContent-Type: text/html\r\nContent-Length: 10\r\nKpbench-Backend: " + addr + "\r\n\r\n"
	tests := []struct {
		name, send, want string
	}{
		{"close on request", "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", okClose + body},
		{"HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", okClose + body},
		{"pipelined up to the limit", strings.Repeat("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 4), ok + body + ok + body + okClose + body},
		{"HEAD has no body", "HEAD / HTTP/1.1\r\nConnection: close\r\n\r\n", okClose},
		{"request body skipped", "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nConnection: close\r\n\r\n", ok + body + okClose + body},
		{"bad request", "NONSENSE\r\n\r\n", "HTTP/1.1 400 Bad Request\r\nServer: kpbench\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
		{"backend asked for", "GET / HTTP/1.1\r\nKpbench-Backend: 1\r\n\r\nGET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nkpbench-backend: 1\r\n\r\n", named + body + ok + body + strings.Replace(named, "\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1) + body},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := exchange(t, addr, tt.send); got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
	if srv.Connections() != int64(len(tests)) {
		t.Errorf("counted %d connections, want %d", srv.Connections(), len(tests))
	}
	if srv.Requests() != 1+1+3+1+2+3 {
		t.Errorf("counted %d requests, want 11", srv.Requests())
	}
}

// net/http's client, with keep-alive, sees the limit as nginx's
// keepalive_requests: a new connection every N requests.
func TestServerRequestLimitWithNetHTTP(t *testing.T) {
	srv, url := startServer(t, ServerConfig{BodyBytes: DefaultBodyBytes, MaxRequestsPerConn: 4})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	for i := range 12 {
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(b) != DefaultBodyBytes {
			t.Fatalf("request %d: status %d, %d bytes", i, resp.StatusCode, len(b))
		}
	}
	if srv.Connections() != 3 || srv.Requests() != 12 {
		t.Errorf("%d connections and %d requests, want 3 and 12", srv.Connections(), srv.Requests())
	}
}

func TestServerShutsDownWithIdleConnections(t *testing.T) {
	srv, err := NewServer(ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Serve did not return with an idle connection open")
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("shutdown took %v", el)
	}
}

// TestServerNamesEachLocalAddress: asked, a server listening on every
// address names the address the connection was accepted on (the backend's
// own, whatever the client dialled), IPv4 unmapped; the net/http path does
// the same; not asked, neither does.
func TestServerNamesEachLocalAddress(t *testing.T) {
	srv, err := NewServer(ServerConfig{BodyBytes: 3})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", ":0") // dual-stack where the host has IPv6
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	addrs := []string{net.JoinHostPort("127.0.0.1", itoa(port))}
	if c, err := net.Dial("tcp", net.JoinHostPort("::1", itoa(port))); err == nil {
		c.Close()
		addrs = append(addrs, net.JoinHostPort("::1", itoa(port)))
	}
	for _, a := range addrs {
		for range 2 { // the second connection reuses the built answers
			got := exchange(t, a, "GET / HTTP/1.1\r\nKpbench-Backend: 1\r\nConnection: close\r\n\r\n")
			if want := "\r\nKpbench-Backend: " + a + "\r\n"; !strings.Contains(got, want) {
				t.Errorf("answer to a connection to %s:\n%q\nwant it to contain %q", a, got, want)
			}
		}
	}

	hs := httptest.NewServer(srv)
	defer hs.Close()
	for _, ask := range []bool{true, false} {
		req, err := http.NewRequest(http.MethodGet, hs.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ask {
			req.Header.Set(BackendHeader, "1")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := ""
		if ask {
			want = strings.TrimPrefix(hs.URL, "http://")
		}
		if got := resp.Header.Get(BackendHeader); got != want {
			t.Errorf("net/http path, asked %v: %s %q, want %q", ask, BackendHeader, got, want)
		}
	}
}
