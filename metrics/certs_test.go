package metrics

import (
	"strings"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"
)

// TestCertificatesAtScrapeTime: the series come from the source at scrape
// time, validity is judged by the clock of that scrape, and a new source
// replaces the old one's series entirely.
func TestCertificatesAtScrapeTime(t *testing.T) {
	c := newCertificates()
	if n := promtest.CollectAndCount(c); n != 0 {
		t.Fatalf("%d series before a source is set", n)
	}
	start := time.Unix(1_000_000, 0)
	now := start
	served := []ServedCertificate{
		{Listener: "web", Ref: "file:///a.pem", Names: []string{"a.example", "www.a.example"}, NotBefore: start.Add(-time.Hour), NotAfter: start.Add(time.Hour)},
		{Listener: "api", Ref: "file:///b.pem", Names: []string{"b.example"}, NotBefore: start.Add(time.Minute), NotAfter: start.Add(2 * time.Hour)},
	}
	seq := func(yield func(ServedCertificate) bool) {
		for _, s := range served {
			if !yield(s) {
				return
			}
		}
	}
	c.Set(seq, func() time.Time { return now })
	want := func(expect string) {
		t.Helper()
		if err := promtest.CollectAndCompare(c, strings.NewReader(expect)); err != nil {
			t.Fatal(err)
		}
	}
	const head = `# HELP terminator_certificate_not_after_seconds Expiry (Unix time) of each certificate served, by listener and name.
# TYPE terminator_certificate_not_after_seconds gauge
terminator_certificate_not_after_seconds{listener="api",name="b.example",ref="file:///b.pem"} 1.0072e+06
terminator_certificate_not_after_seconds{listener="web",name="a.example",ref="file:///a.pem"} 1.0036e+06
terminator_certificate_not_after_seconds{listener="web",name="www.a.example",ref="file:///a.pem"} 1.0036e+06
# HELP terminator_certificate_outside_validity 1 for a certificate served although expired or not yet valid.
# TYPE terminator_certificate_outside_validity gauge
`
	want(head + `terminator_certificate_outside_validity{listener="api",ref="file:///b.pem"} 1
terminator_certificate_outside_validity{listener="web",ref="file:///a.pem"} 0
`)
	now = start.Add(90 * time.Minute) // a expired, b valid: no reload in between
	want(head + `terminator_certificate_outside_validity{listener="api",ref="file:///b.pem"} 0
terminator_certificate_outside_validity{listener="web",ref="file:///a.pem"} 1
`)
	served = served[:0]
	c.Set(seq, nil)
	if n := promtest.CollectAndCount(c); n != 0 {
		t.Fatalf("%d series after an empty snapshot", n)
	}
}
