package haproxycfg

import (
	"strconv"
	"strings"

	"github.com/terminator-proxy/terminator/config"
)

var matchTypes = map[string]string{"reg": "REGEX", "beg": "STARTS_WITH", "end": "ENDS_WITH", "sub": "CONTAINS", "str": "EQUAL_TO"}

// acl reads "acl NAME FETCH [-i] -m TYPE VALUE", Octavia's form of an L7
// rule (SSL_CONN_HAS_CERT and SSL_VERIFY_RESULT have no -m).
func (t *translator) acl(ln line) (config.L7Rule, bool) {
	w := ln.words[2:]
	fetch := w[0]
	var r config.L7Rule
	switch {
	case fetch == "ssl_c_used" && len(w) == 1:
		return config.L7Rule{Type: "SSL_CONN_HAS_CERT", CompareType: "EQUAL_TO", Value: "true"}, true
	case fetch == "ssl_c_verify" && len(w) == 3 && w[1] == "eq":
		return config.L7Rule{Type: "SSL_VERIFY_RESULT", CompareType: "EQUAL_TO", Value: w[2]}, true
	case fetch == "path":
		r.Type = "PATH"
	case fetch == "path_end":
		r.Type = "FILE_TYPE"
	case fetch == "req.hdr(host)":
		r.Type = "HOST_NAME"
	case strings.HasPrefix(fetch, "req.hdr(") && strings.HasSuffix(fetch, ")"):
		r.Type, r.Key = "HEADER", fetch[len("req.hdr("):len(fetch)-1]
	case strings.HasPrefix(fetch, "req.cook(") && strings.HasSuffix(fetch, ")"):
		r.Type, r.Key = "COOKIE", fetch[len("req.cook("):len(fetch)-1]
	case strings.HasPrefix(fetch, "ssl_c_s_dn(") && strings.HasSuffix(fetch, ")"):
		r.Type, r.Key = "SSL_DN_FIELD", fetch[len("ssl_c_s_dn("):len(fetch)-1]
	default:
		t.errorf(ln.n, "acl fetch '%s' is not one Octavia renders for an L7 rule", fetch)
		return r, false
	}
	rest := w[1:]
	if len(rest) > 0 && rest[0] == "-i" {
		rest = rest[1:] // HOST_NAME: case-insensitive, as terminator compares host names
	}
	if len(rest) != 3 || rest[0] != "-m" || matchTypes[rest[1]] == "" {
		t.errorf(ln.n, "acl '%s': expected '-m reg|beg|end|sub|str VALUE'", ln.words[1])
		return r, false
	}
	r.CompareType, r.Value = matchTypes[rest[1]], rest[2]
	return r, true
}

// policy reads an L7 policy's action line and its condition.
func (t *translator) policy(ln line, acls map[string]config.L7Rule) (config.L7Policy, bool) {
	w := ln.words
	var p config.L7Policy
	i := 0
	switch w[0] {
	case "use_backend":
		if len(w) < 2 {
			t.errorf(ln.n, "use_backend needs a backend")
			return p, false
		}
		p.Action, p.RedirectPool = "REDIRECT_TO_POOL", w[1]
		if t.pools[w[1]] == nil {
			t.errorf(ln.n, "use_backend '%s' names no backend", w[1])
		}
		i = 2
	case "http-request":
		p.Action = "REJECT"
		i = 2
	case "redirect":
		i = 1
		if i+1 < len(w) && w[i] == "code" {
			code, err := strconv.Atoi(w[i+1])
			if err != nil {
				t.errorf(ln.n, "redirect code '%s' is not a number", w[i+1])
			}
			p.RedirectHTTPCode = code
			i += 2
		}
		if i+1 >= len(w) {
			t.errorf(ln.n, "redirect needs location or prefix and a value")
			return p, false
		}
		switch w[i] {
		case "location":
			p.Action, p.RedirectURL = "REDIRECT_TO_URL", w[i+1]
		case "prefix":
			p.Action, p.RedirectPrefix = "REDIRECT_PREFIX", w[i+1]
		default:
			t.errorf(ln.n, "redirect '%s' is not location or prefix", w[i])
			return p, false
		}
		i += 2
	}
	if i >= len(w) || w[i] != "if" || i+1 >= len(w) {
		t.errorf(ln.n, "'%s' without an 'if' condition is not an L7 policy Octavia renders", w[0])
		return p, false
	}
	for _, name := range w[i+1:] {
		invert := strings.HasPrefix(name, "!")
		r, ok := acls[strings.TrimPrefix(name, "!")]
		if !ok {
			t.errorf(ln.n, "condition names acl '%s', which is not defined before it", name)
			return p, false
		}
		r.Invert = invert
		p.Rules = append(p.Rules, r)
	}
	return p, true
}
