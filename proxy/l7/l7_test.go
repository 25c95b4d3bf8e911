package l7

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestL7Table(t *testing.T) {
	const api = "api"
	rule := func(typ, cmp, key, value string, invert bool) RuleSpec {
		return RuleSpec{Type: typ, Compare: cmp, Key: key, Value: value, Invert: invert}
	}
	withCert := &fakeConn{tls: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{}}},
		dn: map[string][]string{"CN": {"alice"}, "O": {"Example"}, "OU": {"ops", "dev"}}}
	noCert := &fakeConn{tls: &tls.ConnectionState{}}
	req := func(host, target string, hdr ...string) *http.Request {
		r := httptest.NewRequest("GET", target, nil)
		r.Host = host
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Add(hdr[i], hdr[i+1])
		}
		return r
	}
	cases := []struct {
		name  string
		rule  RuleSpec
		req   *http.Request
		ci    *fakeConn
		match bool
	}{
		{"host equal, case-insensitive", rule("HOST_NAME", "EQUAL_TO", "", "Shop.Example", false), req("SHOP.example", "/"), noCert, true},
		{"host ends with", rule("HOST_NAME", "ENDS_WITH", "", ".example", false), req("a.example", "/"), noCert, true},
		{"host regex, unanchored", rule("HOST_NAME", "REGEX", "", "^api[0-9]+\\.", false), req("api7.example", "/"), noCert, true},
		{"path starts with", rule("PATH", "STARTS_WITH", "", "/api/", false), req("x", "/api/v1?q=1"), noCert, true},
		{"path equal ignores query", rule("PATH", "EQUAL_TO", "", "/login", false), req("x", "/login?next=/"), noCert, true},
		{"path contains", rule("PATH", "CONTAINS", "", "admin", false), req("x", "/x/admin/y"), noCert, true},
		{"path no match", rule("PATH", "STARTS_WITH", "", "/api/", false), req("x", "/web"), noCert, false},
		{"invert", rule("PATH", "STARTS_WITH", "", "/api/", true), req("x", "/web"), noCert, true},
		{"file type equal", rule("FILE_TYPE", "EQUAL_TO", "", "jpg", false), req("x", "/img/a.jpg"), noCert, true},
		{"file type equal no match", rule("FILE_TYPE", "EQUAL_TO", "", "jpg", false), req("x", "/img/ajpg"), noCert, false},
		{"file type regex", rule("FILE_TYPE", "REGEX", "", "\\.(png|gif)$", false), req("x", "/a.gif"), noCert, true},
		{"header any occurrence", rule("HEADER", "EQUAL_TO", "X-Env", "canary", false), req("x", "/", "X-Env", "prod", "X-Env", "canary"), noCert, true},
		{"header absent", rule("HEADER", "CONTAINS", "X-Env", "c", false), req("x", "/"), noCert, false},
		{"cookie", rule("COOKIE", "EQUAL_TO", "beta", "1", false), req("x", "/", "Cookie", "a=b; beta=1"), noCert, true},
		{"cookie other name", rule("COOKIE", "EQUAL_TO", "beta", "1", false), req("x", "/", "Cookie", "xbeta=1"), noCert, false},
		{"has cert", rule("SSL_CONN_HAS_CERT", "EQUAL_TO", "", "true", false), req("x", "/"), withCert, true},
		{"has cert, none", rule("SSL_CONN_HAS_CERT", "EQUAL_TO", "", "true", false), req("x", "/"), noCert, false},
		{"has cert inverted, none", rule("SSL_CONN_HAS_CERT", "EQUAL_TO", "", "true", true), req("x", "/"), noCert, true},
		{"verify result 0", rule("SSL_VERIFY_RESULT", "EQUAL_TO", "", "0", false), req("x", "/"), withCert, true},
		{"verify result 20", rule("SSL_VERIFY_RESULT", "EQUAL_TO", "", "20", false), req("x", "/"), withCert, false},
		{"DN field CN", rule("SSL_DN_FIELD", "EQUAL_TO", "CN", "alice", false), req("x", "/"), withCert, true},
		{"DN field OU any", rule("SSL_DN_FIELD", "EQUAL_TO", "OU", "dev", false), req("x", "/"), withCert, true},
		{"DN field O starts", rule("SSL_DN_FIELD", "STARTS_WITH", "O", "Exa", false), req("x", "/"), withCert, true},
		{"DN field without cert", rule("SSL_DN_FIELD", "EQUAL_TO", "CN", "alice", false), req("x", "/"), noCert, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Compile([]PolicySpec[string]{{Action: ActionRedirectPool, Position: 1, Target: api, Rules: []RuleSpec{tc.rule}}})
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Match(tc.req, tc.ci) != nil; got != tc.match {
				t.Fatalf("match = %v, want %v", got, tc.match)
			}
		})
	}
}

func TestL7OrderingAndAnd(t *testing.T) {
	a, b := "a", "b"
	api := RuleSpec{Type: "PATH", Compare: "STARTS_WITH", Value: "/api"}
	r, err := Compile([]PolicySpec[string]{
		{Action: ActionRedirectPool, Position: 1, Target: a, Rules: []RuleSpec{api}},
		{Action: ActionRedirectPool, Position: 2, Target: b, Rules: []RuleSpec{api, {Type: "HEADER", Compare: "EQUAL_TO", Key: "X-B", Value: "1"}}},
		{Action: ActionReject, Position: 9, Rules: []RuleSpec{{Type: "PATH", Compare: "EQUAL_TO", Value: "/api/forbidden"}}},
		{Action: ActionRedirectURL, Position: 5, URL: "https://x", Code: 301, Rules: []RuleSpec{{Type: "PATH", Compare: "EQUAL_TO", Value: "/api/moved"}}},
		{Action: ActionRedirectPool, Position: 0, Target: b}, // no rules: never matches
	})
	if err != nil {
		t.Fatal(err)
	}
	ci := &fakeConn{}
	get := func(path string, hdr ...string) *Policy[string] {
		req := httptest.NewRequest("GET", path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		return r.Match(req, ci)
	}
	if p := get("/api/x", "X-B", "1"); p.Target != a {
		t.Fatal("position order among pool policies not kept")
	}
	if p := get("/api/forbidden"); p.Action != ActionReject {
		t.Fatalf("REJECT at a later position must still win over REDIRECT_TO_POOL (haproxy runs deny first), got %s", p.Action)
	}
	if p := get("/api/moved"); p.Action != ActionRedirectURL {
		t.Fatalf("a redirect must win over REDIRECT_TO_POOL, got %s", p.Action)
	}
	if p := get("/web"); p != nil {
		t.Fatal("a policy matched with no rule matching")
	}
}

func BenchmarkL7With100Policies(b *testing.B) {
	pool := "p"
	var specs []PolicySpec[string]
	for i := range 100 {
		specs = append(specs, PolicySpec[string]{Action: ActionRedirectPool, Position: i + 1, Target: pool, Rules: []RuleSpec{
			{Type: "HOST_NAME", Compare: "EQUAL_TO", Value: fmt.Sprintf("host%d.example", i)},
			{Type: "PATH", Compare: "STARTS_WITH", Value: "/api"},
		}})
	}
	r, err := Compile(specs)
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/api/v1", nil)
	req.Host = "host99.example" // the last policy: every one is evaluated
	ci := &fakeConn{}
	b.ReportAllocs()
	for b.Loop() {
		if r.Match(req, ci) == nil {
			b.Fatal("no match")
		}
	}
}

// fakeConn is a connection with fixed TLS facts; the proxy's connInfo
// derives DN fields from the certificate (tested there).
type fakeConn struct {
	tls *tls.ConnectionState
	dn  map[string][]string
}

func (c *fakeConn) TLSState() *tls.ConnectionState { return c.tls }

func (c *fakeConn) DNField(f string) []string { return c.dn[f] }
