package dataplane_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
)

// BenchmarkRequestPath measures one proxied request end to end in process:
// client -> TLS listener (HTTP/1.1 keep-alive or HTTP/2) -> member -> back.
// The client and the backend run in the same process, so compare runs of
// this benchmark with each other (benchstat), not with other proxies.
func BenchmarkRequestPath(b *testing.B) {
	body := strings.Repeat("x", 1024)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, body)
	}))
	defer backend.Close()
	for _, mode := range []struct {
		name string
		h2   bool
	}{{"h1", false}, {"h2", true}} {
		b.Run(mode.name, func(b *testing.B) {
			h := newBenchHarness(b)
			h.cert("site.pem", "site.example")
			_, port := tu.HostPort(b, backend.URL)
			h.mustApply(oneListener("    insert_headers: {X-Forwarded-For: \"true\", X-Forwarded-Proto: \"true\"}\n", "{address: 127.0.0.1, protocol_port: "+port+"}"))
			c := tu.Client(tu.Pool(h.ca), "site.example", mode.h2)
			defer c.CloseIdleConnections()
			url := "https://" + h.addr("127.0.0.1:0") + "/"
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := c.Get(url)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		})
	}
}
