package metrics

import (
	"strings"
	"testing"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
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
	tu.GeneratedSection(t, "../README.md", beginMarker, endMarker, ReferenceTable())
}
