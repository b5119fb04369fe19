package loadgen

import (
	"context"
	"os"
	"testing"
	"time"
)

func TestZZProf(t *testing.T) {
	url := os.Getenv("LG_URL")
	if url == "" {
		t.Skip()
	}
	res, err := Run(context.Background(), Config{URLs: []string{url}, Rate: 5000, Duration: 4 * time.Second, RequestsPerConn: 0})
	if err != nil {
		t.Fatal(err)
	}
	res.Summary.WriteText(os.Stdout)
}
