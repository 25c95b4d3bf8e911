package main

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/terminator-proxy/terminator/internal/atomicfile"
	"github.com/terminator-proxy/terminator/pki"
)

// caFlags are the flags the ca subcommands share.
type caFlags struct {
	dir, passFile string
	validity      time.Duration
}

func (c *caFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.dir, "dir", "", "the CA directory (made by ca init)")
	cmd.Flags().StringVar(&c.passFile, "passphrase-file", "", "file holding the passphrase of the CA keys, if ca init encrypted them")
	_ = cmd.MarkFlagRequired("dir")
}

func (c *caFlags) pass() ([]byte, error) {
	if c.passFile == "" {
		return nil, nil
	}
	p, err := os.ReadFile(c.passFile)
	if err != nil {
		return nil, err
	}
	return bytes.TrimRight(p, "\r\n"), nil
}

// caRun runs one ca subcommand with the CA directory and passphrase.
func caRun(c *caFlags, f func(caFiles, []byte) error) func(*cobra.Command, []string) error {
	return func(*cobra.Command, []string) error {
		pass, err := c.pass()
		if err == nil {
			err = f(caFiles{c.dir}, pass)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "terminator ca:", err)
			return exitCode(1)
		}
		return nil
	}
}

// newCACmd is "terminator ca": the control API's two CAs, as in Octavia:
// the server CA signs the certificates terminator presents, the client CA
// the controllers'. A server certificate can therefore never pass as a
// client.
func newCACmd() *cobra.Command {
	ca := &cobra.Command{
		Use:   "ca",
		Short: "Make and run the control API's two CAs",
		Long: `The control API's two CAs, as in Octavia: the server CA signs the certificates
terminator presents, the client CA the controllers'. A server certificate can
therefore never pass as a client. Keys are written 0600; with --passphrase-file
at init they are encrypted, and every later command needs the same file.`,
		Args: cobra.NoArgs,
	}
	var keyType string
	keyTypeFlag := func(cmd *cobra.Command) {
		cmd.Flags().StringVar(&keyType, "key-type", string(pki.ECDSAP256), "key type for new keys: ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096")
	}

	initF := &caFlags{}
	initCmd := &cobra.Command{
		Use: "init", Short: "Create the server CA, the client CA and the client CA's CRL", Args: cobra.NoArgs,
		RunE: caRun(initF, func(f caFiles, pass []byte) error { return caInit(f, pki.KeyType(keyType), pass, initF.validity) }),
	}
	initF.register(initCmd)
	keyTypeFlag(initCmd)
	initCmd.Flags().DurationVar(&initF.validity, "validity", 0, "validity of the CAs (default 10 years)")

	issue := func(server bool) *cobra.Command {
		f := &caFlags{}
		var cn, out string
		var dns, ips []string
		use, short := "issue-client", "Issue a controller's client certificate (signed by the client CA)"
		if server {
			use, short = "issue-server", "Issue terminator's control API server certificate (signed by the server CA)"
		}
		cmd := &cobra.Command{
			Use: use, Short: short, Args: cobra.NoArgs,
			Long: short + `. Writes PREFIX.pem, PREFIX.key and PREFIX-combined.pem (certificate and key
in one file: Octavia's client_cert / agent_server_cert shape).`,
			RunE: caRun(f, func(files caFiles, pass []byte) error {
				return caIssue(files, server, cn, dns, ips, out, pki.KeyType(keyType), pass, f.validity)
			}),
		}
		f.register(cmd)
		keyTypeFlag(cmd)
		cmd.Flags().DurationVar(&f.validity, "validity", 0, "certificate validity (default 1 year)")
		cmd.Flags().StringVar(&cn, "cn", "", "common name (the amphora id for a server, the controller's name for a client)")
		cmd.Flags().StringVar(&out, "out", "", "output prefix")
		_ = cmd.MarkFlagRequired("cn")
		_ = cmd.MarkFlagRequired("out")
		if server {
			cmd.Flags().StringArrayVar(&dns, "dns", nil, "DNS name (repeatable; default the CN)")
			cmd.Flags().StringArrayVar(&ips, "ip", nil, "IP address (repeatable)")
		}
		return cmd
	}

	signF := &caFlags{}
	var signOut string
	sign := &cobra.Command{
		Use: "sign CSR-FILE", Short: "Sign a server CSR with the server CA (Octavia's CertificateGenerator)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return caRun(signF, func(f caFiles, pass []byte) error { return caSign(f, args[0], signOut, pass, signF.validity) })(cmd, args)
		},
	}
	signF.register(sign)
	sign.Flags().DurationVar(&signF.validity, "validity", 0, "certificate validity (default 1 year)")
	sign.Flags().StringVar(&signOut, "out", "", "write the certificate here instead of stdout")

	revokeF := &caFlags{}
	revoke := &cobra.Command{
		Use: "revoke CERT-FILE", Short: "Revoke a client certificate and re-sign the client CA's CRL", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return caRun(revokeF, func(f caFiles, pass []byte) error { return caRevoke(f, args[0], pass) })(cmd, args)
		},
	}
	revokeF.register(revoke)

	crlF := &caFlags{}
	crl := &cobra.Command{
		Use: "crl", Short: "Re-sign the client CA's CRL (valid 30 days; run it before then)", Args: cobra.NoArgs,
		RunE: caRun(crlF, caWriteCRL),
	}
	crlF.register(crl)

	ca.AddCommand(initCmd, issue(false), issue(true), sign, revoke, crl)
	return ca
}

type caFiles struct{ dir string }

func (c caFiles) path(name string) string { return filepath.Join(c.dir, name) }

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
