package report

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestReferenceRunHeadline: the reference run committed under
// results/reference loads, every point is valid, and its report states
// the within-step costs per rule that README.md and the run's README
// quote.
func TestReferenceRunHeadline(t *testing.T) {
	d, err := Load(filepath.Join("..", "results", "reference", "tigera-2019"))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Points) != 336 {
		t.Fatalf("%d points, want 336", len(d.Points))
	}
	for _, p := range d.Points {
		if !p.Valid {
			t.Errorf("%s invalid: %v", p.ID, p.InvalidReasons)
		}
	}
	var texts []string
	for _, f := range Findings(d) {
		texts = append(texts, f.Text)
	}
	all := strings.Join(texts, "\n")
	for _, want := range []string{
		"14.8 ns (95% CI 14.8 to 14.9) to kernel time to first packet p01",
		"18.3 ns (95% CI 16.4 to 20.2) to client-node CPU per request",
		"16.4 ns (95% CI 15.6 to 17.3) to kernel time to first packet p50",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("the reference's findings do not say %q", want)
		}
	}
}
