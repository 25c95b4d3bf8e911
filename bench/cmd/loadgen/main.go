// Command loadgen drives the scenarios the standard tools cannot: TLS
// handshakes with one request per connection (full or resumed, checked per
// connection), large bodies, idle connections, and keep-alive requests with
// latency percentiles. Every run is bounded by a count and a duration. It
// prints one line of key=value results.
//
//	loadgen hs    -addr A [-resume] [-rate R | -c C] [-names FILE] -d D -n N
//	loadgen body  -addr A (-down | -up) -c C -d D -n N
//	loadgen h1    -addr A -rate R -c C -d D -n N
//	loadgen idle  -addr A -conns N -hold D
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	mu        sync.Mutex
	ok, fail  atomic.Int64
	behind    atomic.Int64 // operations not sent: the generator itself was saturated
	resumed   atomic.Int64
	latencies []time.Duration
	firstErr  string
}

func (r *result) record(d time.Duration, err error) {
	if err != nil {
		if r.fail.Add(1) == 1 {
			r.mu.Lock()
			r.firstErr = err.Error()
			r.mu.Unlock()
		}
		return
	}
	r.ok.Add(1)
	r.mu.Lock()
	r.latencies = append(r.latencies, d)
	r.mu.Unlock()
}

func (r *result) print(elapsed time.Duration) {
	slices.Sort(r.latencies)
	pct := func(p float64) float64 {
		if len(r.latencies) == 0 {
			return 0
		}
		return float64(r.latencies[int(p*float64(len(r.latencies)-1))]) / 1e6
	}
	fmt.Printf("ok=%d fail=%d behind=%d resumed=%d rps=%.1f p50_ms=%.3f p99_ms=%.3f elapsed_s=%.3f err=%q\n",
		r.ok.Load(), r.fail.Load(), r.behind.Load(), r.resumed.Load(), float64(r.ok.Load())/elapsed.Seconds(),
		pct(0.50), pct(0.99), elapsed.Seconds(), r.firstErr)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen hs|body|h1|idle [flags]")
		os.Exit(2)
	}
	mode := os.Args[1]
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:8443", "proxy address")
	sni := fs.String("sni", "localhost", "server name")
	namesFile := fs.String("names", "", "file of server names, one a line; each connection picks one at random")
	resume := fs.Bool("resume", false, "resume TLS sessions (hs)")
	rate := fs.Float64("rate", 0, "operations per second; 0 = closed loop")
	conc := fs.Int("c", 16, "concurrent workers")
	dur := fs.Duration("d", 10*time.Second, "duration bound")
	n := fs.Int64("n", 1_000_000, "operation count bound")
	down := fs.Bool("down", false, "GET /1m (body)")
	up := fs.Bool("up", false, "POST 1 MiB (body)")
	conns := fs.Int("conns", 1000, "idle connections (idle)")
	hold := fs.Duration("hold", 30*time.Second, "how long idle connections are held")
	_ = fs.Parse(os.Args[2:])

	names := []string{*sni}
	if *namesFile != "" {
		data, err := os.ReadFile(*namesFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		names = strings.Fields(string(data))
	}
	// Pin X25519 and skip verification: the bench measures the server, and
	// OpenSSL 3.0 peers cannot do Go's default hybrid post-quantum group.
	base := &tls.Config{InsecureSkipVerify: true, CurvePreferences: []tls.CurveID{tls.X25519}, MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"}}
	if *resume {
		base.ClientSessionCache = tls.NewLRUClientSessionCache(len(names) * 4)
	}
	res := &result{}
	var op func() error
	switch mode {
	case "hs":
		op = func() error { return handshakeRequest(*addr, base, names[rand.IntN(len(names))], res) }
	case "body", "h1":
		tr := &http.Transport{TLSClientConfig: base.Clone(), MaxIdleConnsPerHost: *conc, DisableCompression: true}
		tr.TLSClientConfig.ServerName = *sni
		client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
		payload := bytes.Repeat([]byte("u"), 1<<20)
		op = func() error { return request(client, *addr, mode, *down, *up, payload) }
	case "idle":
		idle(*addr, base, *sni, *conns, *hold)
		return
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", mode)
		os.Exit(2)
	}
	start := time.Now()
	drive(op, res, *rate, *conc, *dur, *n)
	res.print(time.Since(start))
}

// drive runs op closed-loop with conc workers, or at a fixed rate (with up
// to conc*8 operations outstanding), until d passes or n operations ran.
func drive(op func() error, res *result, rate float64, conc int, d time.Duration, n int64) {
	deadline := time.Now().Add(d)
	var issued atomic.Int64
	var wg sync.WaitGroup
	run := func() {
		t := time.Now()
		err := op()
		res.record(time.Since(t), err)
	}
	if rate <= 0 {
		for range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) && issued.Add(1) <= n {
					run()
				}
			}()
		}
		wg.Wait()
		return
	}
	sem := make(chan struct{}, conc*8)
	interval := time.Duration(float64(time.Second) / rate)
	next := time.Now()
	for time.Now().Before(deadline) && issued.Add(1) <= n {
		time.Sleep(time.Until(next))
		next = next.Add(interval)
		select {
		case sem <- struct{}{}:
		default:
			res.behind.Add(1) // not a proxy failure: the generator could not keep the rate
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			run()
		}()
	}
	wg.Wait()
}

// handshakeRequest opens a TLS connection, sends one request with
// Connection: close, and reads the whole response.
func handshakeRequest(addr string, base *tls.Config, name string, res *result) error {
	cfg := base.Clone()
	cfg.ServerName = name
	cfg.ClientSessionCache = base.ClientSessionCache
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", name); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	if conn.ConnectionState().DidResume {
		res.resumed.Add(1)
	}
	return err
}

func request(c *http.Client, addr, mode string, down, up bool, payload []byte) error {
	url := "https://" + addr + "/"
	var resp *http.Response
	var err error
	switch {
	case mode == "body" && up:
		resp, err = c.Post(url, "application/octet-stream", bytes.NewReader(payload))
	case mode == "body" && down:
		resp, err = c.Get(url + "1m")
	default:
		resp, err = c.Get(url)
	}
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	return err
}

// idle opens conns connections with one request each, reports, holds them
// until hold passes (or stdin closes), then closes them.
func idle(addr string, base *tls.Config, sni string, conns int, hold time.Duration) {
	open := make([]net.Conn, 0, conns)
	fail := 0
	for range conns {
		cfg := base.Clone()
		cfg.ServerName = sni
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			_, err = fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", sni)
			if err == nil {
				var resp *http.Response
				resp, err = http.ReadResponse(bufio.NewReader(c), nil)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
			_ = c.SetDeadline(time.Time{})
		}
		if err != nil {
			fail++
			if c != nil {
				c.Close()
			}
			continue
		}
		open = append(open, c)
	}
	fmt.Printf("open=%d fail=%d\n", len(open), fail)
	done := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(done) }()
	select {
	case <-time.After(hold):
	case <-done:
	}
	for _, c := range open {
		c.Close()
	}
}
