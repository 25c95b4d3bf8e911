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

// TestH2CPriorKnowledgeAndUpgrade: a plain HTTP listener answers HTTP/2
// with prior knowledge (the connection preface, RFC 9113 §3.4) and after
// an Upgrade: h2c, beside HTTP/1.1, with Go's client and with curl; the
// member sees the request as usual.
func TestH2CPriorKnowledgeAndUpgrade(t *testing.T) {
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
	// The Upgrade form (RFC 7540 §3.2, dropped by RFC 9113, still what
	// curl --http2 sends): 101, then the request is stream 1 and the
	// connection carries on in HTTP/2. curl asks twice on one connection.
	out, err = exec.Command("curl", "-sv", "--http2", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_version} %{http_code} %{num_connects}\n", url, url).CombinedOutput()
	if err != nil {
		t.Fatalf("curl --http2: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "< HTTP/1.1 101") || !strings.Contains(string(out), "2 200 1\n2 200 0") {
		t.Fatalf("curl --http2 (Upgrade: h2c) was not upgraded on one connection:\n%s", out)
	}
	// A request with a body is answered over HTTP/1.1 (the body would have
	// to be read before switching); so is a malformed HTTP2-Settings.
	out, err = exec.Command("curl", "-s", "--http2", "-d", "payload", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", url).Output()
	if err != nil || strings.TrimSpace(string(out)) != "1.1 200" {
		t.Fatalf("curl --http2 with a body: %q %v", out, err)
	}
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Upgrade", "h2c")
	req.Header.Set("Connection", "Upgrade, HTTP2-Settings")
	req.Header.Set("HTTP2-Settings", "!!not base64!!")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 1 {
		t.Fatalf("a malformed HTTP2-Settings: %s %d, want HTTP/1.1 200", resp.Proto, resp.StatusCode)
	}
}
