package vault

import (
	"fmt"
	"net/url"
	"strings"
)

// kvRef is a parsed vault: reference.
type kvRef struct {
	path                                 string
	cert, key, chain, pkcs12, passphrase []string // candidate field names
	field                                string   // for raw secrets
}

// pkiRef is a parsed vault-pki: reference.
type pkiRef struct {
	mount, role string
	params      map[string]any // common_name, alt_names, ip_sans, uri_sans, ttl
	raw         string         // "ca_chain" or "crl" for raw secrets
}

var defaultFields = map[string][]string{
	"cert":       {"certificate", "cert", "tls.crt", "crt"},
	"key":        {"private_key", "key", "tls.key"},
	"chain":      {"ca_chain", "chain", "intermediates", "issuing_ca"},
	"pkcs12":     {"pkcs12", "p12"},
	"passphrase": {"passphrase", "private_key_passphrase"},
}

func parseKV(ref string) (*kvRef, error) {
	u, err := url.Parse(ref)
	if err != nil || u.Scheme != "vault" || u.Opaque == "" {
		return nil, fmt.Errorf("want vault:PATH[?field options], e.g. vault:secret/data/tls/shop")
	}
	r := &kvRef{path: strings.Trim(u.Opaque, "/")}
	q := u.Query()
	pick := func(name string) []string {
		if v := q.Get(name); v != "" {
			return []string{v}
		}
		return defaultFields[name]
	}
	for k := range q {
		switch k {
		case "cert", "key", "chain", "pkcs12", "passphrase", "field":
		default:
			return nil, fmt.Errorf("unknown option %q (want cert, key, chain, pkcs12, passphrase or field)", k)
		}
	}
	r.cert, r.key, r.chain, r.pkcs12, r.passphrase, r.field = pick("cert"), pick("key"), pick("chain"), pick("pkcs12"), pick("passphrase"), q.Get("field")
	return r, nil
}

func parsePKI(ref string) (*pkiRef, error) {
	u, err := url.Parse(ref)
	if err != nil || u.Scheme != "vault-pki" || u.Opaque == "" {
		return nil, fmt.Errorf("want vault-pki:MOUNT/issue/ROLE?common_name=…, vault-pki:MOUNT/ca_chain or vault-pki:MOUNT/crl")
	}
	parts := strings.Split(strings.Trim(u.Opaque, "/"), "/")
	switch {
	case len(parts) == 2 && (parts[1] == "ca_chain" || parts[1] == "crl"):
		return &pkiRef{mount: parts[0], raw: parts[1]}, nil
	case len(parts) >= 3 && parts[len(parts)-2] == "issue":
		r := &pkiRef{mount: strings.Join(parts[:len(parts)-2], "/"), role: parts[len(parts)-1], params: map[string]any{}}
		for k, v := range u.Query() {
			switch k {
			case "common_name", "alt_names", "ip_sans", "uri_sans", "ttl", "exclude_cn_from_sans":
				r.params[k] = strings.Join(v, ",")
			default:
				return nil, fmt.Errorf("unknown PKI option %q", k)
			}
		}
		if r.params["common_name"] == nil {
			return nil, fmt.Errorf("a vault-pki issue reference needs common_name")
		}
		return r, nil
	}
	return nil, fmt.Errorf("want vault-pki:MOUNT/issue/ROLE?common_name=…, vault-pki:MOUNT/ca_chain or vault-pki:MOUNT/crl")
}
