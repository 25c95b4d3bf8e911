package haproxycfg

import (
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net"
	"path/filepath"
	"strings"

	"github.com/terminator-proxy/terminator/config"
)

// Translate reads a haproxy.cfg rendered by Octavia's JinjaTemplater and
// returns the equivalent terminator configuration. readFile reads the
// crt-list files the bind lines name. Every problem is reported, with its
// line. The result is not yet validated (config.Config.Validate does that).
func Translate(data []byte, readFile func(path string) ([]byte, error)) (*config.Config, error) {
	sections, ps := split(data)
	t := &translator{readFile: readFile, pools: map[string]*config.Pool{}, headers: map[string]map[string]string{}, backendTimeouts: map[string][2]*int{}}
	t.problems = ps
	for _, s := range sections {
		if s.name == prometheusFrontend || s.name == prometheusBackend {
			t.internal(s) // haproxy's own exporter; terminator's PROMETHEUS listeners serve their metrics
			continue
		}
		switch s.kind {
		case "global":
			t.global(s)
		case "defaults":
			t.defaults(s)
		case "peers":
			t.peersSection(s)
		case "backend":
			t.backend(s)
		}
	}
	for _, s := range sections {
		if s.kind == "frontend" && s.name != prometheusFrontend {
			t.frontend(s)
		}
	}
	if len(t.problems) > 0 {
		return nil, t.problems
	}
	cfg := &config.Config{Listeners: t.listeners, Peers: t.peers}
	for _, name := range t.poolOrder {
		cfg.Pools = append(cfg.Pools, *t.pools[name])
	}
	return cfg, nil
}

// The internal sections Octavia renders for PROMETHEUS listeners, whose
// frontends use the second as their default backend.
const (
	prometheusFrontend = "prometheus-exporter-internal-endpoint"
	prometheusBackend  = "prometheus-exporter-internal"
)

// internalLines are the lines of those sections, exactly as rendered.
var internalLines = map[string]bool{
	"bind 127.0.0.1:9101": true, "mode http": true, "no log": true,
	"http-request use-service prometheus-exporter if { path /metrics }": true, "http-request reject": true,
	"timeout http-request 5s": true, "timeout client 5s": true, "balance first": true, "timeout connect 5s": true,
	"timeout server 5s": true, "server prometheus-internal 127.0.0.1:9102": true,
}

// internal checks an exporter section holds only what Octavia renders.
func (t *translator) internal(s section) {
	for _, l := range s.lines {
		if !internalLines[strings.Join(l.words, " ")] {
			t.unknown(s, l)
		}
	}
}

type translator struct {
	readFile  func(string) ([]byte, error)
	problems  Problems
	listeners []config.Listener
	pools     map[string]*config.Pool
	poolOrder []string
	// headers holds each backend's inserted headers, which Octavia renders
	// per backend from its listener's insert_headers.
	headers map[string]map[string]string
	// backendTimeouts are each backend's timeout connect and server, which
	// Octavia renders from its listener's timeouts.
	backendTimeouts map[string][2]*int
	peers           *config.Peers
}

func (t *translator) errorf(n int, format string, args ...any) {
	t.problems = append(t.problems, Problem{n, fmt.Sprintf(format, args...)})
}

func (t *translator) unknown(s section, l line) {
	t.errorf(l.n, "'%s' in '%s' section is not part of the configuration Octavia renders; terminator does not serve it", strings.Join(l.words, " "), s.kind)
}

// global accepts what Octavia's global section holds: process settings
// that terminator has its own ways for, or that do not apply.
func (t *translator) global(s section) {
	for _, l := range s.lines {
		switch l.words[0] {
		case "daemon", "user", "group", "log", "maxconn", "server-state-file", "tune.ssl.cachesize",
			"nbthread", "cpu-map", "external-check", "insecure-fork-wanted":
		case "stats":
			if len(l.words) < 2 || l.words[1] != "socket" {
				t.unknown(s, l)
			}
		default:
			t.unknown(s, l)
		}
	}
}

// defaults accepts Octavia's defaults, which are terminator's behaviour
// (three retries with redispatch, keep-alive).
func (t *translator) defaults(s section) {
	for _, l := range s.lines {
		w := strings.Join(l.words, " ")
		switch w {
		case "log global", "no log", "retries 3", "option redispatch", "option splice-request",
			"option splice-response", "option http-keep-alive":
		default:
			t.unknown(s, l)
		}
	}
}

// peersSection is the ACTIVE_STANDBY pair's stick-table synchronisation:
// every amphora by name (Octavia's hash of its id) and VRRP address. Which
// one is local, and the key, are the agent's to say (LocalPeer).
func (t *translator) peersSection(s section) {
	t.peers = &config.Peers{}
	for _, l := range s.lines {
		if l.words[0] != "peer" || len(l.words) != 3 {
			t.unknown(s, l)
			continue
		}
		t.peers.Peers = append(t.peers.Peers, config.Peer{Name: l.words[1], Address: l.words[2]})
	}
}

// LocalPeer is the name Octavia gives an amphora in the peers section:
// the base64 (with "_-") of the SHA-1 of its id, a leading "-" made "x",
// without padding (octavia.common.utils.base64_sha1_string and the
// template's filter).
func LocalPeer(amphoraID string) string {
	sum := sha1.Sum([]byte(amphoraID))
	name := base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-").EncodeToString(sum[:])
	if strings.HasPrefix(name, "-") {
		name = "x" + name[1:]
	}
	return strings.ReplaceAll(name, "=", "")
}

// crtList reads a crt-list file: certificate bundle paths, one a line,
// the default first (Octavia writes no per-line options).
func (t *translator) crtList(n int, path string) (def string, sni []string) {
	data, err := t.readFile(path)
	if err != nil {
		t.errorf(n, "crt-list '%s': %v", path, err)
		return "", nil
	}
	for _, f := range strings.Fields(string(data)) {
		if !filepath.IsAbs(f) {
			t.errorf(n, "crt-list '%s': '%s' is not an absolute path", path, f)
			continue
		}
		if def == "" {
			def = "file://" + f
			continue
		}
		sni = append(sni, "file://"+f)
	}
	if def == "" {
		t.errorf(n, "crt-list '%s' names no certificate", path)
	}
	return def, sni
}

// tlsVersions turns no-sslv3 … no-tlsv13 flags into Octavia's version list.
func tlsVersions(no map[string]bool) []string {
	var out []string
	for _, v := range []struct{ flag, name string }{{"no-sslv3", "SSLv3"}, {"no-tlsv10", "TLSv1"}, {"no-tlsv11", "TLSv1.1"}, {"no-tlsv12", "TLSv1.2"}, {"no-tlsv13", "TLSv1.3"}} {
		if !no[v.flag] {
			out = append(out, v.name)
		}
	}
	return out
}

// hostPort reads haproxy's ADDRESS:PORT, where an IPv6 address may stand
// without brackets (Octavia renders "2001:db8::2:80"); the port is after
// the last colon. It returns the address in Go's form ("[2001:db8::2]:80").
func hostPort(addr string) (host, port string, err error) {
	if strings.HasPrefix(addr, "[") {
		return net.SplitHostPort(addr)
	}
	i := strings.LastIndexByte(addr, ':')
	if i <= 0 || i == len(addr)-1 {
		return "", "", fmt.Errorf("address %q has no port", addr)
	}
	host, port = addr[:i], addr[i+1:]
	if strings.Contains(host, ":") && net.ParseIP(host) == nil {
		return "", "", fmt.Errorf("address %q is not IP:PORT", addr)
	}
	return host, port, nil
}
