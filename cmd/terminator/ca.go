package main

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/terminator-proxy/terminator/internal/atomicfile"
	"github.com/terminator-proxy/terminator/pki"
)

// The two CAs of the control API, as in Octavia: the server CA signs the
// certificates terminator presents, the client CA the controllers'. A
// server certificate can therefore never pass as a client.
const caUsage = `Usage:
  terminator ca init --dir DIR [--key-type ecdsa-p256|rsa-2048|…] [--passphrase-file F] [--validity 87600h]
  terminator ca issue-client --dir DIR --cn NAME --out PREFIX [--validity 8760h]
  terminator ca issue-server --dir DIR --cn AMPHORA-ID [--dns NAME]… [--ip IP]… --out PREFIX [--validity 8760h]
  terminator ca sign --dir DIR [--validity 8760h] [--out FILE] CSR-FILE
  terminator ca revoke --dir DIR CERT-FILE
  terminator ca crl --dir DIR            (re-sign the client CA's CRL)
The CA keys are read with --passphrase-file when they were encrypted at init.
`

type caFiles struct{ dir string }

func (c caFiles) path(name string) string { return filepath.Join(c.dir, name) }

func cmdCA(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, caUsage)
		return 2
	}
	fs := flag.NewFlagSet("ca "+args[0], flag.ContinueOnError)
	dir := fs.String("dir", "", "CA directory")
	keyType := fs.String("key-type", string(pki.ECDSAP256), "key type for new keys")
	passFile := fs.String("passphrase-file", "", "file holding the passphrase of the CA keys")
	validity := fs.Duration("validity", 0, "certificate validity (CAs: 10 years; others: 1 year)")
	cn := fs.String("cn", "", "common name")
	out := fs.String("out", "", "output file or prefix")
	var dns, ips multiFlag
	fs.Var(&dns, "dns", "DNS name (repeatable)")
	fs.Var(&ips, "ip", "IP address (repeatable)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "terminator ca: --dir is required")
		return 2
	}
	var pass []byte
	if *passFile != "" {
		p, err := os.ReadFile(*passFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "terminator ca:", err)
			return 1
		}
		pass = bytes.TrimRight(p, "\r\n")
	}
	f := caFiles{*dir}
	var err error
	switch args[0] {
	case "init":
		err = caInit(f, pki.KeyType(*keyType), pass, *validity)
	case "issue-client", "issue-server":
		err = caIssue(f, args[0] == "issue-server", *cn, dns, ips, *out, pki.KeyType(*keyType), pass, *validity)
	case "sign":
		if fs.NArg() != 1 {
			err = errors.New("sign takes one CSR file")
			break
		}
		err = caSign(f, fs.Arg(0), *out, pass, *validity)
	case "revoke":
		if fs.NArg() != 1 {
			err = errors.New("revoke takes one certificate file")
			break
		}
		err = caRevoke(f, fs.Arg(0), pass)
	case "crl":
		err = caWriteCRL(f, pass)
	default:
		fmt.Fprint(os.Stderr, caUsage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "terminator ca:", err)
		return 1
	}
	return 0
}

func caInit(f caFiles, kt pki.KeyType, pass []byte, validity time.Duration) error {
	if _, err := os.Stat(f.path("server-ca.pem")); err == nil {
		return fmt.Errorf("%s already holds a CA; refusing to overwrite it", f.dir)
	}
	if err := os.MkdirAll(f.dir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(f.dir, 0o700); err != nil {
		return err
	}
	for _, which := range []string{"server", "client"} {
		ca, err := pki.NewCA("terminator "+which+" CA", kt, validity)
		if err != nil {
			return err
		}
		if err := writeKeyPair(f.path(which+"-ca"), ca.Cert, ca.Key, pass, false); err != nil {
			return err
		}
	}
	if err := writeFile(f.path("revoked"), nil, 0o600); err != nil {
		return err
	}
	if err := caWriteCRL(f, pass); err != nil {
		return err
	}
	fmt.Printf("server CA: %s\nclient CA: %s\nclient CRL: %s\n", f.path("server-ca.pem"), f.path("client-ca.pem"), f.path("client-ca.crl"))
	return nil
}

func loadCA(f caFiles, which string, pass []byte) (*pki.CA, error) {
	return pki.LoadCA(f.path(which+"-ca.pem"), f.path(which+"-ca.key"), pass)
}

func caIssue(f caFiles, server bool, cn string, dns, ips []string, out string, kt pki.KeyType, pass []byte, validity time.Duration) error {
	if cn == "" || out == "" {
		return errors.New("--cn and --out are required")
	}
	which, usage := "client", pki.ClientAuth
	if server {
		which, usage = "server", pki.ServerAuth
		if len(dns) == 0 {
			dns = []string{cn}
		}
	}
	ca, err := loadCA(f, which, pass)
	if err != nil {
		return err
	}
	req := pki.Request{CommonName: cn, DNSNames: dns, Usage: usage, KeyType: kt, Validity: validity}
	for _, s := range ips {
		ip := net.ParseIP(s)
		if ip == nil {
			return fmt.Errorf("--ip %q is not an IP address", s)
		}
		req.IPAddresses = append(req.IPAddresses, ip)
	}
	cert, key, err := ca.Issue(req)
	if err != nil {
		return err
	}
	if err := writeKeyPair(out, cert, key, nil, true); err != nil {
		return err
	}
	fmt.Printf("certificate: %s.pem\nkey: %s.key\ncertificate and key (Octavia's client_cert): %s-combined.pem\n", out, out, out)
	return nil
}

func caSign(f caFiles, csrFile, out string, pass []byte, validity time.Duration) error {
	csr, err := os.ReadFile(csrFile)
	if err != nil {
		return err
	}
	ca, err := loadCA(f, "server", pass)
	if err != nil {
		return err
	}
	cert, err := ca.SignCSR(csr, pki.ServerAuth, validity)
	if err != nil {
		return err
	}
	if out == "" {
		_, err = os.Stdout.Write(pki.CertPEM(cert))
		return err
	}
	return writeFile(out, pki.CertPEM(cert), 0o644)
}

func caRevoke(f caFiles, certFile string, pass []byte) error {
	data, err := os.ReadFile(certFile)
	if err != nil {
		return err
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return fmt.Errorf("%s holds no PEM certificate", certFile)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return err
	}
	ca, err := loadCA(f, "client", pass)
	if err != nil {
		return err
	}
	if c.CheckSignatureFrom(ca.Cert) != nil {
		return fmt.Errorf("%s was not issued by the client CA", certFile)
	}
	list, _ := os.ReadFile(f.path("revoked"))
	list = append(list, []byte(c.SerialNumber.Text(16)+"\n")...)
	if err := writeFile(f.path("revoked"), list, 0o600); err != nil {
		return err
	}
	return caWriteCRL(f, pass)
}

// caWriteCRL signs the client CA's CRL from the revoked list (valid 30 days;
// re-run "ca crl" before then).
func caWriteCRL(f caFiles, pass []byte) error {
	ca, err := loadCA(f, "client", pass)
	if err != nil {
		return err
	}
	list, _ := os.ReadFile(f.path("revoked"))
	var serials []*big.Int
	for _, s := range strings.Fields(string(list)) {
		n, ok := new(big.Int).SetString(s, 16)
		if !ok {
			return fmt.Errorf("%s: bad serial %q", f.path("revoked"), s)
		}
		serials = append(serials, n)
	}
	crl, err := ca.CRLSerials(serials, 30*24*time.Hour)
	if err != nil {
		return err
	}
	return writeFile(f.path("client-ca.crl"), crl, 0o644)
}

// writeKeyPair writes prefix.pem (0644), prefix.key (0600, encrypted when
// pass is set) and, if combined, prefix-combined.pem (0600).
func writeKeyPair(prefix string, cert *x509.Certificate, signer crypto.Signer, pass []byte, combined bool) error {
	var kp []byte
	var err error
	if pass != nil {
		kp, err = pki.EncryptedKeyPEM(signer, pass)
	} else {
		kp, err = pki.KeyPEM(signer)
	}
	if err != nil {
		return err
	}
	if err := writeFile(prefix+".pem", pki.CertPEM(cert), 0o644); err != nil {
		return err
	}
	if err := writeFile(prefix+".key", kp, 0o600); err != nil {
		return err
	}
	if combined {
		return writeFile(prefix+"-combined.pem", append(pki.CertPEM(cert), kp...), 0o600)
	}
	return nil
}

// writeFile writes atomically with the given mode.
func writeFile(path string, data []byte, mode os.FileMode) error {
	return atomicfile.Write(path, data, mode)
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
