package metrics

import (
	"os"
	"strings"
	"testing"
)

const (
	beginMarker = "<!-- metrics:begin (generated from metrics/; UPDATE_README=1 go test ./metrics rewrites it) -->\n"
	endMarker   = "<!-- metrics:end -->"
)

// TestREADMEMetricsTable: the README's metric table is the one the code
// defines; UPDATE_README=1 rewrites it.
func TestREADMEMetricsTable(t *testing.T) {
	docs := Reference()
	if len(docs) < 20 {
		t.Fatalf("only %d metrics found", len(docs))
	}
	for _, d := range docs {
		if !strings.HasPrefix(d.Name, "terminator_") || d.Help == "" {
			t.Errorf("metric %+v: every metric is terminator_* and says what it means", d)
		}
	}
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	i, j := strings.Index(readme, beginMarker), strings.Index(readme, endMarker)
	if i < 0 || j < i {
		t.Fatal("README.md has no metrics:begin/end markers")
	}
	want := readme[:i+len(beginMarker)] + ReferenceTable() + readme[j:]
	if want == readme {
		return
	}
	if os.Getenv("UPDATE_README") != "" {
		if err := os.WriteFile("../README.md", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatal("README.md's metrics table differs from the code; run UPDATE_README=1 go test ./metrics")
}
