package acme

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/net/idna"
)

// maxNames bounds the names of one certificate (Let's Encrypt allows 100).
const maxNames = 100

// parseRef returns the names an acme:// reference asks for, the first one
// first and the rest sorted, each validated as a host name the HTTP-01 and
// TLS-ALPN-01 challenges can prove (no wildcards, no IP addresses).
func parseRef(ref string) ([]string, error) {
	u, err := url.Parse(ref)
	if err != nil {
		return nil, fmt.Errorf("invalid acme reference: %w", err)
	}
	if u.Scheme != "acme" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.User != nil || u.Fragment != "" {
		return nil, errors.New("an acme reference is acme://NAME or acme://NAME?san=OTHER&san=…")
	}
	q := u.Query()
	for k := range q {
		if k != "san" {
			return nil, fmt.Errorf("unknown parameter %q (only san)", k)
		}
	}
	first, err := hostName(u.Host)
	if err != nil {
		return nil, err
	}
	names := []string{first}
	var rest []string
	for _, s := range q["san"] {
		n, err := hostName(s)
		if err != nil {
			return nil, err
		}
		if n != first && !slices.Contains(rest, n) {
			rest = append(rest, n)
		}
	}
	slices.Sort(rest)
	names = append(names, rest...)
	if len(names) > maxNames {
		return nil, fmt.Errorf("%d names; a certificate holds at most %d", len(names), maxNames)
	}
	return names, nil
}

// lookup is IDNA's lookup profile with DNS's length limits and LDH rule.
var lookup = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.VerifyDNSLength(true), idna.StrictDomainName(true))

// hostName validates and normalises one name.
func hostName(s string) (string, error) {
	if strings.Contains(s, "*") {
		return "", fmt.Errorf("%q: wildcard names need the DNS-01 challenge, which terminator does not answer", s)
	}
	if strings.Contains(s, ":") {
		return "", fmt.Errorf("%q: a name, without a port", s)
	}
	n, err := lookup.ToASCII(strings.TrimSuffix(s, "."))
	if err != nil || n == "" {
		return "", fmt.Errorf("%q is not a host name", s)
	}
	if strings.Trim(n, "0123456789.") == "" {
		return "", fmt.Errorf("%q: IP addresses are not supported", s)
	}
	return strings.ToLower(n), nil
}

// certKey is where the certificate for names is stored.
func certKey(names []string) string {
	return "certificates/" + strings.Join(names, ",")
}
