// Package health probes pool members the way Octavia's health monitors
// (haproxy checks) do: TCP connect, TLS handshake (TLS-HELLO), an HTTP or
// HTTPS request whose status must be among the expected codes, or for UDP
// pools UDP-CONNECT, a datagram that must not be refused.
package health

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Probe describes one kind of check. It is immutable once built.
type Probe struct {
	Type    string // HTTP, HTTPS, TCP, TLS-HELLO, UDP-CONNECT (PING is checked as TCP)
	Method  string
	Path    string
	Version string // "1.0" or "1.1"
	Host    string // Host header (domain_name), HTTP/1.1 only
	Timeout time.Duration
	// Dial, if set, opens the probe's connection with d's settings (the
	// amphora agent dials from its network namespace).
	Dial  func(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error)
	codes func(int) bool
}

// NewProbe builds a probe; expected is Octavia's expected_codes ("200",
// "200,202", "200-204").
func NewProbe(typ, method, path, version, host, expected string, timeout time.Duration) (*Probe, error) {
	p := &Probe{Type: typ, Method: method, Path: path, Version: version, Host: host, Timeout: timeout}
	if typ == "PING" {
		p.Type = "TCP" // terminator sends no ICMP; a TCP connect stands in
	}
	if p.Version == "" {
		p.Version = "1.0"
	}
	if typ == "HTTP" || typ == "HTTPS" {
		codes, err := parseCodes(expected)
		if err != nil {
			return nil, err
		}
		p.codes = codes
	}
	return p, nil
}

func parseCodes(s string) (func(int) bool, error) {
	if lo, hi, ok := strings.Cut(s, "-"); ok {
		a, err1 := strconv.Atoi(strings.TrimSpace(lo))
		b, err2 := strconv.Atoi(strings.TrimSpace(hi))
		if err1 != nil || err2 != nil || a > b {
			return nil, fmt.Errorf("health: bad expected_codes %q", s)
		}
		return func(c int) bool { return c >= a && c <= b }, nil
	}
	set := map[int]bool{}
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("health: bad expected_codes %q", s)
		}
		set[n] = true
	}
	return func(c int) bool { return set[c] }, nil
}

// Check probes addr (host:port) once and returns nil when it is healthy.
func (p *Probe) Check(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	var d net.Dialer
	dial := p.Dial
	if dial == nil {
		dial = func(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}
	}
	if p.Type == "UDP-CONNECT" {
		return p.udpConnect(ctx, dial, addr)
	}
	conn, err := dial(ctx, &d, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	switch p.Type {
	case "TCP":
		return nil
	case "TLS-HELLO", "HTTPS":
		host, _, _ := net.SplitHostPort(addr)
		if p.Host != "" {
			host = p.Host
		}
		// A health check verifies liveness, not identity (haproxy's
		// "check-ssl verify none" for HTTPS monitors).
		tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, ServerName: host}) //nolint:gosec // see above
		if err := tc.HandshakeContext(ctx); err != nil {
			return err
		}
		if p.Type == "TLS-HELLO" {
			return nil
		}
		conn = tc
	}
	host := p.Host
	if host == "" {
		host = addr
	}
	req := fmt.Sprintf("%s %s HTTP/%s\r\n", p.Method, p.Path, p.Version)
	if p.Version == "1.1" {
		req += "Host: " + host + "\r\nConnection: close\r\n"
	}
	req += "User-Agent: terminator-health-check\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: p.Method})
	if err != nil {
		return err
	}
	resp.Body.Close()
	if !p.codes(resp.StatusCode) {
		return fmt.Errorf("status %d is not expected", resp.StatusCode)
	}
	return nil
}

// udpWait is how long UDP-CONNECT waits for the ICMP error of a closed port
// (Octavia's check script runs "nc -uzv -w1").
const udpWait = time.Second

// udpConnect sends one datagram, as nc -uz does: the member is down if the
// port is refused (ICMP port unreachable), up if it answers or stays silent.
func (p *Probe) udpConnect(ctx context.Context, dial func(context.Context, *net.Dialer, string, string) (net.Conn, error), addr string) error {
	var d net.Dialer
	conn, err := dial(ctx, &d, "udp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	wait := time.Now().Add(udpWait)
	if dl, ok := ctx.Deadline(); ok && dl.Before(wait) {
		wait = dl
	}
	_ = conn.SetDeadline(wait)
	if _, err := conn.Write([]byte("X")); err != nil {
		return err
	}
	var buf [512]byte
	_, err = conn.Read(buf[:])
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		return nil
	}
	return err
}
