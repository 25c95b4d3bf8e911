package dataplane_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
)

// TestH2CPriorKnowledge: a plain HTTP listener answers HTTP/2 with prior
// knowledge (the connection preface, RFC 9113 §3.4) beside HTTP/1.1, with
// Go's client and with curl; the member sees the request as usual.
func TestH2CPriorKnowledge(t *testing.T) {
	h := newHarness(t)
	backend := tu.EchoBackend(t)
	host, port := tu.HostPort(t, backend.URL)
	h.mustApply(`listeners: [{name: web, protocol: HTTP, bind: "127.0.0.1:0", default_pool: app, insert_headers: {X-Forwarded-Proto: "true"}}]
pools: [{name: app, members: [{address: ` + host + `, protocol_port: ` + port + `}]}]`)
	url := "http://" + h.addr("127.0.0.1:0") + "/h2c?x=1"
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	for range 3 { // one connection, three streams
		resp, err := (&http.Client{Transport: tr}).Get(url)
		if err != nil {
			t.Fatal(err)
		}
		var echo tu.Echo
		err = json.NewDecoder(resp.Body).Decode(&echo)
		resp.Body.Close()
		if err != nil || resp.ProtoMajor != 2 || echo.Path != "/h2c" || echo.Header.Get("X-Forwarded-Proto") != "http" {
			t.Fatalf("h2c: %s %+v %v", resp.Proto, echo, err)
		}
	}
	resp, err := http.Get(url) // HTTP/1.1 on the same listener
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 1 {
		t.Fatalf("HTTP/1.1 client got %s", resp.Proto)
	}
	out, err := exec.Command("curl", "-s", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", url).Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != "2 200" {
		t.Fatalf("curl --http2-prior-knowledge: %q", got)
	}
	// The Upgrade form (RFC 7540 §3.2, removed by RFC 9113) is not taken
	// up: the request is answered over HTTP/1.1, as the RFC allows.
	out, err = exec.Command("curl", "-s", "--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", url).Output()
	if err != nil {
		t.Fatalf("curl --http2: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != "1.1 200" {
		t.Fatalf("curl --http2 (Upgrade: h2c): %q", got)
	}
}
