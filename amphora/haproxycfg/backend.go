package haproxycfg

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/terminator-proxy/terminator/config"
)

var algorithms = map[string]string{"roundrobin": "ROUND_ROBIN", "leastconn": "LEAST_CONNECTIONS", "source": "SOURCE_IP"}

// setHeaders maps Octavia's http-request set-header lines back to the
// insert_headers that produced them.
var setHeaders = map[string]string{
	"X-Forwarded-Port %[dst_port]":                   "X-Forwarded-Port",
	"X-Forwarded-Proto http":                         "X-Forwarded-Proto",
	"X-Forwarded-Proto https":                        "X-Forwarded-Proto",
	"X-SSL-Client-Verify %[ssl_c_verify]":            "X-SSL-Client-Verify",
	"X-SSL-Client-Has-Cert %[ssl_c_used]":            "X-SSL-Client-Has-Cert",
	"X-SSL-Client-DN %{+Q}[ssl_c_s_dn]":              "X-SSL-Client-DN",
	"X-SSL-Client-CN %{+Q}[ssl_c_s_dn(cn)]":          "X-SSL-Client-CN",
	"X-SSL-Issuer %{+Q}[ssl_c_i_dn]":                 "X-SSL-Issuer",
	"X-SSL-Client-SHA1 %{+Q}[ssl_c_sha1,hex]":        "X-SSL-Client-SHA1",
	"X-SSL-Client-Not-Before %{+Q}[ssl_c_notbefore]": "X-SSL-Client-Not-Before",
	"X-SSL-Client-Not-After %{+Q}[ssl_c_notafter]":   "X-SSL-Client-Not-After",
}

// backend translates one "<pool_id>:<listener_id>" backend into a pool of
// that name.
func (t *translator) backend(s section) {
	p := &config.Pool{Name: s.name, LBAlgorithm: "ROUND_ROBIN"}
	var hm *config.HealthMonitor
	headers := map[string]string{}
	var connect, server *int
	mode := ""
	for _, ln := range s.lines {
		w := ln.words
		all := strings.Join(w, " ")
		switch {
		case w[0] == "mode" && len(w) == 2 && (w[1] == "http" || w[1] == "tcp"):
			mode = w[1]
		case all == "http-reuse safe", all == "load-server-state-from-file global", all == "option allbackups", w[0] == "fullconn":
			// Connection reuse, state across reloads and backups all
			// serving together are terminator's behaviour already.
		case all == "cookie SRV insert indirect nocache":
			t.persist(p, "HTTP_COOKIE", "")
		case w[0] == "balance" && len(w) == 2 && algorithms[w[1]] != "":
			p.LBAlgorithm = algorithms[w[1]]
		case w[0] == "stick-table":
			// The table's size is Octavia's haproxy_stick_size, as terminator's.
		case all == "stick on src":
			t.persist(p, "SOURCE_IP", "")
		case len(w) == 3 && w[0] == "stick" && w[1] == "store-response" && strings.HasPrefix(w[2], "res.cook("):
			t.persist(p, "APP_COOKIE", strings.TrimSuffix(strings.TrimPrefix(w[2], "res.cook("), ")"))
		case len(w) == 3 && w[0] == "stick" && w[1] == "match" && strings.HasPrefix(w[2], "req.cook("):
		case w[0] == "timeout" && len(w) == 3 && w[1] == "check":
			hm = t.monitor(hm)
			hm.Timeout = t.seconds(ln, w[2])
		case w[0] == "option" && len(w) >= 4 && w[1] == "httpchk":
			hm = t.monitor(hm)
			t.httpchk(ln, hm)
		case w[0] == "http-check" && len(w) == 4 && w[1] == "expect" && w[2] == "rstatus":
			hm = t.monitor(hm)
			hm.ExpectedCodes = t.expectedCodes(ln, w[3])
		case all == "option ssl-hello-chk":
			hm = t.monitor(hm)
			hm.Type = "TLS-HELLO"
		case all == "option external-check", len(w) == 3 && w[0] == "external-check" && w[1] == "command":
			hm = t.monitor(hm)
			hm.Type = "PING"
		case all == "option forwardfor":
			headers["X-Forwarded-For"] = "true"
		case w[0] == "http-request" && len(w) >= 4 && w[1] == "set-header" && setHeaders[strings.Join(w[2:], " ")] != "":
			headers[setHeaders[strings.Join(w[2:], " ")]] = "true"
		case w[0] == "timeout" && len(w) == 3 && w[1] == "connect":
			connect = t.ms(ln, w[2])
		case w[0] == "timeout" && len(w) == 3 && w[1] == "server":
			server = t.ms(ln, w[2])
		case w[0] == "server":
			t.server(ln, p, &hm)
		default:
			t.unknown(s, ln)
		}
	}
	switch {
	case p.Protocol != "": // PROXY, PROXYV2 from the server lines
	case mode == "http":
		p.Protocol = "HTTP"
	case mode == "tcp":
		p.Protocol = "TCP"
	default:
		t.errorf(s.n, "backend '%s' has no mode http or tcp", s.name)
	}
	if hm != nil && hm.Type == "" {
		hm.Type = "TCP"
	}
	p.HealthMonitor = hm
	if t.pools[s.name] != nil {
		t.errorf(s.n, "backend '%s' is defined twice", s.name)
		return
	}
	t.pools[s.name] = p
	t.poolOrder = append(t.poolOrder, s.name)
	if len(headers) > 0 {
		t.headers[s.name] = headers
	}
	t.backendTimeouts[s.name] = [2]*int{connect, server}
}

func (t *translator) persist(p *config.Pool, kind, cookie string) {
	p.SessionPersistence = &config.SessionPersistence{Type: kind, CookieName: cookie}
}

func (t *translator) monitor(hm *config.HealthMonitor) *config.HealthMonitor {
	if hm == nil {
		hm = &config.HealthMonitor{}
	}
	return hm
}

// seconds reads Octavia's "<n>s".
func (t *translator) seconds(ln line, v string) int {
	n, err := strconv.Atoi(strings.TrimSuffix(v, "s"))
	if err != nil || !strings.HasSuffix(v, "s") {
		t.errorf(ln.n, "'%s' is not a number of seconds ('<n>s')", v)
	}
	return n
}

// httpchk reads "option httpchk METHOD PATH [HTTP/1.x\r\n[Host: NAME]]".
func (t *translator) httpchk(ln line, hm *config.HealthMonitor) {
	w := ln.words
	hm.Type, hm.HTTPMethod, hm.URLPath = "HTTP", w[2], w[3]
	if len(w) == 4 {
		return
	}
	if len(w) != 5 {
		t.errorf(ln.n, "option httpchk: expected METHOD PATH [VERSION]")
		return
	}
	version, host, _ := strings.Cut(w[4], "\r\n")
	switch version {
	case "HTTP/1.0":
		v := 1.0
		hm.HTTPVersion = &v
	case "HTTP/1.1":
		v := 1.1
		hm.HTTPVersion = &v
	default:
		t.errorf(ln.n, "option httpchk: version '%s' is not HTTP/1.0 or HTTP/1.1", version)
	}
	if name, ok := strings.CutPrefix(host, "Host: "); ok {
		hm.DomainName = name
	} else if host != "" {
		t.errorf(ln.n, "option httpchk: only a Host header follows the version")
	}
}

var codeAlternation = regexp.MustCompile(`^\d{3}(\|\d{3})*$`)

// expectedCodes turns Octavia's rstatus expression (a code, or codes
// joined with '|', as it expands "200-204" and "200, 202") back into
// expected_codes.
func (t *translator) expectedCodes(ln line, v string) string {
	if !codeAlternation.MatchString(v) {
		t.errorf(ln.n, "http-check expect rstatus '%s' is not a code or codes joined with '|'", v)
		return ""
	}
	return strings.ReplaceAll(v, "|", ",")
}

// server reads a member line with Octavia's options in order.
func (t *translator) server(ln line, p *config.Pool, hm **config.HealthMonitor) {
	w := ln.words
	if len(w) < 5 || w[3] != "weight" {
		t.errorf(ln.n, "server: expected 'server ID ADDRESS:PORT weight W …'")
		return
	}
	host, port, err := hostPort(w[2])
	pn, perr := strconv.Atoi(port)
	weight, werr := strconv.Atoi(w[4])
	if err != nil || perr != nil || werr != nil {
		t.errorf(ln.n, "server '%s': bad address '%s' or weight '%s'", w[1], w[2], w[4])
		return
	}
	m := config.Member{ID: w[1], Name: w[1], Address: host, ProtocolPort: pn, Weight: &weight}
	no := map[string]bool{}
	tls := false
	for i := 5; i < len(w); i++ {
		arg := func() string {
			if i+1 >= len(w) {
				t.errorf(ln.n, "server option '%s' needs a value", w[i])
				return ""
			}
			i++
			return w[i]
		}
		switch w[i] {
		case "check":
			*hm = t.monitor(*hm)
		case "check-ssl":
			*hm = t.monitor(*hm)
			if (*hm).Type == "HTTP" {
				(*hm).Type = "HTTPS"
			}
		case "inter":
			*hm = t.monitor(*hm)
			(*hm).Delay = t.seconds(ln, arg())
		case "fall":
			*hm = t.monitor(*hm)
			(*hm).MaxRetriesDown = t.count(ln, w[i], arg())
		case "rise":
			*hm = t.monitor(*hm)
			(*hm).MaxRetries = t.count(ln, w[i], arg())
		case "addr":
			m.MonitorAddress = arg()
		case "port":
			m.MonitorPort = t.count(ln, w[i], arg())
		case "cookie":
			arg() // the member id, as terminator's HTTP_COOKIE uses
		case "send-proxy":
			p.Protocol = "PROXY"
		case "send-proxy-v2", "send-proxy-v2-ssl-cn":
			p.Protocol = "PROXYV2"
		case "backup":
			m.Backup = true
		case "disabled":
			off := false
			m.AdminStateUp = &off
		case "ssl":
			tls = true
		case "crt":
			p.TLSContainerRef = "file://" + arg()
		case "ca-file":
			p.CATLSContainerRef = "file://" + arg()
		case "crl-file":
			p.CRLContainerRef = "file://" + arg()
		case "verify":
			if v := arg(); v != "none" && v != "required" {
				t.errorf(ln.n, "server verify '%s' is not none or required", v)
			}
		case "sni":
			if v := arg(); v != "ssl_fc_sni" {
				t.errorf(ln.n, "server sni '%s': terminator sends the client's SNI (ssl_fc_sni)", v)
			}
		case "ciphers":
			p.TLSCiphers = arg()
		case "no-sslv3", "no-tlsv10", "no-tlsv11", "no-tlsv12", "no-tlsv13":
			no[w[i]] = true
		case "alpn":
			p.ALPNProtocols = strings.Split(arg(), ",")
		default:
			t.errorf(ln.n, "server option '%s' is not part of the configuration Octavia renders", w[i])
		}
	}
	if tls {
		p.TLSEnabled = true
		p.TLSVersions = tlsVersions(no)
	}
	p.Members = append(p.Members, m)
}

// count reads a whole number option.
func (t *translator) count(ln line, name, v string) int {
	n, err := strconv.Atoi(v)
	if err != nil {
		t.errorf(ln.n, "%s '%s' is not a whole number", name, v)
	}
	return n
}
