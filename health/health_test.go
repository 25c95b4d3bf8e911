package health

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestProbes(t *testing.T) {
	var status = 200
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" || r.Method != "HEAD" && r.Method != "GET" {
			w.WriteHeader(404)
			return
		}
		if r.Host != "" && r.Header.Get("User-Agent") != "terminator-health-check" {
			w.WriteHeader(400)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer tlsSrv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	tlsAddr := strings.TrimPrefix(tlsSrv.URL, "https://")
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	silent, _ := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	defer silent.Close()

	cases := []struct {
		name                     string
		typ, method, path, codes string
		version, host            string
		addr                     string
		status                   int
		ok                       bool
	}{
		{"TCP up", "TCP", "", "", "", "", "", addr, 200, true},
		{"TCP refused", "TCP", "", "", "", "", "", deadAddr, 200, false},
		{"PING as TCP", "PING", "", "", "", "", "", addr, 200, true},
		{"HTTP 200", "HTTP", "GET", "/health", "200", "", "", addr, 200, true},
		{"HTTP 503 not expected", "HTTP", "GET", "/health", "200", "", "", addr, 503, false},
		{"HTTP list", "HTTP", "HEAD", "/health", "200, 202", "1.1", "svc.example", addr, 202, true},
		{"HTTP range", "HTTP", "GET", "/health", "200-204", "", "", addr, 204, true},
		{"HTTP range miss", "HTTP", "GET", "/health", "200-204", "", "", addr, 301, false},
		{"HTTP wrong path", "HTTP", "GET", "/nope", "200", "", "", addr, 200, false},
		{"HTTPS", "HTTPS", "GET", "/", "204", "", "", tlsAddr, 0, true},
		{"TLS-HELLO", "TLS-HELLO", "", "", "", "", "", tlsAddr, 0, true},
		{"TLS-HELLO on plain HTTP", "TLS-HELLO", "", "", "", "", "", addr, 0, false},
		{"timeout", "HTTP", "GET", "/", "200", "", "", silent.Addr().String(), 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status = tc.status
			p, err := NewProbe(tc.typ, tc.method, tc.path, tc.version, tc.host, tc.codes, 500*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err = p.Check(context.Background(), tc.addr)
			if (err == nil) != tc.ok {
				t.Fatalf("Check = %v, want healthy=%v", err, tc.ok)
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("a check took %v with a 500ms timeout", time.Since(start))
			}
		})
	}
}

// TestUDPConnect: a listening UDP port, silent or answering, is up; a closed
// one, whose ICMP port unreachable comes back at once, is down.
func TestUDPConnect(t *testing.T) {
	p, err := NewProbe("UDP-CONNECT", "", "", "", "", "", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	echo, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			echo.WriteTo(buf[:n], from)
		}
	}()
	closed, _ := net.ListenPacket("udp", "127.0.0.1:0")
	closedAddr := closed.LocalAddr().String()
	closed.Close()

	start := time.Now()
	if err := p.Check(context.Background(), echo.LocalAddr().String()); err != nil {
		t.Errorf("answering port: %v", err)
	}
	if d := time.Since(start); d >= udpWait {
		t.Errorf("an answer was not taken: the probe waited %v", d)
	}
	if err := p.Check(context.Background(), silent.LocalAddr().String()); err != nil {
		t.Errorf("silent port: %v", err)
	}
	start = time.Now()
	err = p.Check(context.Background(), closedAddr)
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("closed port: %v", err)
	}
	if d := time.Since(start); d >= udpWait {
		t.Errorf("the refusal was not taken: the probe waited %v", d)
	}
}
