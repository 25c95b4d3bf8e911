package certs_test

import (
	"net"
	"testing"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/pki"
)

func ipList(ips ...string) []net.IP {
	out := make([]net.IP, len(ips))
	for i, s := range ips {
		out[i] = net.ParseIP(s)
	}
	return out
}

// FuzzParse feeds arbitrary bytes to the bundle parser: it must return a
// bundle or an error naming the ref, never panic.
func FuzzParse(f *testing.F) {
	c := newChain(f, pki.ECDSAP256)
	f.Add(cat(pki.CertPEM(c.leaf), c.key, pki.CertPEM(c.int2.Cert, c.int1.Cert)), []byte(nil))
	if p12, err := pkcs12.Modern.Encode(c.keyObj, c.leaf, nil, "pw"); err == nil {
		f.Add(p12, []byte("pw"))
	}
	f.Add([]byte("-----BEGIN PKCS7-----\nMAA=\n-----END PKCS7-----\n"), []byte(nil))
	f.Add([]byte{0x30, 0x82, 0x01}, []byte("x"))
	f.Fuzz(func(t *testing.T, data, pass []byte) {
		b, err := certs.Parse("fuzz", data, pass)
		if err == nil && (b == nil || b.Leaf() == nil || len(b.Names) == 0) {
			t.Fatalf("nil error with incomplete bundle %+v", b)
		}
	})
}
