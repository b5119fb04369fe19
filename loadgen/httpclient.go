package loadgen

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
)

// Target is one URL to load, with its requests serialized once: the hot path
// writes fixed bytes and parses only the status line and the headers that
// frame the body. net/http would cost several allocations and goroutine
// hand-offs per request for features a benchmark backend does not need.
type Target struct {
	URL string
	// Addr is the host:port to dial, resolved once before the run.
	Addr string
	// req keeps the connection open; reqClose asks the server to close it
	// after answering (the last request of a connection), so the server,
	// not the client, holds TIME_WAIT and the client never runs out of
	// local ports at high connection rates.
	req, reqClose []byte
	// sockaddr is the dialer's form of Addr (see prepare).
	sockaddr any
}

// ParseTarget checks that raw is an http URL and serializes its GET
// request. The host is not resolved (see Resolve).
func ParseTarget(raw string) (Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Target{}, fmt.Errorf("parsing URL %q: %w", raw, err)
	}
	if u.Scheme != "http" {
		return Target{}, fmt.Errorf("URL %q: only http is supported, got scheme %q", raw, u.Scheme)
	}
	if u.Hostname() == "" {
		return Target{}, fmt.Errorf("URL %q has no host", raw)
	}
	if u.User != nil {
		return Target{}, fmt.Errorf("URL %q: user info is not supported", raw)
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	path := u.RequestURI()
	host := u.Host
	head := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: kpbench\r\n"
	return Target{
		URL:      raw,
		Addr:     net.JoinHostPort(u.Hostname(), port),
		req:      []byte(head + "\r\n"),
		reqClose: []byte(head + "Connection: close\r\n\r\n"),
	}, nil
}

// askBackend makes t's requests ask the server to name the backend that
// answers (BackendHeader).
func (t *Target) askBackend() {
	ask := func(req []byte) []byte {
		// Before the blank line that ends the head.
		head := req[:len(req)-len(crlf)]
		return append(append(append([]byte(nil), head...), BackendHeader+": 1\r\n"...), crlf...)
	}
	t.req, t.reqClose = ask(t.req), ask(t.reqClose)
}

// response is what roundTrip learned about one response.
type response struct {
	status int
	// close is set when the server said it will close the connection (or
	// the body is delimited by the close).
	close bool
	// bytes is the size of the response, headers included.
	bytes int
	// backend is the value of BackendHeader (nil without it): the part of
	// roundTrip's buf that held the headers, which the body's reads leave
	// alone, so it is valid until buf is used again.
	backend []byte
}

// roundTrip writes req on c and reads one response into buf, discarding the
// body. buf must hold the status line and headers (4 KiB is plenty for the
// backends kpbench measures). The body is read past the headers where buf
// has room for it (minBodyBuf), so that resp.backend stays valid.
func roundTrip(c io.ReadWriter, req, buf []byte) (response, error) {
	if _, err := c.Write(req); err != nil {
		return response{}, fmt.Errorf("writing request: %w", err)
	}
	n := 0
	hdrEnd := -1
	for hdrEnd < 0 {
		if n == len(buf) {
			return response{}, fmt.Errorf("headers larger than %d bytes: %w", len(buf), ErrBadResponse)
		}
		m, err := c.Read(buf[n:])
		n += m
		if i := bytes.Index(buf[:n], crlfcrlf); i >= 0 {
			hdrEnd = i + 4
			break
		}
		if err != nil {
			if err == io.EOF && n > 0 {
				err = io.ErrUnexpectedEOF
			}
			return response{}, fmt.Errorf("reading response headers: %w", err)
		}
	}
	resp, length, err := parseHead(buf[:hdrEnd])
	if err != nil {
		return resp, err
	}
	have := n - hdrEnd
	resp.bytes = n
	// Where the rest of the body goes: after the headers, or over them
	// (and the backend's name) when they leave too little room.
	body := buf[hdrEnd:]
	if len(body) < minBodyBuf {
		body, resp.backend = buf, nil
	}
	if length >= 0 {
		if have > length {
			return resp, fmt.Errorf("%d bytes after a %d-byte body: %w", have-length, length, ErrBadResponse)
		}
		for have < length {
			m, err := c.Read(body)
			have += m
			resp.bytes += m
			if have > length {
				return resp, fmt.Errorf("%d bytes after a %d-byte body: %w", have-length, length, ErrBadResponse)
			}
			if err != nil && have < length {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return resp, fmt.Errorf("reading body: %w", err)
			}
		}
		return resp, nil
	}
	// No length: the body runs until the server closes.
	resp.close = true
	for {
		m, err := c.Read(body)
		resp.bytes += m
		if err == io.EOF {
			return resp, nil
		}
		if err != nil {
			return resp, fmt.Errorf("reading body: %w", err)
		}
	}
}

// minBodyBuf is the least room after the headers that roundTrip reads a
// body into.
const minBodyBuf = 1024

var (
	crlf          = []byte("\r\n")
	crlfcrlf      = []byte("\r\n\r\n")
	backendHeader = []byte(BackendHeader)
)

// parseHead parses the status line and headers (ending with the blank
// line). It returns the body length, or -1 when the body is delimited by
// the connection's close.
func parseHead(head []byte) (response, int, error) {
	var resp response
	line, rest, _ := bytes.Cut(head, crlf)
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return resp, 0, fmt.Errorf("status line %q: %w", line, ErrBadResponse)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil || status < 100 || (len(line) > 12 && line[12] != ' ') {
		return resp, 0, fmt.Errorf("status line %q: %w", line, ErrBadResponse)
	}
	resp.status = status
	http10 := line[7] == '0'
	resp.close = http10
	length := -1
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, crlf)
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return resp, 0, fmt.Errorf("header line %q: %w", line, ErrBadResponse)
		}
		// Only four names matter, of four lengths: any other header
		// (Server, Content-Type, ...) is passed over by its length alone.
		switch len(name) {
		case len("Content-Length"):
			if bytes.EqualFold(name, []byte("Content-Length")) {
				value = bytes.TrimSpace(value)
				l, err := strconv.Atoi(string(value))
				if err != nil || l < 0 {
					return resp, 0, fmt.Errorf("Content-Length %q: %w", value, ErrBadResponse)
				}
				length = l
			}
		case len("Connection"):
			if bytes.EqualFold(name, []byte("Connection")) {
				value = bytes.TrimSpace(value)
				if bytes.EqualFold(value, []byte("close")) {
					resp.close = true
				} else if bytes.EqualFold(value, []byte("keep-alive")) {
					resp.close = false
				}
			}
		case len("Transfer-Encoding"):
			if bytes.EqualFold(name, []byte("Transfer-Encoding")) {
				if value = bytes.TrimSpace(value); !bytes.EqualFold(value, []byte("identity")) {
					return resp, 0, fmt.Errorf("Transfer-Encoding %q is not supported: %w", value, ErrBadResponse)
				}
			}
		case len(BackendHeader):
			if bytes.EqualFold(name, backendHeader) {
				resp.backend = bytes.TrimSpace(value)
			}
		}
	}
	// Responses that never carry a body (RFC 9112 section 6.3).
	if status < 200 || status == 204 || status == 304 {
		length = 0
	}
	return resp, length, nil
}
