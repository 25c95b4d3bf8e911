package haproxycfg

import (
	"net"
	"strconv"
	"strings"

	"github.com/terminator-proxy/terminator/config"
)

var clientAuth = map[string]string{"none": "NONE", "optional": "OPTIONAL", "required": "MANDATORY"}

// frontend translates one Octavia listener.
func (t *translator) frontend(s section) {
	l := config.Listener{ID: s.name}
	mode := ""
	prometheus := false
	acls := map[string]config.L7Rule{}
	binds := 0
	for _, ln := range s.lines {
		w := ln.words
		switch {
		case w[0] == "maxconn" && len(w) == 2:
			n, err := strconv.Atoi(w[1])
			if err != nil {
				t.errorf(ln.n, "maxconn '%s' is not a number", w[1])
			}
			l.ConnectionLimit = &n
		case strings.Join(w, " ") == "redirect scheme https if !{ ssl_fc }":
			// Every request of a TLS listener arrives over TLS.
		case w[0] == "http-response" && len(w) == 4 && w[1] == "set-header" && w[2] == "Strict-Transport-Security":
			t.hsts(ln, &l, w[3])
		case w[0] == "bind":
			binds++
			if binds > 1 { // an additional VIP: Octavia renders the same options for it
				extra := config.Listener{}
				t.bind(ln, &extra)
				if extra.Bind != "" {
					l.AdditionalBinds = append(l.AdditionalBinds, extra.Bind)
				}
				continue
			}
			t.bind(ln, &l)
		case w[0] == "mode" && len(w) == 2 && (w[1] == "http" || w[1] == "tcp"):
			mode = w[1]
		case w[0] == "acl" && len(w) >= 3:
			if r, ok := t.acl(ln); ok {
				acls[w[1]] = r
			}
		case w[0] == "use_backend", w[0] == "redirect", w[0] == "http-request" && len(w) > 1 && w[1] == "deny":
			if p, ok := t.policy(ln, acls); ok {
				p.Position = len(l.L7Policies) + 1
				l.L7Policies = append(l.L7Policies, p)
			}
		case w[0] == "default_backend" && len(w) == 2 && w[1] == prometheusBackend:
			prometheus = true
		case w[0] == "default_backend" && len(w) == 2:
			l.DefaultPool = w[1]
			if t.pools[w[1]] == nil {
				t.errorf(ln.n, "default_backend '%s' names no backend", w[1])
			}
		case w[0] == "timeout" && len(w) == 3 && w[1] == "client":
			l.TimeoutClientData = t.ms(ln, w[2])
		case w[0] == "tcp-request" && len(w) == 4 && w[1] == "inspect-delay":
			// timeout_tcp_inspect: terminator reads no content before
			// choosing a TCP member.
		case w[0] == "log-format":
			// user_log_format: access logs keep terminator's own layout.
		default:
			t.unknown(s, ln)
		}
	}
	switch {
	case binds == 0:
		t.errorf(s.n, "frontend '%s' has no bind line", s.name)
	case prometheus:
		l.Protocol = config.ProtocolPrometheus
	case l.DefaultTLSContainerRef != "":
		l.Protocol = config.ProtocolTerminatedHTTPS
		if mode != "http" {
			t.errorf(s.n, "frontend '%s': a TLS-terminating bind needs mode http", s.name)
		}
	case mode == "http":
		l.Protocol = config.ProtocolHTTP
	case mode == "tcp":
		l.Protocol = "TCP" // TCP and HTTPS pass-through listeners render alike
	default:
		t.errorf(s.n, "frontend '%s' has no mode http or tcp", s.name)
	}
	t.backendSettings(&l)
	t.listeners = append(t.listeners, l)
}

// bind reads "bind ADDR:PORT [ssl crt-list F [ca-file F verify V] [crl-file F] ciphers C no-… alpn A]".
func (t *translator) bind(ln line, l *config.Listener) {
	w := ln.words
	if len(w) < 2 {
		t.errorf(ln.n, "bind needs an address")
		return
	}
	host, port, err := hostPort(w[1])
	if err != nil {
		t.errorf(ln.n, "bind: %v", err)
		return
	}
	l.Bind = net.JoinHostPort(host, port)
	no := map[string]bool{}
	tls := false
	for i := 2; i < len(w); i++ {
		arg := func() string {
			if i+1 >= len(w) {
				t.errorf(ln.n, "bind option '%s' needs a value", w[i])
				return ""
			}
			i++
			return w[i]
		}
		switch w[i] {
		case "ssl":
			tls = true
		case "crt-list":
			l.DefaultTLSContainerRef, l.SNIContainerRefs = t.crtList(ln.n, arg())
		case "ca-file":
			l.ClientCATLSContainerRef = "file://" + arg()
		case "verify":
			v := arg()
			if a, ok := clientAuth[v]; ok {
				l.ClientAuthentication = a
			} else {
				t.errorf(ln.n, "bind verify '%s' is not none, optional or required", v)
			}
		case "crl-file":
			l.ClientCRLContainerRef = "file://" + arg()
		case "ciphers":
			l.TLSCiphers = arg()
		case "no-sslv3", "no-tlsv10", "no-tlsv11", "no-tlsv12", "no-tlsv13":
			no[w[i]] = true
		case "alpn":
			l.ALPNProtocols = strings.Split(arg(), ",")
		default:
			t.errorf(ln.n, "bind option '%s' is not part of the configuration Octavia renders", w[i])
		}
	}
	if tls {
		l.TLSVersions = tlsVersions(no)
		if l.DefaultTLSContainerRef == "" {
			t.errorf(ln.n, "bind ssl without crt-list: Octavia always names the certificates in a crt-list")
		}
	} else if l.DefaultTLSContainerRef != "" {
		t.errorf(ln.n, "crt-list without ssl")
	}
}

// hsts reads Strict-Transport-Security "max-age=N;[ includeSubDomains;][ preload;]".
func (t *translator) hsts(ln line, l *config.Listener, v string) {
	for _, part := range strings.Split(v, ";") {
		part = strings.TrimSpace(part)
		switch {
		case strings.HasPrefix(part, "max-age="):
			n, err := strconv.Atoi(strings.TrimPrefix(part, "max-age="))
			if err != nil {
				t.errorf(ln.n, "HSTS max-age '%s' is not a number", part)
			}
			l.HSTSMaxAge = &n
		case part == "includeSubDomains":
			l.HSTSIncludeSubdomain = true
		case part == "preload":
			l.HSTSPreload = true
		case part != "":
			t.errorf(ln.n, "HSTS directive '%s' is not one Octavia renders", part)
		}
	}
}

func (t *translator) ms(ln line, v string) *int {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.errorf(ln.n, "timeout '%s' is not a whole number of milliseconds", v)
		return nil
	}
	return &n
}

// backendSettings gives the listener what Octavia renders into each of its
// backends: inserted headers and member timeouts (taken from its default
// backend, or any backend it routes to).
func (t *translator) backendSettings(l *config.Listener) {
	names := []string{l.DefaultPool}
	for _, p := range l.L7Policies {
		names = append(names, p.RedirectPool)
	}
	for _, name := range names {
		if h := t.headers[name]; len(h) > 0 && l.InsertHeaders == nil {
			l.InsertHeaders = h
		}
		if to, ok := t.backendTimeouts[name]; ok && l.TimeoutMemberConnect == nil {
			l.TimeoutMemberConnect, l.TimeoutMemberData = to[0], to[1]
		}
	}
}
