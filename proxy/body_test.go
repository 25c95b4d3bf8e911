package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

// TestResponseWritersHaveDeadlines: the client inactivity timeout is set
// through the response writer's own deadline methods (no
// ResponseController per request); every writer a request can get has
// them — net/http's HTTP/1 and HTTP/2 ones here (terminator's own HTTP/1
// writer declares them), x/net's for h2c upgrades.
func TestResponseWritersHaveDeadlines(t *testing.T) {
	var _ deadlines = (*h1response)(nil)
	missing := make(chan string, 4)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if deadlinesOf(w) == nil {
			missing <- r.Proto
		}
	})
	srv := httptest.NewUnstartedServer(h2c.NewHandler(handler, &http2.Server{}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	for _, h2 := range []bool{false, true} {
		c := srv.Client()
		if !h2 {
			c = &http.Client{Transport: &http.Transport{TLSClientConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig}}
		}
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if (resp.ProtoMajor == 2) != h2 {
			t.Fatalf("wanted HTTP/2 %v, got %s", h2, resp.Proto)
		}
	}
	close(missing)
	for p := range missing {
		t.Errorf("the %s response writer has no deadline methods", p)
	}
}
