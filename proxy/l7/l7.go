// Package l7 compiles Octavia's L7 policies and rules into matchers with
// haproxy's semantics and finds the policy a request takes. It knows
// nothing of pools or connections beyond the Conn interface: a policy's
// target is whatever the caller's type parameter says (the proxy's pools).
package l7

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/terminator-proxy/terminator/proxy/httpwire"
)

// L7 actions, as Octavia names them.
const (
	ActionReject         = "REJECT"
	ActionRedirectURL    = "REDIRECT_TO_URL"
	ActionRedirectPrefix = "REDIRECT_PREFIX"
	ActionRedirectPool   = "REDIRECT_TO_POOL"
)

// PolicySpec describes one enabled L7 policy for Compile; Target is the
// pool of a REDIRECT_TO_POOL policy.
type PolicySpec[T comparable] struct {
	Action   string
	Position int
	Target   T
	URL      string
	Prefix   string
	Code     int
	Rules    []RuleSpec // ANDed; a policy without rules never matches
}

// RuleSpec is one L7 rule.
type RuleSpec struct {
	Type, Compare, Key, Value string
	Invert                    bool
}

// Conn is what rules may ask of the client's connection.
type Conn interface {
	// TLSState is the connection's TLS state; nil on plain HTTP.
	TLSState() *tls.ConnectionState
	// DNField returns the client certificate's subject values for an
	// OpenSSL short field name (CN, O, OU, …), upper-cased; none without
	// a certificate.
	DNField(field string) []string
}

// Router holds a listener's L7 policies compiled into matchers, in the
// order haproxy applies them: REJECT first, then redirects, then pool
// switches, each group by position. It is immutable and allocation-free to
// evaluate. A nil Router matches nothing.
type Router[T comparable] struct {
	policies []Policy[T]
}

// Policy is a compiled policy.
type Policy[T comparable] struct {
	PolicySpec[T]
	rules []func(*http.Request, Conn) bool
}

// Compile compiles policies; nil policies give a nil Router.
func Compile[T comparable](policies []PolicySpec[T]) (*Router[T], error) {
	if len(policies) == 0 {
		return nil, nil
	}
	group := map[string]int{ActionReject: 0, ActionRedirectURL: 1, ActionRedirectPrefix: 1, ActionRedirectPool: 2}
	sorted := slices.Clone(policies)
	slices.SortStableFunc(sorted, func(a, b PolicySpec[T]) int {
		if d := group[a.Action] - group[b.Action]; d != 0 {
			return d
		}
		return a.Position - b.Position
	})
	r := &Router[T]{}
	for _, p := range sorted {
		if len(p.Rules) == 0 {
			continue // Octavia renders only policies with an enabled rule
		}
		cp := Policy[T]{PolicySpec: p}
		for _, rs := range p.Rules {
			m, err := compileRule(rs)
			if err != nil {
				return nil, err
			}
			cp.rules = append(cp.rules, m)
		}
		r.policies = append(r.policies, cp)
	}
	return r, nil
}

// Targets returns the targets the router's policies send to.
func (r *Router[T]) Targets() []T {
	if r == nil {
		return nil
	}
	var zero T
	var out []T
	for _, p := range r.policies {
		if p.Target != zero {
			out = append(out, p.Target)
		}
	}
	return out
}

// Match returns the first policy whose rules all match, or nil.
func (r *Router[T]) Match(req *http.Request, c Conn) *Policy[T] {
	if r == nil {
		return nil
	}
	for i := range r.policies {
		p := &r.policies[i]
		ok := true
		for _, rule := range p.rules {
			if !rule(req, c) {
				ok = false
				break
			}
		}
		if ok {
			return p
		}
	}
	return nil
}

// compileRule turns a rule into a matcher with haproxy's semantics:
// HOST_NAME compares case-insensitively (req.hdr(host) -i), HEADER and
// COOKIE match if any occurrence does, REGEX is unanchored (-m reg).
func compileRule(rs RuleSpec) (func(*http.Request, Conn) bool, error) {
	value := rs.Value
	if rs.Type == "HOST_NAME" {
		value = strings.ToLower(value)
	}
	cmp, err := comparer(rs.Compare, value)
	if err != nil {
		return nil, err
	}
	var m func(*http.Request, Conn) bool
	switch rs.Type {
	case "HOST_NAME":
		m = func(r *http.Request, _ Conn) bool { return cmp(lowerASCII(r.Host)) }
	case "PATH":
		m = func(r *http.Request, _ Conn) bool { return cmp(r.URL.Path) }
	case "FILE_TYPE":
		// The file extension: EQUAL_TO jpg matches a path ending in .jpg
		// (path_end); REGEX applies to the whole path.
		if rs.Compare == "EQUAL_TO" {
			suffix := "." + strings.TrimPrefix(rs.Value, ".")
			m = func(r *http.Request, _ Conn) bool { return strings.HasSuffix(r.URL.Path, suffix) }
		} else {
			m = func(r *http.Request, _ Conn) bool { return cmp(r.URL.Path) }
		}
	case "HEADER":
		key := http.CanonicalHeaderKey(rs.Key)
		m = func(r *http.Request, _ Conn) bool {
			for _, v := range r.Header[key] {
				if cmp(v) {
					return true
				}
			}
			return false
		}
	case "COOKIE":
		name := rs.Key
		m = func(r *http.Request, _ Conn) bool {
			for _, line := range r.Header["Cookie"] {
				if v, ok := httpwire.CookieValue(line, name); ok && cmp(v) {
					return true
				}
			}
			return false
		}
	case "SSL_CONN_HAS_CERT":
		m = func(_ *http.Request, c Conn) bool {
			st := c.TLSState()
			return st != nil && len(st.PeerCertificates) > 0
		}
	case "SSL_VERIFY_RESULT":
		want, err := strconv.Atoi(rs.Value)
		if err != nil {
			return nil, fmt.Errorf("l7: SSL_VERIFY_RESULT value %q is not an integer", rs.Value)
		}
		// A certificate that fails verification aborts the handshake, so
		// every connection that gets here has result 0 (X509_V_OK).
		m = func(*http.Request, Conn) bool { return want == 0 }
	case "SSL_DN_FIELD":
		field := strings.ToUpper(rs.Key)
		m = func(_ *http.Request, c Conn) bool {
			for _, v := range c.DNField(field) {
				if cmp(v) {
					return true
				}
			}
			return false
		}
	default:
		return nil, fmt.Errorf("l7: unknown rule type %q", rs.Type)
	}
	if rs.Invert {
		inner := m
		m = func(r *http.Request, c Conn) bool { return !inner(r, c) }
	}
	return m, nil
}

func comparer(kind, value string) (func(string) bool, error) {
	switch kind {
	case "EQUAL_TO":
		return func(s string) bool { return s == value }, nil
	case "STARTS_WITH":
		return func(s string) bool { return strings.HasPrefix(s, value) }, nil
	case "ENDS_WITH":
		return func(s string) bool { return strings.HasSuffix(s, value) }, nil
	case "CONTAINS":
		return func(s string) bool { return strings.Contains(s, value) }, nil
	case "REGEX":
		re, err := regexp.Compile(value)
		if err != nil {
			return nil, fmt.Errorf("l7: regex %q: %w", value, err)
		}
		return re.MatchString, nil
	}
	return nil, fmt.Errorf("l7: unknown compare type %q", kind)
}

// lowerASCII lower-cases s, allocating only when it has upper-case letters.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}
