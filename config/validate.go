package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Headers terminator can insert, by Octavia's names (octavia-lib
// SUPPORTED_HTTP_HEADERS and SUPPORTED_SSL_HEADERS).
var (
	httpHeaders = []string{"X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto"}
	sslHeaders  = []string{
		"X-SSL-Client-Verify", "X-SSL-Client-Has-Cert", "X-SSL-Client-DN", "X-SSL-Client-CN",
		"X-SSL-Issuer", "X-SSL-Client-SHA1", "X-SSL-Client-Not-Before", "X-SSL-Client-Not-After",
	}
	alpnNames = []string{"h2", "http/1.1", "http/1.0"}
)

// Validate checks the whole config and returns every error at once (as
// Problems) together with warnings that do not stop it from serving. It
// expects ApplyDefaults to have run.
func (c *Config) Validate() (warnings Problems, err error) {
	var v collector
	if c.Admin.Bind != "" {
		checkBind(&v, "admin.bind", c.Admin.Bind)
	}
	if !slices.Contains([]string{"text", "json"}, c.Log.Format) {
		v.errorf("log.format", "must be text or json, not %q", c.Log.Format)
	}
	if a := c.Log.Access; a != nil {
		switch a.Output {
		case "", "stderr":
		case "file":
			if a.Path == "" {
				v.errorf("log.access.path", "is required with output file")
			}
		case "syslog":
			if !strings.HasPrefix(a.SyslogAddress, "udp://") && !strings.HasPrefix(a.SyslogAddress, "tcp://") && !strings.HasPrefix(a.SyslogAddress, "unix://") {
				v.errorf("log.access.syslog_address", "must be udp://host:port, tcp://host:port or unix:///path, not %q", a.SyslogAddress)
			}
		default:
			v.errorf("log.access.output", "must be stderr, file or syslog, not %q", a.Output)
		}
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		v.errorf("log.level", "must be debug, info, warn or error, not %q", c.Log.Level)
	}
	if c.TLS.SessionTicketLifetime < 0 {
		v.errorf("tls.session_ticket_lifetime", "must be a positive number of milliseconds (default 300000, haproxy's 300 s)")
	}
	if c.TLS.RescanInterval < 0 {
		v.errorf("tls.rescan_interval", "must not be negative")
	}
	if len(c.Listeners) == 0 && c.Control == nil {
		v.errorf("listeners", "at least one listener is required (or a control section to receive them)")
	}
	if c.Control != nil {
		validateControl(&v, c.Control)
	}
	if c.Vault != nil {
		switch a := c.Vault.Auth; a.Method {
		case "", "token":
		case "approle":
			if a.RoleID == "" || a.SecretIDFile == "" {
				v.errorf("vault.auth", "approle needs role_id and secret_id_file")
			}
		case "cert":
			if a.ClientCert == "" || a.ClientKey == "" {
				v.errorf("vault.auth", "cert needs client_cert and client_key")
			}
		default:
			v.errorf("vault.auth.method", "must be token, approle or cert, not %q", a.Method)
		}
		if c.Vault.RefreshInterval < 0 {
			v.errorf("vault.refresh_interval", "must not be negative")
		}
	}
	if c.ACME != nil {
		validateACME(&v, c)
	}
	c.validatePools(&v)
	c.validatePeers(&v)
	binds := map[string]int{}
	keys := map[string]int{}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		c.validateListener(&v, i, l)
		if k := l.Key(); k != "" {
			if j, dup := keys[k]; dup {
				v.errorf(at("listeners", i, ""), "duplicate listener %q (also listeners[%d])", k, j)
			}
			keys[k] = i
		}
		for k, b := range append([]string{l.Bind}, l.AdditionalBinds...) {
			field := "bind"
			if k > 0 {
				field = fmt.Sprintf("additional_binds[%d]", k-1)
			}
			key := b
			if l.Protocol == ProtocolUDP { // UDP and TCP may share a port (DNS)
				key = "udp " + b
			}
			if j, dup := binds[key]; dup && b != "" {
				v.errorf(at("listeners", i, field), "address %s is already bound by listeners[%d]", b, j)
			}
			if k > 0 {
				checkBind(&v, at("listeners", i, field), b)
			}
			binds[key] = i
		}
	}
	if len(v.errs) > 0 {
		return v.warns, v.errs
	}
	return v.warns, nil
}

func (c *Config) validateListener(v *collector, i int, l *Listener) {
	p := func(field string) string { return at("listeners", i, field) }
	if l.Key() == "" {
		v.errorf(p(""), "a listener needs a name or an id")
	}
	checkLen(v, p("name"), l.Name)
	checkLen(v, p("description"), l.Description)
	switch l.Protocol {
	case ProtocolHTTP, ProtocolTerminatedHTTPS, ProtocolTCP, ProtocolHTTPS, ProtocolPrometheus, ProtocolUDP:
	case "":
		v.errorf(p("protocol"), "is required (HTTP, TERMINATED_HTTPS, TCP, HTTPS, UDP or PROMETHEUS)")
	case "SCTP":
		v.errorf(p("protocol"), "SCTP listeners are not supported: terminator has no SCTP data path; it serves HTTP, TERMINATED_HTTPS, TCP, HTTPS (pass-through), UDP and PROMETHEUS")
	default:
		v.errorf(p("protocol"), "unknown protocol %q (want HTTP, TERMINATED_HTTPS, TCP, HTTPS, UDP or PROMETHEUS)", l.Protocol)
	}
	if l.Protocol == ProtocolPrometheus && (l.PoolRef() != "" || len(l.L7Policies) > 0) {
		v.errorf(p("default_pool"), "a PROMETHEUS listener serves terminator's metrics and takes no pool or L7 policy")
	}
	if l.Layer4() || l.Protocol == ProtocolUDP {
		layer7 := []struct {
			field string
			set   bool
		}{{"insert_headers", len(l.InsertHeaders) > 0}, {"l7policies", len(l.L7Policies) > 0}}
		for _, f := range layer7 {
			if f.set {
				v.errorf(p(f.field), "is only allowed on HTTP and TERMINATED_HTTPS listeners (%s listeners relay bytes)", l.Protocol)
			}
		}
	}
	if rd := l.HTTPSRedirect; rd != nil {
		switch {
		case l.Protocol != ProtocolHTTP:
			v.errorf(p("https_redirect"), "is only for HTTP listeners")
		case rd.Port < 0 || rd.Port > 65535:
			v.errorf(p("https_redirect.port"), "must be 1-65535, not %d", rd.Port)
		case rd.Code != 0 && !slices.Contains([]int{301, 302, 303, 307, 308}, rd.Code):
			v.errorf(p("https_redirect.code"), "must be 301, 302, 303, 307 or 308")
		}
		if l.PoolRef() != "" || len(l.L7Policies) > 0 {
			v.warnf(p("https_redirect"), "every request is redirected: the default pool and L7 policies are never used")
		}
	}
	if l.Protocol == ProtocolUDP && len(l.ProxyProtocolFrom) > 0 {
		v.errorf(p("proxy_protocol_from"), "is only for TCP-based listeners: a UDP datagram carries no PROXY header")
	}
	if l.Bind == "" {
		v.errorf(p("bind"), "is required (host:port)")
	} else {
		checkBind(v, p("bind"), l.Bind)
	}
	tlsListener := l.Protocol == ProtocolTerminatedHTTPS
	if tlsListener {
		validateTLS(v, p, l)
	} else {
		tlsOnly := []struct {
			field string
			set   bool
		}{
			{"default_tls_container_ref", l.DefaultTLSContainerRef != ""},
			{"sni_container_refs", len(l.SNIContainerRefs) > 0},
			{"client_ca_tls_container_ref", l.ClientCATLSContainerRef != ""},
			{"client_crl_container_ref", l.ClientCRLContainerRef != ""},
			{"tls_versions", len(l.TLSVersions) > 0},
			{"tls_ciphers", l.TLSCiphers != ""},
			{"alpn_protocols", len(l.ALPNProtocols) > 0},
			{"hsts_max_age", l.HSTSMaxAge != nil},
			{"strict_sni", l.StrictSNI},
		}
		for _, f := range tlsOnly {
			if f.set {
				v.errorf(p(f.field), "is only allowed on TERMINATED_HTTPS listeners")
			}
		}
		if l.ClientAuthentication != ClientAuthNone {
			v.errorf(p("client_authentication"), "is only allowed on TERMINATED_HTTPS listeners")
		}
	}
	validateHeaders(v, p("insert_headers"), l.InsertHeaders, tlsListener)
	for _, t := range []struct {
		field string
		ms    *int
	}{
		{"timeout_client_data", l.TimeoutClientData},
		{"timeout_member_connect", l.TimeoutMemberConnect},
		{"timeout_member_data", l.TimeoutMemberData},
	} {
		if t.ms != nil && (*t.ms < 0 || *t.ms > maxTimeout) {
			v.errorf(p(t.field), "must be between 0 and %d ms, not %d", maxTimeout, *t.ms)
		}
	}
	for j, c := range l.AllowedCIDRs {
		if _, err := netip.ParsePrefix(c); err != nil {
			v.errorf(at(p("allowed_cidrs"), j, ""), "not a CIDR: %q", c)
		}
	}
	for j, c := range l.ProxyProtocolFrom {
		if _, err := netip.ParsePrefix(c); err != nil {
			v.errorf(at(p("proxy_protocol_from"), j, ""), "not a CIDR: %q", c)
		}
	}
	if l.ConnectionLimit != nil && *l.ConnectionLimit < -1 {
		v.errorf(p("connection_limit"), "must be -1 (default) or more, not %d", *l.ConnectionLimit)
	}
	if l.HSTSMaxAge != nil && *l.HSTSMaxAge < 0 {
		v.errorf(p("hsts_max_age"), "must not be negative")
	}
	if (l.HSTSIncludeSubdomain || l.HSTSPreload) && l.HSTSMaxAge == nil {
		v.errorf(p("hsts_max_age"), "is required when hsts_include_subdomains or hsts_preload is set")
	}
	for j := range l.L7Policies {
		c.validatePolicy(v, at(p("l7policies"), j, ""), &l.L7Policies[j], tlsListener)
	}
	if l.DefaultPool != "" && l.DefaultPoolID != "" {
		v.errorf(p("default_pool_id"), "set default_pool or default_pool_id, not both")
	}
	if pool := c.FindPool(l.PoolRef()); pool != nil && !poolFitsListener(l.Protocol, pool.Protocol) {
		v.errorf(p("default_pool"), "a %s pool cannot serve a %s listener (Octavia's listener-pool protocol map)", pool.Protocol, l.Protocol)
	}
	if ref := l.PoolRef(); ref != "" && c.FindPool(ref) == nil {
		field := "default_pool"
		if l.DefaultPool == "" {
			field = "default_pool_id"
		}
		v.errorf(p(field), "no pool has the name or id %q", ref)
	}
}

func validateTLS(v *collector, p func(string) string, l *Listener) {
	if l.DefaultTLSContainerRef == "" && len(l.SNIContainerRefs) == 0 {
		v.errorf(p("default_tls_container_ref"), "a TERMINATED_HTTPS listener needs default_tls_container_ref or sni_container_refs")
	}
	if l.DefaultTLSContainerRef != "" {
		checkRef(v, p("default_tls_container_ref"), l.DefaultTLSContainerRef)
	}
	for j, r := range l.SNIContainerRefs {
		checkRef(v, at(p("sni_container_refs"), j, ""), r)
	}
	switch l.ClientAuthentication {
	case ClientAuthNone, ClientAuthOptional, ClientAuthMandatory:
	default:
		v.errorf(p("client_authentication"), "must be NONE, OPTIONAL or MANDATORY, not %q", l.ClientAuthentication)
	}
	if l.ClientAuthentication != ClientAuthNone && l.ClientCATLSContainerRef == "" {
		v.errorf(p("client_ca_tls_container_ref"), "is required when client_authentication is %s", l.ClientAuthentication)
	}
	if l.ClientCATLSContainerRef != "" {
		checkRef(v, p("client_ca_tls_container_ref"), l.ClientCATLSContainerRef)
		if l.ClientAuthentication == ClientAuthNone {
			v.warnf(p("client_ca_tls_container_ref"), "is set but client_authentication is NONE: client certificates are not requested")
		}
	}
	if l.ClientCRLContainerRef != "" {
		checkRef(v, p("client_crl_container_ref"), l.ClientCRLContainerRef)
		if l.ClientCATLSContainerRef == "" {
			v.errorf(p("client_crl_container_ref"), "requires client_ca_tls_container_ref")
		}
	}
	minV, _, err := ParseTLSVersions(l.TLSVersions)
	if err != nil {
		v.errorf(p("tls_versions"), "%v", err)
	}
	ids, skipped, err := ParseCiphers(l.TLSCiphers)
	switch {
	case err != nil:
		v.errorf(p("tls_ciphers"), "%v", err)
	case len(ids) == 0 && minV != 0 && minV < 0x0304:
		v.errorf(p("tls_ciphers"), "no cipher usable below TLS 1.3 remains, but tls_versions enables TLS versions below 1.3")
	case len(skipped) > 0 && l.TLSCiphers != DefaultListenerCiphers:
		v.warnf(p("tls_ciphers"), "not implemented by Go's crypto/tls, ignored: %s", strings.Join(skipped, ":"))
	}
	for j, a := range l.ALPNProtocols {
		if !slices.Contains(alpnNames, a) {
			v.errorf(at(p("alpn_protocols"), j, ""), "unknown ALPN protocol %q (want h2, http/1.1 or http/1.0)", a)
		}
	}
}

func validateHeaders(v *collector, path string, h map[string]string, tlsListener bool) {
	for _, k := range sortedKeys(h) {
		val := h[k]
		name := canonicalHeader(k)
		switch {
		case slices.Contains(sslHeaders, name):
			if !tlsListener {
				v.errorf(path+"."+k, "is only allowed on TERMINATED_HTTPS listeners")
			}
		case slices.Contains(httpHeaders, name):
		default:
			v.errorf(path+"."+k, "unknown header; supported: %s", strings.Join(append(slices.Clone(httpHeaders), sslHeaders...), ", "))
			continue
		}
		// Octavia stores any value and its template enables a header only
		// for "true" in any case; anything but true/false is probably a
		// mistake, so it is said, but not refused.
		if !strings.EqualFold(val, "true") && !strings.EqualFold(val, "false") {
			v.warnf(path+"."+k, "value %q is neither \"true\" nor \"false\" (any case): the header is not inserted", val)
		}
	}
}

func (c *Config) validatePools(v *collector) {
	keys := map[string]int{}
	for i := range c.Pools {
		pl := &c.Pools[i]
		p := func(field string) string { return at("pools", i, field) }
		if pl.Key() == "" {
			v.errorf(p(""), "a pool needs a name or an id")
		}
		for _, k := range []string{pl.ID, pl.Name} {
			if j, dup := keys[k]; dup && k != "" && j != i {
				v.errorf(p(""), "pool name or id %q is also used by pools[%d]", k, j)
			}
			if k != "" {
				keys[k] = i
			}
		}
		checkLen(v, p("name"), pl.Name)
		switch pl.Protocol {
		case ProtocolHTTP, "PROXY", "PROXYV2", ProtocolTCP, ProtocolHTTPS, ProtocolUDP:
		case "SCTP":
			v.errorf(p("protocol"), "SCTP pools are not supported: terminator has no SCTP data path")
		default:
			v.errorf(p("protocol"), "unknown pool protocol %q", pl.Protocol)
		}
		switch pl.LBAlgorithm {
		case AlgorithmRoundRobin, "LEAST_CONNECTIONS", "SOURCE_IP":
		case "SOURCE_IP_PORT":
			v.errorf(p("lb_algorithm"), "SOURCE_IP_PORT is not supported (Octavia's amphora driver rejects it too); use SOURCE_IP")
		default:
			v.errorf(p("lb_algorithm"), "unknown algorithm %q", pl.LBAlgorithm)
		}
		if pl.HealthMonitor != nil {
			validateMonitor(v, p("healthmonitor"), pl.HealthMonitor, pl.Protocol == ProtocolUDP)
		}
		validatePoolTLS(v, p, pl)
		if sp := pl.SessionPersistence; sp != nil && pl.Protocol == ProtocolUDP {
			validateUDPPersistence(v, p("session_persistence"), sp)
		} else if sp != nil {
			switch sp.Type {
			case "SOURCE_IP", "HTTP_COOKIE":
				if sp.CookieName != "" {
					v.errorf(p("session_persistence.cookie_name"), "is only allowed with APP_COOKIE")
				}
			case "APP_COOKIE":
				if !cookieName.MatchString(sp.CookieName) {
					v.errorf(p("session_persistence.cookie_name"), "APP_COOKIE needs a cookie_name without spaces, commas, semicolons or backslashes")
				}
			default:
				v.errorf(p("session_persistence.type"), "must be SOURCE_IP, HTTP_COOKIE or APP_COOKIE, not %q", sp.Type)
			}
			if sp.PersistenceTimeout != nil || sp.PersistenceGranularity != "" {
				v.errorf(p("session_persistence"), "persistence_timeout and persistence_granularity are only for UDP and SCTP pools")
			}
		}
		seen := map[string]int{}
		for j := range pl.Members {
			m := &pl.Members[j]
			mp := func(field string) string { return at(p("members"), j, field) }
			if _, err := netip.ParseAddr(m.Address); err != nil {
				v.errorf(mp("address"), "must be an IP address, not %q", m.Address)
			}
			if m.ProtocolPort < 1 || m.ProtocolPort > 65535 {
				v.errorf(mp("protocol_port"), "must be 1-65535, not %d", m.ProtocolPort)
			}
			if m.Weight != nil && (*m.Weight < 0 || *m.Weight > 256) {
				v.errorf(mp("weight"), "must be 0-256, not %d", *m.Weight)
			}
			if m.MonitorAddress != "" {
				if _, err := netip.ParseAddr(m.MonitorAddress); err != nil {
					v.errorf(mp("monitor_address"), "must be an IP address, not %q", m.MonitorAddress)
				}
			}
			if m.MaxConnections < 0 {
				v.errorf(mp("max_connections"), "must not be negative")
			}
			if m.MonitorPort < 0 || m.MonitorPort > 65535 {
				v.errorf(mp("monitor_port"), "must be 1-65535, not %d", m.MonitorPort)
			}
			addr := net.JoinHostPort(m.Address, strconv.Itoa(m.ProtocolPort))
			if k, dup := seen[addr]; dup {
				v.errorf(mp(""), "member %s is already pools[%d].members[%d]", addr, i, k)
			}
			seen[addr] = j
		}
	}
}

// checkRef checks a certificate reference's form: a URL with a scheme, or an
// Octavia local-cert-manager style path. Whether a manager handles the scheme
// is decided when the reference is fetched.
func checkRef(v *collector, path, ref string) {
	if len(ref) > 255 {
		v.errorf(path, "is longer than 255 characters")
	}
	u, err := url.Parse(ref)
	if err != nil {
		v.errorf(path, "is not a valid reference: %v", err)
		return
	}
	if u.Scheme == "" {
		v.errorf(path, "%q has no scheme; write file:///path, vault:…, acme://name or a Barbican https:// href", ref)
	}
}

func checkBind(v *collector, path, bind string) {
	host, port, err := net.SplitHostPort(bind)
	if err != nil {
		v.errorf(path, "must be host:port: %v", err)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.errorf(path, "port %q must be a number 0-65535", port)
	}
	if host != "" && host != "localhost" {
		if _, err := netip.ParseAddr(host); err != nil {
			v.errorf(path, "host must be an IP address, localhost or empty, not %q", host)
		}
	}
}

func checkLen(v *collector, path, s string) {
	if len(s) > 255 {
		v.errorf(path, "is longer than 255 characters")
	}
}

func canonicalHeader(k string) string {
	for _, h := range append(slices.Clone(httpHeaders), sslHeaders...) {
		if strings.EqualFold(h, k) {
			return h
		}
	}
	return k
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func validateControl(v *collector, c *Control) {
	if c.Bind != "" {
		checkBind(v, "control.bind", c.Bind)
	}
	if c.TLSContainerRef == "" {
		v.errorf("control.tls_container_ref", "is required: the control API's server certificate")
	} else {
		checkRef(v, "control.tls_container_ref", c.TLSContainerRef)
	}
	if c.ClientCARef == "" {
		v.errorf("control.client_ca_ref", "is required: the CA that signs controllers' certificates")
	} else {
		checkRef(v, "control.client_ca_ref", c.ClientCARef)
	}
	if c.ClientCRLRef != "" {
		checkRef(v, "control.client_crl_ref", c.ClientCRLRef)
	}
	if c.StateDir == "" {
		v.errorf("control.state_dir", "is required: where committed configuration is kept")
	}
	if r := c.Renew; r != nil {
		if (r.CADir == "") == (r.VaultRole == "") {
			v.errorf("control.renew", "set ca_dir (a terminator ca directory) or vault_role (Vault PKI), not both")
		}
		if r.CommonName == "" {
			v.errorf("control.renew.common_name", "is required")
		}
		if r.Validity != "" {
			if d, err := time.ParseDuration(r.Validity); err != nil || d < time.Minute {
				v.errorf("control.renew.validity", "must be a duration of a minute or more, like 12h")
			}
		}
	}
}

var expectedCodes = regexp.MustCompile(`^(\d{3}(\s*,\s*\d{3})*)$|^(\d{3}-\d{3})$`)

func validateMonitor(v *collector, path string, hm *HealthMonitor, udp bool) {
	http := hm.Type == "HTTP" || hm.Type == "HTTPS"
	switch {
	case udp && (hm.Type == "UDP-CONNECT" || hm.Type == "TCP" || hm.Type == "HTTP"):
		// what Octavia's keepalived-LVS template checks UDP members with
	case udp:
		v.errorf(path+".type", "a UDP pool is checked with UDP-CONNECT, TCP or HTTP, not %q", hm.Type)
	case hm.Type == "HTTP" || hm.Type == "HTTPS" || hm.Type == "TCP" || hm.Type == "TLS-HELLO" || hm.Type == "PING":
	case hm.Type == "UDP-CONNECT" || hm.Type == "SCTP":
		v.errorf(path+".type", "%s monitors are for UDP and SCTP pools", hm.Type)
	default:
		v.errorf(path+".type", "must be HTTP, HTTPS, TCP, TLS-HELLO or PING, not %q", hm.Type)
	}
	if udp && hm.Type == "HTTP" && hm.HTTPMethod != "" && hm.HTTPMethod != "GET" {
		v.errorf(path+".http_method", "a UDP pool's HTTP monitor sends GET (keepalived's HTTP_GET), not %s", hm.HTTPMethod)
	}
	if hm.Delay < 1 {
		v.errorf(path+".delay", "must be at least 1 second")
	}
	if hm.Timeout < 1 {
		v.errorf(path+".timeout", "must be at least 1 second")
	}
	if hm.MaxRetries < 1 || hm.MaxRetries > 10 {
		v.errorf(path+".max_retries", "must be 1-10, not %d", hm.MaxRetries)
	}
	if hm.MaxRetriesDown < 1 || hm.MaxRetriesDown > 10 {
		v.errorf(path+".max_retries_down", "must be 1-10, not %d", hm.MaxRetriesDown)
	}
	if !http {
		for field, set := range map[string]bool{"http_method": hm.HTTPMethod != "", "url_path": hm.URLPath != "", "expected_codes": hm.ExpectedCodes != "", "http_version": hm.HTTPVersion != nil, "domain_name": hm.DomainName != ""} {
			if set {
				v.errorf(path+"."+field, "is only allowed on HTTP and HTTPS monitors")
			}
		}
		return
	}
	if !slices.Contains([]string{"GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "OPTIONS", "CONNECT", "PATCH"}, hm.HTTPMethod) {
		v.errorf(path+".http_method", "unknown method %q", hm.HTTPMethod)
	}
	if !strings.HasPrefix(hm.URLPath, "/") {
		v.errorf(path+".url_path", "must start with /")
	}
	if !expectedCodes.MatchString(hm.ExpectedCodes) {
		v.errorf(path+".expected_codes", "must be a code (200), a list (200,202) or a range (200-204), not %q", hm.ExpectedCodes)
	}
	if hm.HTTPVersion != nil && *hm.HTTPVersion != 1.0 && *hm.HTTPVersion != 1.1 {
		v.errorf(path+".http_version", "must be 1.0 or 1.1")
	}
	if hm.DomainName != "" && (hm.HTTPVersion == nil || *hm.HTTPVersion != 1.1) {
		v.errorf(path+".domain_name", "requires http_version 1.1")
	}
}

var (
	l7Actions   = []string{"REJECT", "REDIRECT_TO_URL", "REDIRECT_PREFIX", "REDIRECT_TO_POOL"}
	l7Types     = []string{"HOST_NAME", "PATH", "FILE_TYPE", "HEADER", "COOKIE", "SSL_CONN_HAS_CERT", "SSL_VERIFY_RESULT", "SSL_DN_FIELD"}
	l7Compares  = []string{"EQUAL_TO", "STARTS_WITH", "ENDS_WITH", "CONTAINS", "REGEX"}
	httpToken   = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
	dnFieldName = regexp.MustCompile(`^[a-zA-Z][A-Za-z0-9-]*$`)
	cookieName  = regexp.MustCompile(`^[^\s,;\\]{1,255}$`)
)

func (c *Config) validatePolicy(v *collector, path string, pol *L7Policy, tlsListener bool) {
	if !slices.Contains(l7Actions, pol.Action) {
		v.errorf(path+".action", "must be one of %s, not %q", strings.Join(l7Actions, ", "), pol.Action)
	}
	if pol.Position < 1 {
		v.errorf(path+".position", "must be 1 or more")
	}
	switch pol.Action {
	case "REDIRECT_TO_POOL":
		if ref := pol.PoolRef(); ref == "" {
			v.errorf(path+".redirect_pool", "is required for REDIRECT_TO_POOL")
		} else if c.FindPool(ref) == nil {
			v.errorf(path+".redirect_pool", "no pool has the name or id %q", ref)
		}
	case "REDIRECT_TO_URL":
		if u, err := url.Parse(pol.RedirectURL); pol.RedirectURL == "" || err != nil || u.Scheme == "" || strings.ContainsAny(pol.RedirectURL, " \r\n\t") {
			v.errorf(path+".redirect_url", "must be an absolute URL without spaces or control characters")
		}
	case "REDIRECT_PREFIX":
		if u, err := url.Parse(pol.RedirectPrefix); pol.RedirectPrefix == "" || err != nil || u.Scheme == "" || strings.ContainsAny(pol.RedirectPrefix, " \r\n\t") {
			v.errorf(path+".redirect_prefix", "must be an absolute URL prefix without spaces or control characters")
		}
	}
	if pol.RedirectHTTPCode != 0 && !slices.Contains([]int{301, 302, 303, 307, 308}, pol.RedirectHTTPCode) {
		v.errorf(path+".redirect_http_code", "must be 301, 302, 303, 307 or 308")
	}
	if len(pol.Rules) > 50 {
		v.errorf(path+".rules", "at most 50 rules per policy")
	}
	for k := range pol.Rules {
		validateRule(v, at(path+".rules", k, ""), &pol.Rules[k], tlsListener)
	}
}

func validateRule(v *collector, path string, r *L7Rule, tlsListener bool) {
	if !slices.Contains(l7Types, r.Type) {
		v.errorf(path+".type", "must be one of %s, not %q", strings.Join(l7Types, ", "), r.Type)
		return
	}
	if !slices.Contains(l7Compares, r.CompareType) {
		v.errorf(path+".compare_type", "must be one of %s, not %q", strings.Join(l7Compares, ", "), r.CompareType)
		return
	}
	if strings.ContainsAny(r.Value+r.Key, "\r\n") || len(r.Value) > 255 || len(r.Key) > 255 {
		v.errorf(path, "key and value must be at most 255 characters without CR or LF")
	}
	if r.Value == "" {
		v.errorf(path+".value", "is required")
	}
	if r.CompareType == "REGEX" {
		if _, err := regexp.Compile(r.Value); err != nil {
			v.errorf(path+".value", "invalid regular expression: %v", err)
		}
	}
	switch r.Type {
	case "HEADER", "COOKIE":
		if !httpToken.MatchString(r.Key) {
			v.errorf(path+".key", "must be a header or cookie name")
		}
	case "SSL_DN_FIELD":
		if !dnFieldName.MatchString(r.Key) {
			v.errorf(path+".key", "must be a DN field name such as CN, O or OU")
		}
	default:
		if r.Key != "" {
			v.errorf(path+".key", "is only allowed on HEADER, COOKIE and SSL_DN_FIELD rules")
		}
	}
	switch r.Type {
	case "FILE_TYPE":
		if r.CompareType != "EQUAL_TO" && r.CompareType != "REGEX" {
			v.errorf(path+".compare_type", "FILE_TYPE takes EQUAL_TO or REGEX")
		}
	case "SSL_CONN_HAS_CERT":
		// Octavia accepts "true" in any case (validate_l7rule_ssl_types).
		if r.CompareType != "EQUAL_TO" || !strings.EqualFold(r.Value, "true") {
			v.errorf(path, "SSL_CONN_HAS_CERT takes compare_type EQUAL_TO and value \"true\" in any case (use invert for false)")
		}
	case "SSL_VERIFY_RESULT":
		if _, err := strconv.Atoi(r.Value); r.CompareType != "EQUAL_TO" || err != nil {
			v.errorf(path, "SSL_VERIFY_RESULT takes compare_type EQUAL_TO and an integer value")
		}
	}
	if strings.HasPrefix(r.Type, "SSL_") && !tlsListener {
		v.errorf(path+".type", "%s rules are only allowed on TERMINATED_HTTPS listeners", r.Type)
	}
}

func validatePoolTLS(v *collector, p func(string) string, pl *Pool) {
	refs := []struct{ field, ref string }{
		{"tls_container_ref", pl.TLSContainerRef}, {"ca_tls_container_ref", pl.CATLSContainerRef}, {"crl_container_ref", pl.CRLContainerRef},
	}
	for _, r := range refs {
		if r.ref == "" {
			continue
		}
		if !pl.TLSEnabled {
			v.errorf(p(r.field), "is only used with tls_enabled: true")
			continue
		}
		checkRef(v, p(r.field), r.ref)
	}
	if pl.CRLContainerRef != "" && pl.CATLSContainerRef == "" {
		v.errorf(p("crl_container_ref"), "requires ca_tls_container_ref")
	}
	http2 := pl.H2C || pl.TLSEnabled && slices.Contains(pl.ALPNProtocols, "h2")
	if pl.H2C && pl.TLSEnabled {
		v.errorf(p("h2c"), "is HTTP/2 without TLS; for HTTP/2 over TLS offer h2 in alpn_protocols")
	}
	if http2 && (pl.Protocol == "PROXY" || pl.Protocol == "PROXYV2") {
		v.errorf(p("protocol"), "%s sends one client's address per member connection; HTTP/2 to members shares connections between clients", pl.Protocol)
	}
	if !pl.TLSEnabled {
		return
	}
	if _, _, err := ParseTLSVersions(pl.TLSVersions); err != nil {
		v.errorf(p("tls_versions"), "%v", err)
	}
	if pl.TLSCiphers != "" {
		if _, _, err := ParseCiphers(pl.TLSCiphers); err != nil {
			v.errorf(p("tls_ciphers"), "%v", err)
		}
	}
	for j, a := range pl.ALPNProtocols {
		if !slices.Contains(alpnNames, a) {
			v.errorf(at(p("alpn_protocols"), j, ""), "unknown ALPN protocol %q (want h2, http/1.1 or http/1.0)", a)
		}
	}
	if pl.CATLSContainerRef == "" {
		v.warnf(p("ca_tls_container_ref"), "not set: member certificates are not verified (haproxy's verify none)")
	}
}

// poolFitsListener is Octavia's VALID_LISTENER_POOL_PROTOCOL_MAP.
func poolFitsListener(listener, pool string) bool {
	ok := map[string][]string{
		ProtocolTerminatedHTTPS: {ProtocolHTTP, "PROXY", "PROXYV2"},
		ProtocolHTTP:            {ProtocolHTTP, "PROXY", "PROXYV2"},
		ProtocolHTTPS:           {ProtocolHTTPS, "PROXY", "PROXYV2", ProtocolTCP},
		ProtocolTCP:             {ProtocolHTTP, ProtocolHTTPS, "PROXY", "PROXYV2", ProtocolTCP},
		ProtocolUDP:             {ProtocolUDP},
	}
	return pool == "" || slices.Contains(ok[listener], pool)
}

// validateUDPPersistence checks a UDP pool's session persistence: SOURCE_IP
// only (the IPVS persistence Octavia configures), its timeout in seconds
// and its granularity, an IPv4 netmask or a prefix length.
func validateUDPPersistence(v *collector, path string, sp *SessionPersistence) {
	if sp.Type != "SOURCE_IP" {
		v.errorf(path+".type", "a UDP pool persists by SOURCE_IP only, not %q", sp.Type)
	}
	if sp.CookieName != "" {
		v.errorf(path+".cookie_name", "is only allowed with APP_COOKIE")
	}
	if t := sp.PersistenceTimeout; t != nil && (*t < 0 || *t > maxPersistenceTimeout) {
		v.errorf(path+".persistence_timeout", "must be between 0 and %d seconds, not %d", maxPersistenceTimeout, *t)
	}
	if g := sp.PersistenceGranularity; g != "" {
		if _, err := ParseGranularity(g); err != nil {
			v.errorf(path+".persistence_granularity", "%v", err)
		}
	}
}

// maxPersistenceTimeout bounds persistence_timeout (a day).
const maxPersistenceTimeout = 86400

func validateACME(v *collector, c *Config) {
	a := c.ACME
	if u, err := url.Parse(a.Directory); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		v.errorf("acme.directory", "must be the CA's directory URL (https://…), not %q", a.Directory)
	}
	if !a.AgreeTOS {
		v.errorf("acme.agree_tos", "must be true: obtaining certificates accepts the CA's terms of service")
	}
	for i, ch := range a.Challenges {
		if ch != "http-01" && ch != "tls-alpn-01" {
			v.errorf(fmt.Sprintf("acme.challenges[%d]", i), "must be http-01 or tls-alpn-01, not %q", ch)
		}
	}
	switch a.KeyType {
	case "", "ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-4096":
	default:
		v.errorf("acme.key_type", "must be ecdsa-p256, ecdsa-p384, rsa-2048 or rsa-4096, not %q", a.KeyType)
	}
	if a.EAB != nil && (a.EAB.KeyID == "" || a.EAB.HMACKeyFile == "") {
		v.errorf("acme.eab", "needs key_id and hmac_key_file")
	}
	if a.CheckInterval < 0 {
		v.errorf("acme.check_interval", "must not be negative")
	}
	if a.Storage != "" {
		u, err := url.Parse(a.Storage)
		switch {
		case err != nil:
			v.errorf("acme.storage", "is not a URL: %v", err)
		case u.Scheme == "file" && u.Path != "" && u.Host == "":
		case u.Scheme == "vault" && u.Host != "":
		case u.Scheme == "barbican" && u.Host == "":
		default:
			v.errorf("acme.storage", "must be file:///DIR, vault://MOUNT/PATH or barbican:///PREFIX, not %q", a.Storage)
		}
	}
}
