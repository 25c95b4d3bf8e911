package config_test

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/terminator-proxy/terminator/config"
)

const good = `
admin: {bind: 127.0.0.1:9100}
listeners:
  - name: web
    protocol: TERMINATED_HTTPS
    bind: 0.0.0.0:8443
    default_tls_container_ref: file:///etc/terminator/certs/default.pem
    sni_container_refs: [file:///etc/terminator/certs/shop.p12]
    client_authentication: OPTIONAL
    client_ca_tls_container_ref: file:///etc/terminator/ca/clients.pem
    client_crl_container_ref: file:///etc/terminator/ca/clients.crl
    tls_versions: [TLSv1.2, TLSv1.3]
    alpn_protocols: [h2, http/1.1]
    insert_headers: {X-Forwarded-For: "true", X-Forwarded-Proto: "True", X-SSL-Client-CN: "false"}
    timeout_client_data: 50000
    connection_limit: -1
    hsts_max_age: 0
    default_pool: app
  - name: plain
    protocol: HTTP
    bind: 127.0.0.1:8080
    default_pool_id: 7c1f
pools:
  - name: app
    id: 7c1f
    lb_algorithm: ROUND_ROBIN
    members:
      - {address: 127.0.0.1, protocol_port: 8080, weight: 1}
      - {address: "::1", protocol_port: 8080}
`

func TestParseGood(t *testing.T) {
	cfg, warnings, err := config.Parse([]byte(good))
	if err != nil {
		t.Fatalf("valid config rejected:\n%v", err)
	}
	if len(warnings) != 0 {
		t.Fatalf("unexpected warnings: %v", warnings)
	}
	l := cfg.Listeners[0]
	if *l.TimeoutMemberConnect != 5000 || *l.TimeoutMemberData != 50000 {
		t.Errorf("Octavia timeout defaults not applied: %d %d", *l.TimeoutMemberConnect, *l.TimeoutMemberData)
	}
	if l.TLSCiphers != config.DefaultListenerCiphers {
		t.Errorf("default ciphers not applied")
	}
	if !l.HeaderEnabled("x-forwarded-proto") || l.HeaderEnabled("X-SSL-Client-CN") {
		t.Errorf("insert_headers truthiness wrong")
	}
	if l.EffectiveConnectionLimit() != 50000 {
		t.Errorf("connection_limit -1 should mean 50000, got %d", l.EffectiveConnectionLimit())
	}
	if *cfg.Pools[0].Members[1].Weight != 1 {
		t.Errorf("member weight default not applied")
	}
	if p := cfg.FindPool(cfg.Listeners[1].PoolRef()); p == nil || p.Name != "app" {
		t.Errorf("default_pool_id did not resolve by id")
	}
}

func TestParseJSON(t *testing.T) {
	js := `{"listeners":[{"name":"a","protocol":"HTTP","bind":"127.0.0.1:80","default_pool":"p"}],
	        "pools":[{"name":"p","members":[{"address":"10.0.0.1","protocol_port":80}]}]}`
	if _, _, err := config.Parse([]byte(js)); err != nil {
		t.Fatal(err)
	}
}

func TestProblemsNamePaths(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown field", "listeners: [{name: a, protocol: HTTP, bind: ':80', colour: red}]", []string{`listeners[0].colour: unknown field "colour"`}},
		{"no listeners", "pools: []", []string{"listeners: at least one listener is required"}},
		{"bad sni ref", `listeners: [{name: a, protocol: TERMINATED_HTTPS, bind: ":443", default_tls_container_ref: "file:///a", sni_container_refs: ["file:///b", "no-scheme"]}]`,
			[]string{`listeners[0].sni_container_refs[1]: "no-scheme" has no scheme`}},
		{"tls without certs", "listeners: [{name: a, protocol: TERMINATED_HTTPS, bind: ':443'}]",
			[]string{"listeners[0].default_tls_container_ref: a TERMINATED_HTTPS listener needs"}},
		{"client auth without CA", `listeners: [{name: a, protocol: TERMINATED_HTTPS, bind: ":443", default_tls_container_ref: "file:///a", client_authentication: MANDATORY}]`,
			[]string{"listeners[0].client_ca_tls_container_ref: is required when client_authentication is MANDATORY"}},
		{"CRL without CA", `listeners: [{name: a, protocol: TERMINATED_HTTPS, bind: ":443", default_tls_container_ref: "file:///a", client_crl_container_ref: "file:///c"}]`,
			[]string{"listeners[0].client_crl_container_ref: requires client_ca_tls_container_ref"}},
		{"cert ref on HTTP", `listeners: [{name: a, protocol: HTTP, bind: ":80", default_tls_container_ref: "file:///a"}]`,
			[]string{"listeners[0].default_tls_container_ref: is only allowed on TERMINATED_HTTPS"}},
		{"SSL header on HTTP", `listeners: [{name: a, protocol: HTTP, bind: ":80", insert_headers: {X-SSL-Client-CN: "true"}}]`,
			[]string{"listeners[0].insert_headers.X-SSL-Client-CN: is only allowed on TERMINATED_HTTPS"}},
		{"unknown header", `listeners: [{name: a, protocol: HTTP, bind: ":80", insert_headers: {X-Evil: "true"}}]`,
			[]string{"listeners[0].insert_headers.X-Evil: unknown header"}},
		{"bad versions", `listeners: [{name: a, protocol: TERMINATED_HTTPS, bind: ":443", default_tls_container_ref: "file:///a", tls_versions: [TLSv1, TLSv1.3]}]`,
			[]string{"listeners[0].tls_versions: TLS versions must form a contiguous range"}},
		{"SSLv3", `listeners: [{name: a, protocol: TERMINATED_HTTPS, bind: ":443", default_tls_container_ref: "file:///a", tls_versions: [SSLv3]}]`,
			[]string{"listeners[0].tls_versions: SSLv3 is not supported"}},
		{"bad cipher", `listeners: [{name: a, protocol: TERMINATED_HTTPS, bind: ":443", default_tls_container_ref: "file:///a", tls_ciphers: "ECDHE-RSA-AES128-GCM-SHA256:NOPE"}]`,
			[]string{`listeners[0].tls_ciphers: unknown cipher "NOPE"`}},
		{"bad alpn", `listeners: [{name: a, protocol: TERMINATED_HTTPS, bind: ":443", default_tls_container_ref: "file:///a", alpn_protocols: [h2, spdy/3]}]`,
			[]string{`listeners[0].alpn_protocols[1]: unknown ALPN protocol "spdy/3"`}},
		{"unknown pool", "listeners: [{name: a, protocol: HTTP, bind: ':80', default_pool: nope}]",
			[]string{`listeners[0].default_pool: no pool has the name or id "nope"`}},
		{"duplicate bind", "listeners: [{name: a, protocol: HTTP, bind: ':80'}, {name: b, protocol: HTTP, bind: ':80'}]",
			[]string{"listeners[1].bind: address :80 is already bound by listeners[0]"}},
		{"bad member", "listeners: [{name: a, protocol: HTTP, bind: ':80'}]\npools: [{name: p, members: [{address: example.com, protocol_port: 0, weight: 300}]}]",
			[]string{"pools[0].members[0].address: must be an IP address", "pools[0].members[0].protocol_port: must be 1-65535", "pools[0].members[0].weight: must be 0-256"}},
		{"unsupported protocol", "listeners: [{name: a, protocol: SCTP, bind: ':53'}]",
			[]string{"listeners[0].protocol: SCTP listeners are not supported: terminator has no SCTP data path"}},
		{"UDP mismatches", "listeners: [{name: a, protocol: UDP, bind: ':53', default_pool: web, insert_headers: {X-Forwarded-For: 'true'}, proxy_protocol_from: [10.0.0.0/8]}, {name: b, protocol: HTTP, bind: ':80', default_pool: dns}]\n" +
			"pools: [{name: web, protocol: HTTP}, {name: dns, protocol: UDP, session_persistence: {type: APP_COOKIE, cookie_name: x, persistence_granularity: 255.0.255.0, persistence_timeout: -1}, healthmonitor: {type: TLS-HELLO, delay: 1, timeout: 1, max_retries: 1}}, {name: tcp, protocol: TCP, healthmonitor: {type: UDP-CONNECT, delay: 1, timeout: 1, max_retries: 1}}]",
			[]string{"listeners[0].default_pool: a HTTP pool cannot serve a UDP listener", "listeners[0].insert_headers: is only allowed on HTTP and TERMINATED_HTTPS listeners",
				"listeners[0].proxy_protocol_from: is only for TCP-based listeners", "listeners[1].default_pool: a UDP pool cannot serve a HTTP listener",
				`pools[1].session_persistence.type: a UDP pool persists by SOURCE_IP only, not "APP_COOKIE"`, "pools[1].session_persistence.cookie_name: is only allowed with APP_COOKIE",
				"pools[1].session_persistence.persistence_timeout: must be between 0 and 86400 seconds, not -1",
				"pools[1].session_persistence.persistence_granularity: netmask 255.0.255.0 is not contiguous",
				`pools[1].healthmonitor.type: a UDP pool is checked with UDP-CONNECT, TCP or HTTP, not "TLS-HELLO"`,
				"pools[2].healthmonitor.type: UDP-CONNECT monitors are for UDP and SCTP pools"}},
		{"timeout range", "listeners: [{name: a, protocol: HTTP, bind: ':80', timeout_client_data: -5}]",
			[]string{"listeners[0].timeout_client_data: must be between 0 and 2073600000 ms"}},
		{"bad CIDR", "listeners: [{name: a, protocol: HTTP, bind: ':80', allowed_cidrs: [10.0.0.0/8, 10.0.0.300/32]}]",
			[]string{`listeners[0].allowed_cidrs[1]: not a CIDR: "10.0.0.300/32"`}},
		{"monitor fields", "listeners: [{name: a, protocol: HTTP, bind: ':80'}]\npools: [{name: p, healthmonitor: {type: TCP, delay: 0, timeout: 1, max_retries: 11, url_path: /x}}]",
			[]string{"pools[0].healthmonitor.delay: must be at least 1 second", "pools[0].healthmonitor.max_retries: must be 1-10", "pools[0].healthmonitor.url_path: is only allowed on HTTP and HTTPS monitors"}},
		{"monitor codes", "listeners: [{name: a, protocol: HTTP, bind: ':80'}]\npools: [{name: p, healthmonitor: {type: HTTP, delay: 1, timeout: 1, max_retries: 2, expected_codes: 200-, domain_name: x.example}}]",
			[]string{"pools[0].healthmonitor.expected_codes: must be a code", "pools[0].healthmonitor.domain_name: requires http_version 1.1"}},
		{"l7 policy", "listeners: [{name: a, protocol: HTTP, bind: ':80', l7policies: [{action: REDIRECT_TO_POOL, redirect_pool: nope, rules: [{type: PATH, compare_type: REGEX, value: '('}, {type: HEADER, compare_type: EQUAL_TO, value: x}, {type: SSL_CONN_HAS_CERT, compare_type: EQUAL_TO, value: 'true'}]}, {action: REDIRECT_TO_URL, redirect_url: 'not a url', redirect_http_code: 200, rules: [{type: FILE_TYPE, compare_type: CONTAINS, value: jpg}]}]}]",
			[]string{`listeners[0].l7policies[0].redirect_pool: no pool has the name or id "nope"`, "listeners[0].l7policies[0].rules[0].value: invalid regular expression",
				"listeners[0].l7policies[0].rules[1].key: must be a header or cookie name", "listeners[0].l7policies[0].rules[2].type: SSL_CONN_HAS_CERT rules are only allowed on TERMINATED_HTTPS",
				"listeners[0].l7policies[1].redirect_url: must be an absolute URL", "listeners[0].l7policies[1].redirect_http_code: must be 301", "listeners[0].l7policies[1].rules[0].compare_type: FILE_TYPE takes EQUAL_TO or REGEX"}},
		{"acme section", "acme: {directory: 'ftp://ca', challenges: [dns-01], key_type: dsa, storage: 's3://bucket', eab: {key_id: k}, check_interval: -1}\nlisteners: [{name: a, protocol: HTTP, bind: ':80'}]",
			[]string{`acme.directory: must be the CA's directory URL (https://…), not "ftp://ca"`, "acme.agree_tos: must be true", `acme.challenges[0]: must be http-01 or tls-alpn-01, not "dns-01"`,
				`acme.key_type: must be ecdsa-p256, ecdsa-p384, rsa-2048 or rsa-4096, not "dsa"`, "acme.eab: needs key_id and hmac_key_file", "acme.check_interval: must not be negative",
				`acme.storage: must be file:///DIR, vault://MOUNT/PATH or barbican:///PREFIX, not "s3://bucket"`}},
		{"hsts on HTTP", "listeners: [{name: a, protocol: HTTP, bind: ':80', hsts_max_age: 100}]",
			[]string{"listeners[0].hsts_max_age: is only allowed on TERMINATED_HTTPS"}},
		{"https_redirect", "listeners: [{name: a, protocol: TCP, bind: ':80', https_redirect: {}}, {name: b, protocol: HTTP, bind: ':81', https_redirect: {port: 70000}}, {name: c, protocol: HTTP, bind: ':82', https_redirect: {code: 200}}]",
			[]string{"listeners[0].https_redirect: is only for HTTP listeners", "listeners[1].https_redirect.port: must be 1-65535, not 70000", "listeners[2].https_redirect.code: must be 301, 302, 303, 307 or 308"}},
		{"two documents", "listeners: []\n---\nlisteners: []\n", []string{"more than one YAML document"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := config.Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatal("invalid config accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestAllProblemsReportedAtOnce(t *testing.T) {
	_, _, err := config.Parse([]byte(`
listeners:
  - {name: a, protocol: TERMINATED_HTTPS, bind: "nope", client_authentication: SOMETIMES}
  - {protocol: FTP, bind: ":21"}
`))
	var ps config.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("want config.Problems, got %T: %v", err, err)
	}
	if len(ps) < 5 {
		t.Fatalf("want every problem at once, got %d:\n%v", len(ps), err)
	}
}

func TestIgnoredCiphersWarn(t *testing.T) {
	_, warnings, err := config.Parse([]byte(`listeners: [{name: a, protocol: TERMINATED_HTTPS, bind: ":443", default_tls_container_ref: "file:///a", tls_ciphers: "ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256"}]`))
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0].String(), "DHE-RSA-AES128-GCM-SHA256") {
		t.Fatalf("want a warning naming the ignored DHE suite, got %v", warnings)
	}
}

// FuzzParse: the loader returns a config or an error, never panics, and
// what it accepts validates again unchanged.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(`{"listeners":[{"name":"a","protocol":"HTTP","bind":":80"}]}`))
	f.Add([]byte("listeners: [{name: a, protocol: HTTP, bind: ':80', insert_headers: {X-Forwarded-For: 'true'}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, _, err := config.Parse(data)
		if err != nil {
			return
		}
		if _, err := cfg.Validate(); err != nil {
			t.Fatalf("accepted config fails validation on a second pass: %v", err)
		}
	})
}

// TestOctaviaCasing: values Octavia accepts in any case are accepted here
// too: SSL_CONN_HAS_CERT's "True" (Octavia checks value.lower() ==
// 'true'), and insert_headers values, which Octavia stores as given and
// its template enables only for "true" in any case (others warn).
func TestOctaviaCasing(t *testing.T) {
	cfg, warns, err := config.Parse([]byte(`
listeners:
  - name: a
    protocol: TERMINATED_HTTPS
    bind: ":443"
    default_tls_container_ref: file:///a
    insert_headers: {X-Forwarded-For: "TRUE", X-Forwarded-Port: "yes"}
    l7policies:
      - {action: REJECT, rules: [{type: SSL_CONN_HAS_CERT, compare_type: EQUAL_TO, value: "True"}]}
      - {action: REJECT, rules: [{type: SSL_CONN_HAS_CERT, compare_type: EQUAL_TO, value: "tRuE", invert: true}]}
`))
	if err != nil {
		t.Fatalf("Octavia-valid values refused: %v", err)
	}
	if len(warns) != 1 || !strings.Contains(warns[0].String(), `listeners[0].insert_headers.X-Forwarded-Port: value "yes"`) {
		t.Fatalf("warnings %v; want one for the non-boolean header value", warns)
	}
	if !cfg.Listeners[0].HeaderEnabled("X-Forwarded-For") || cfg.Listeners[0].HeaderEnabled("X-Forwarded-Port") {
		t.Fatal("insert_headers truthiness: only true in any case enables")
	}
	if _, _, err := config.Parse([]byte(`listeners: [{name: a, protocol: TERMINATED_HTTPS, bind: ":443", default_tls_container_ref: "file:///a",
  l7policies: [{action: REJECT, rules: [{type: SSL_CONN_HAS_CERT, compare_type: EQUAL_TO, value: "false"}]}]}]`)); err == nil {
		t.Fatal("SSL_CONN_HAS_CERT with a value other than true accepted")
	}
}

// TestDefaultCiphersAgainstOctavia pins the documented differences between
// terminator's default cipher list and Octavia's: every AEAD suite of
// Octavia's that Go implements is kept, ECDSA twins and ChaCha20 are
// added, the CBC suites are dropped, and nothing else changes.
func TestDefaultCiphersAgainstOctavia(t *testing.T) {
	octavia := strings.Split(config.OctaviaListenerCiphers, ":")
	ours := strings.Split(config.DefaultListenerCiphers, ":")
	for _, name := range octavia {
		cbc := !strings.HasPrefix(name, "TLS_") && !strings.Contains(name, "GCM") && !strings.Contains(name, "CHACHA20")
		if cbc == slices.Contains(ours, name) {
			t.Errorf("%s: kept=%v; want the AEAD suites kept and the CBC ones dropped", name, !cbc)
		}
	}
	for _, name := range ours {
		if !slices.Contains(octavia, name) && !strings.HasPrefix(name, "ECDHE-ECDSA-") && !strings.Contains(name, "CHACHA20") {
			t.Errorf("%s added beyond the documented ECDSA twins and ChaCha20", name)
		}
	}
	ids, skipped, err := config.ParseCiphers(config.DefaultListenerCiphers)
	if err != nil || len(ids) != 6 || len(skipped) != 2 {
		t.Fatalf("default list: %d suites, skipped %v, %v; want 6 TLS 1.2 suites and the 2 DHE ones skipped", len(ids), skipped, err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "differs from Octavia's default_listener_ciphers") {
		t.Fatal("README does not document the difference from Octavia's cipher list")
	}
}

// TestUDPListener: a UDP listener with Octavia's UDP pool fields is
// accepted, and persistence_granularity reads as keepalived reads it.
func TestUDPListener(t *testing.T) {
	cfg, warns, err := config.Parse([]byte(`listeners: [{name: dns, protocol: UDP, bind: "127.0.0.1:5353", default_pool: dns, connection_limit: 100}]
pools: [{name: dns, protocol: UDP, lb_algorithm: SOURCE_IP, session_persistence: {type: SOURCE_IP, persistence_timeout: 60, persistence_granularity: 255.255.255.0},
  healthmonitor: {type: UDP-CONNECT, delay: 1, timeout: 1, max_retries: 2},
  members: [{address: 127.0.0.1, protocol_port: 5301}, {address: "::1", protocol_port: 5302}]}]`))
	if err != nil || len(warns) != 0 {
		t.Fatalf("%v %v", warns, err)
	}
	if cfg.Listeners[0].Protocol != config.ProtocolUDP || *cfg.Pools[0].SessionPersistence.PersistenceTimeout != 60 {
		t.Fatalf("%+v", cfg.Listeners[0])
	}
	for in, want := range map[string]config.Granularity{
		"": {V4: 32, V6: 128}, "255.255.255.255": {V4: 32, V6: 128}, "255.255.255.0": {V4: 24, V6: 128},
		"0.0.0.0": {V4: 0, V6: 128}, "64": {V4: 32, V6: 64}, "16": {V4: 16, V6: 16},
	} {
		if got, err := config.ParseGranularity(in); err != nil || got != want {
			t.Errorf("ParseGranularity(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"255.0.255.0", "129", "-1", "::ffff", "mask"} {
		if _, err := config.ParseGranularity(bad); err == nil {
			t.Errorf("ParseGranularity(%q) accepted", bad)
		}
	}
}
