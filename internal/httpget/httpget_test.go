package httpget

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestGet(t *testing.T) {
	long := strings.Repeat("x", 2*maxQuote)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte("fine\n"))
		case "/readyz":
			http.Error(w, "[-]etcd failed: reason withheld\nreadyz check failed", http.StatusInternalServerError)
		case "/long":
			http.Error(w, long, http.StatusNotFound)
		}
	}))
	defer srv.Close()
	ctx := context.Background()

	body, err := Get(ctx, srv.Client(), srv.URL+"/ok")
	if err != nil || string(body) != "fine\n" {
		t.Errorf("200: %q, %v", body, err)
	}

	body, err = Get(ctx, srv.Client(), srv.URL+"/readyz")
	if err == nil {
		t.Fatal("500: no error")
	}
	for _, want := range []string{"GET " + srv.URL + "/readyz", "500 Internal Server Error", "[-]etcd failed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("500: error %q does not name %q", err, want)
		}
	}
	if !strings.Contains(string(body), "readyz check failed") {
		t.Errorf("500: body %q not returned with the error", body)
	}

	_, err = Get(ctx, srv.Client(), srv.URL+"/long")
	if err == nil || len(err.Error()) > maxQuote+200 || !strings.HasSuffix(err.Error(), " …") {
		t.Errorf("404 with a long body: error of %d bytes, want the body cut to %d", len(err.Error()), maxQuote)
	}

	if _, err := Get(ctx, srv.Client(), "http://127.0.0.1:1/"); err == nil {
		t.Error("refused connection: no error")
	}
}
