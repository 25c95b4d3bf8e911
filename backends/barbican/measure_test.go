package barbican_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/terminator-proxy/terminator/backends/barbican"
	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/config"
	"github.com/terminator-proxy/terminator/dataplane"
	tu "github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/metrics"
)

// counter counts requests per secret or container UUID.
type counter struct {
	mu  sync.Mutex
	per map[string]int
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	parts := strings.Split(r.URL.Path, "/")
	for i, p := range parts {
		if (p == "secrets" || p == "containers") && i+1 < len(parts) {
			c.mu.Lock()
			c.per[parts[i+1]]++
			c.mu.Unlock()
		}
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestColdStart100Listeners measures the time from nothing to serving 100
// listeners' certificates from Barbican, and checks that each ref is
// fetched once although two listeners share each one.
func TestColdStart100Listeners(t *testing.T) {
	for _, f := range fixtures(t) {
		t.Run(f.mode, func(t *testing.T) {
			ca := tu.CA(t, "measure CA")
			refs := make([]string, 50)
			for i := range refs {
				data, _ := p12For(t, ca, fmt.Sprintf("l%d.example", i), "")
				refs[i] = f.storeP12(t, data)
			}
			cnt := &counter{per: map[string]int{}}
			start := time.Now()
			m, err := barbican.New(context.Background(), withClient(f.opts, cnt))
			if err != nil {
				t.Fatal(err)
			}
			reg := certs.NewRegistry()
			reg.Register("http", m)
			var yaml strings.Builder
			yaml.WriteString("listeners:\n")
			for i := range 100 {
				fmt.Fprintf(&yaml, "  - {name: l%d, protocol: TERMINATED_HTTPS, bind: \"127.0.%d.%d:0\", default_tls_container_ref: %q}\n", i, 1+i/200, 1+i%200, refs[i%50])
			}
			cfg, _, err := config.Parse([]byte(yaml.String()))
			if err != nil {
				t.Fatal(err)
			}
			p := dataplane.New(dataplane.Options{Certs: reg, Logger: slog.New(slog.DiscardHandler), Metrics: metrics.New()})
			defer p.Shutdown(context.Background())
			if err := p.Apply(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			elapsed := time.Since(start)
			max := 0
			for _, n := range cnt.per {
				max = mxInt(max, n)
			}
			t.Logf("%s: 100 listeners (50 distinct secrets) serving %v after start; Barbican requests per ref: at most %d", f.mode, elapsed.Round(time.Millisecond), max)
			if len(cnt.per) != 50 || max != 1 {
				t.Fatalf("each ref must be fetched once: %d refs seen, up to %d requests each", len(cnt.per), max)
			}
		})
	}
}

func withClient(o barbican.Options, rt http.RoundTripper) barbican.Options {
	o.HTTPClient = &http.Client{Transport: rt, Timeout: 30 * time.Second}
	return o
}

func mxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}
