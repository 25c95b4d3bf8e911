package proxy

import (
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// HeaderRules says which headers a listener inserts (Octavia's
// insert_headers). It is immutable once built.
type HeaderRules struct {
	ForwardedFor   bool
	ForwardedPort  bool
	ForwardedProto bool
	// SSL lists the X-SSL-* headers to set, in canonical form.
	SSL []string
	// HSTS is the Strict-Transport-Security value, or "" for none.
	HSTS string
}

// sslHeaderNames are the X-SSL-* headers in canonical form. Whatever the
// client sends under these names is always removed, so they cannot be
// forged whether or not the listener sets them.
var sslHeaderNames = []string{
	"X-Ssl-Client-Verify", "X-Ssl-Client-Has-Cert", "X-Ssl-Client-Dn", "X-Ssl-Client-Cn",
	"X-Ssl-Issuer", "X-Ssl-Client-Sha1", "X-Ssl-Client-Not-Before", "X-Ssl-Client-Not-After",
}

// NewHeaderRules reads Octavia's insert_headers (only the value "true", in
// any case, turns a header on) and the HSTS settings.
func NewHeaderRules(insert map[string]string, hstsMaxAge *int, includeSubdomains, preload bool) HeaderRules {
	var r HeaderRules
	for k, v := range insert {
		if !strings.EqualFold(v, "true") {
			continue
		}
		switch name := http.CanonicalHeaderKey(k); name {
		case "X-Forwarded-For":
			r.ForwardedFor = true
		case "X-Forwarded-Port":
			r.ForwardedPort = true
		case "X-Forwarded-Proto":
			r.ForwardedProto = true
		default:
			for _, s := range sslHeaderNames {
				if s == name {
					r.SSL = append(r.SSL, name)
				}
			}
		}
	}
	if hstsMaxAge != nil {
		v := fmt.Sprintf("max-age=%d", *hstsMaxAge)
		if includeSubdomains {
			v += "; includeSubDomains"
		}
		if preload {
			v += "; preload"
		}
		r.HSTS = v
	}
	return r
}

// apply rewrites the outbound header as haproxy does for Octavia:
// X-Forwarded-For is appended to (option forwardfor keeps what the client
// sent), the others replace the client's values. in is the client's header.
func (r *HeaderRules) apply(out, in http.Header, ci *connInfo) {
	if r.ForwardedFor {
		prior := in["X-Forwarded-For"]
		xff := make([]string, len(prior)+1)
		copy(xff, prior)
		xff[len(prior)] = ci.clientIP
		out["X-Forwarded-For"] = xff
	}
	if r.ForwardedPort {
		out["X-Forwarded-Port"] = []string{ci.port}
	}
	if r.ForwardedProto {
		out["X-Forwarded-Proto"] = []string{ci.proto}
	}
	for _, h := range sslHeaderNames {
		delete(out, h)
	}
	if len(r.SSL) > 0 && ci.tls != nil {
		vals := ci.sslValues()
		for _, h := range r.SSL {
			out[h] = []string{vals[h]}
		}
	}
}

// sslHeaderValues computes the X-SSL-* values of a connection in haproxy
// 2.6's formats (unquoted, as Octavia 11 renders them): verify result 0,
// has-cert 1/0, OpenSSL one-line DNs, upper-case SHA-1, ASN.1 times.
func sslHeaderValues(cs *tls.ConnectionState) map[string]string {
	v := map[string]string{
		"X-Ssl-Client-Verify":   "0", // a failed verification aborts the handshake
		"X-Ssl-Client-Has-Cert": "0",
	}
	if len(cs.PeerCertificates) == 0 {
		for _, h := range sslHeaderNames[2:] {
			v[h] = ""
		}
		return v
	}
	c := cs.PeerCertificates[0]
	sum := sha1.Sum(c.Raw)
	v["X-Ssl-Client-Has-Cert"] = "1"
	v["X-Ssl-Client-Dn"] = onelineDN(c.Subject)
	v["X-Ssl-Client-Cn"] = c.Subject.CommonName
	v["X-Ssl-Issuer"] = onelineDN(c.Issuer)
	v["X-Ssl-Client-Sha1"] = strings.ToUpper(hex.EncodeToString(sum[:]))
	v["X-Ssl-Client-Not-Before"] = asn1Time(c.NotBefore)
	v["X-Ssl-Client-Not-After"] = asn1Time(c.NotAfter)
	return v
}

// OpenSSL short names for the attribute types of X509_NAME_oneline.
var dnShortNames = map[string]string{
	"2.5.4.3": "CN", "2.5.4.4": "SN", "2.5.4.5": "serialNumber", "2.5.4.6": "C",
	"2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.9": "street", "2.5.4.10": "O",
	"2.5.4.11": "OU", "2.5.4.12": "title", "2.5.4.42": "GN", "2.5.4.46": "dnQualifier",
	"0.9.2342.19200300.100.1.1": "UID", "0.9.2342.19200300.100.1.25": "DC",
	"1.2.840.113549.1.9.1": "emailAddress",
}

// onelineDN renders a name as OpenSSL's X509_NAME_oneline does, in the
// order the attributes appear in the certificate: /C=US/O=Example/CN=client.
func onelineDN(n pkix.Name) string {
	var b strings.Builder
	for _, atv := range n.Names {
		key, ok := dnShortNames[atv.Type.String()]
		if !ok {
			key = atv.Type.String()
		}
		b.WriteByte('/')
		b.WriteString(key)
		b.WriteByte('=')
		fmt.Fprint(&b, atv.Value)
	}
	return b.String()
}

// asn1Time formats t as haproxy's ssl_c_notbefore/notafter do: the
// certificate's own ASN.1 form, UTCTime YYMMDDhhmmssZ for 1950-2049 and
// GeneralizedTime YYYYMMDDhhmmssZ otherwise.
func asn1Time(t time.Time) string {
	t = t.UTC()
	if y := t.Year(); y >= 1950 && y < 2050 {
		return t.Format("060102150405Z")
	}
	return t.Format("20060102150405Z")
}
