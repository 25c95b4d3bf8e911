package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// ctlOptions are the flags every ctl subcommand shares.
type ctlOptions struct {
	server, certFile, keyFile, caFile, serverName, ifMatch string
	asJSON                                                 bool
}

// ctlRequest is one call to the control API.
type ctlRequest struct {
	method, path, ctype string
	body                []byte
	header              map[string]string
	view                string // how printReadable shows the answer
}

const membersShape = `The file holds the pool's new members, as Octavia's batch member update takes
them, in JSON or YAML: either {"members": [...]} or the bare list:

  members:
    - {address: 10.0.0.11, protocol_port: 8080, weight: 1}
    - {address: 10.0.0.12, protocol_port: 8080, backup: true, admin_state_up: false}

Member fields: address, protocol_port (required), weight (0-256, default 1),
backup, admin_state_up, monitor_address, monitor_port, name, id,
max_connections. Every member not listed is removed.`

// newCtlCmd is "terminator ctl": a client of the mTLS control API.
func newCtlCmd() *cobra.Command {
	o := &ctlOptions{}
	ctl := &cobra.Command{
		Use:   "ctl",
		Short: "Drive a running terminator through its mTLS control API",
		Long: `Drive a running terminator through its mTLS control API. The client certificate
must be signed by the control API's client CA; the server's is checked against
--ca. Answers are printed as tables, or as the raw JSON with --json.`,
		Example: `  terminator ctl --server https://10.0.0.5:9443 --cert controller-combined.pem --ca server-ca.pem status
  terminator ctl ... apply dataplane.yaml
  terminator ctl ... cert upload shop shop.p12 --p12 --passphrase-file shop.pass`,
		Args: cobra.NoArgs,
	}
	pf := ctl.PersistentFlags()
	pf.StringVar(&o.server, "server", "https://127.0.0.1:9443", "control API URL")
	pf.StringVar(&o.certFile, "cert", "", "client certificate (PEM; may also hold the key, as Octavia's client_cert)")
	pf.StringVar(&o.keyFile, "key", "", "client key, if not in --cert")
	pf.StringVar(&o.caFile, "ca", "", "the server CA, to verify terminator")
	pf.StringVar(&o.serverName, "server-name", "", "name to verify in terminator's certificate (default: the URL's host)")
	pf.StringVar(&o.ifMatch, "if-match", "", "only write if the config version is still this one")
	pf.BoolVar(&o.asJSON, "json", false, "print the raw JSON answer")

	get := func(use, short, path, view string) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error { return o.do(ctlRequest{method: "GET", path: path, view: view}) }}
	}
	withFile := func(method, path string, i int, args []string) (ctlRequest, error) {
		body, err := readConfigFile(args[i])
		return ctlRequest{method: method, path: path, body: body, ctype: "application/json"}, err
	}
	run := func(build func(args []string) (ctlRequest, error)) func(*cobra.Command, []string) error {
		return func(_ *cobra.Command, args []string) error {
			r, err := build(args)
			if err != nil {
				fmt.Fprintln(os.Stderr, "terminator ctl:", err)
				return exitCode(1)
			}
			return o.do(r)
		}
	}

	apply := &cobra.Command{
		Use: "apply FILE", Short: "Replace the listeners and pools (and tls settings) with a file's",
		Long: `Replace the listeners, pools and tls settings with those of FILE (JSON, or YAML
with the same objects as the config file). The file must name both listeners
and pools; an empty list removes them all.`,
		Args: cobra.ExactArgs(1),
		RunE: run(func(a []string) (ctlRequest, error) { return withFile("PUT", "/v1/config", 0, a) }),
	}
	objects := func(kind string) *cobra.Command {
		parent := &cobra.Command{Use: kind, Short: "Create, replace or delete one " + kind, Args: cobra.NoArgs}
		parent.AddCommand(&cobra.Command{
			Use: "put NAME FILE", Short: "Create or replace the " + kind + " NAME with FILE's (JSON or YAML)", Args: cobra.ExactArgs(2),
			RunE: run(func(a []string) (ctlRequest, error) { return withFile("PUT", "/v1/"+kind+"s/"+a[0], 1, a) }),
		}, &cobra.Command{
			Use: "delete NAME", Short: "Delete the " + kind + " NAME", Args: cobra.ExactArgs(1),
			RunE: run(func(a []string) (ctlRequest, error) {
				return ctlRequest{method: "DELETE", path: "/v1/" + kind + "s/" + a[0]}, nil
			}),
		})
		return parent
	}
	members := &cobra.Command{Use: "members", Short: "Replace a pool's members", Args: cobra.NoArgs}
	members.AddCommand(&cobra.Command{
		Use: "put POOL FILE", Short: "Replace POOL's members with FILE's", Long: membersShape, Args: cobra.ExactArgs(2),
		RunE: run(func(a []string) (ctlRequest, error) {
			body, err := readConfigFile(a[1])
			if err == nil {
				body, err = wrapMembers(body)
			}
			return ctlRequest{method: "PUT", path: "/v1/pools/" + a[0] + "/members", body: body, ctype: "application/json"}, err
		}),
	})

	var p12 bool
	var passFile string
	cert := &cobra.Command{Use: "cert", Short: "Upload certificates; rotate the control API's own", Args: cobra.NoArgs}
	upload := &cobra.Command{
		Use: "upload NAME FILE", Short: "Store a bundle (PEM, or PKCS#12 with --p12); prints the ref to use",
		Long: `Store a certificate bundle in terminator's state directory after validating it,
and print the reference to put in default_tls_container_ref or
sni_container_refs. FILE is PEM (certificate, key and chain; an encrypted key
needs --passphrase-file) or, with --p12, PKCS#12.`,
		Args: cobra.ExactArgs(2),
		RunE: run(func(a []string) (ctlRequest, error) {
			return uploadRequest("/v1/certificates/"+a[0], a[1], p12, passFile)
		}),
	}
	rotate := &cobra.Command{
		Use: "rotate FILE", Short: "Replace the control API's own certificate (open connections carry on)", Args: cobra.ExactArgs(1),
		RunE: run(func(a []string) (ctlRequest, error) { return uploadRequest("/v1/certificate", a[0], p12, passFile) }),
	}
	for _, c := range []*cobra.Command{upload, rotate} {
		c.Flags().BoolVar(&p12, "p12", false, "FILE is PKCS#12")
		c.Flags().StringVar(&passFile, "passphrase-file", "", "file holding the passphrase of the PKCS#12 or of an encrypted key")
	}
	cert.AddCommand(upload, rotate)

	raw := &cobra.Command{
		Use: "raw METHOD PATH [FILE]", Short: "Send any request (the body from FILE, as is)", Args: cobra.RangeArgs(2, 3),
		RunE: run(func(a []string) (ctlRequest, error) {
			r := ctlRequest{method: strings.ToUpper(a[0]), path: a[1]}
			if len(a) == 3 {
				var err error
				if r.body, err = os.ReadFile(a[2]); err != nil {
					return r, err
				}
			}
			return r, nil
		}),
	}
	ctl.AddCommand(
		get("status", "Show build, config version, uptime and the control certificate", "/v1/status", "status"),
		get("config", "Show the committed listeners, pools and tls settings", "/v1/config", "config"),
		get("listeners", "List the listeners", "/v1/listeners", "listeners"),
		get("pools", "List the pools and their members", "/v1/pools", "pools"),
		get("certs", "List the certificates in use", "/v1/certificates", "certs"),
		apply, objects("listener"), objects("pool"), members, cert, raw,
	)
	return ctl
}

// readConfigFile reads a JSON or YAML file and returns it as JSON.
func readConfigFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out, err := toJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// wrapMembers accepts {"members": [...]} or a bare list of members.
func wrapMembers(body []byte) ([]byte, error) {
	var list []json.RawMessage
	if json.Unmarshal(body, &list) == nil {
		return json.Marshal(map[string]any{"members": list})
	}
	return body, nil
}

// uploadRequest reads a bundle to upload, with its passphrase if given.
func uploadRequest(path, file string, p12 bool, passFile string) (ctlRequest, error) {
	r := ctlRequest{method: "PUT", path: path, ctype: "application/x-pem-file", view: "upload"}
	if p12 {
		r.ctype = "application/x-pkcs12"
	}
	var err error
	if r.body, err = os.ReadFile(file); err != nil {
		return r, err
	}
	if passFile != "" {
		pass, err := os.ReadFile(passFile)
		if err != nil {
			return r, err
		}
		r.header = map[string]string{"X-Passphrase": strings.TrimRight(string(pass), "\r\n")}
	}
	return r, nil
}

// do sends r and prints the answer; errors are printed and turn into exit
// status 1.
func (o *ctlOptions) do(r ctlRequest) error {
	client, err := ctlClient(o.certFile, o.keyFile, o.caFile, o.serverName)
	if err != nil {
		fmt.Fprintln(os.Stderr, "terminator ctl:", err)
		return exitCode(1)
	}
	req, err := http.NewRequest(r.method, strings.TrimSuffix(o.server, "/")+r.path, bytes.NewReader(r.body))
	if err != nil {
		fmt.Fprintln(os.Stderr, "terminator ctl:", err)
		return exitCode(1)
	}
	if r.ctype != "" {
		req.Header.Set("Content-Type", r.ctype)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	if o.ifMatch != "" {
		req.Header.Set("If-Match", `"`+strings.Trim(o.ifMatch, `"`)+`"`)
	}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "terminator ctl:", err)
		return exitCode(1)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		fmt.Fprintln(os.Stderr, "terminator ctl:", err)
		return exitCode(1)
	}
	if resp.StatusCode >= 300 {
		printCtlError(out)
		return exitCode(1)
	}
	if o.asJSON || len(out) == 0 {
		os.Stdout.Write(out)
		return nil
	}
	printReadable(r.view, out)
	return nil
}

func ctlClient(certFile, keyFile, caFile, serverName string) (*http.Client, error) {
	if certFile == "" || caFile == "" {
		return nil, fmt.Errorf("--cert and --ca are required (the control API accepts only mutual TLS)")
	}
	if keyFile == "" {
		keyFile = certFile
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 60 * time.Second}, nil
}

// toJSON accepts JSON, or YAML holding the same objects, and returns JSON.
func toJSON(data []byte) ([]byte, error) {
	if json.Valid(data) {
		return data, nil
	}
	var v any
	if err := yamlUnmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("neither JSON nor YAML: %w", err)
	}
	return json.Marshal(v)
}

func printCtlError(out []byte) {
	var e struct {
		Error struct {
			Status   int    `json:"status"`
			Code     string `json:"code"`
			Message  string `json:"message"`
			Problems []struct {
				Path    string `json:"path"`
				Message string `json:"message"`
			} `json:"problems"`
		} `json:"error"`
	}
	if json.Unmarshal(out, &e) != nil || e.Error.Message == "" {
		fmt.Fprintf(os.Stderr, "terminator ctl: %s\n", out)
		return
	}
	fmt.Fprintf(os.Stderr, "error %d (%s): %s\n", e.Error.Status, e.Error.Code, e.Error.Message)
	for _, p := range e.Error.Problems {
		if p.Path != "" {
			fmt.Fprintf(os.Stderr, "  %s: %s\n", p.Path, p.Message)
		} else {
			fmt.Fprintf(os.Stderr, "  %s\n", p.Message)
		}
	}
}

func printReadable(cmd string, out []byte) {
	var v map[string]any
	if json.Unmarshal(out, &v) != nil {
		os.Stdout.Write(out)
		return
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	switch cmd {
	case "listeners":
		fmt.Fprintln(tw, "NAME\tPROTOCOL\tBIND\tDEFAULT POOL\tCERTIFICATES")
		for _, x := range list(v["listeners"]) {
			l := x.(map[string]any)
			n := len(list(l["sni_container_refs"]))
			if l["default_tls_container_ref"] != nil {
				n++
			}
			fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%d\n", or(l["name"], l["id"]), l["protocol"], l["bind"], or(l["default_pool"], l["default_pool_id"]), n)
		}
	case "pools":
		fmt.Fprintln(tw, "NAME\tALGORITHM\tMEMBERS")
		for _, x := range list(v["pools"]) {
			p := x.(map[string]any)
			var ms []string
			for _, m := range list(p["members"]) {
				mm := m.(map[string]any)
				ms = append(ms, fmt.Sprintf("%v:%v(w%v)", mm["address"], mm["protocol_port"], or(mm["weight"], 1)))
			}
			fmt.Fprintf(tw, "%v\t%v\t%s\n", or(p["name"], p["id"]), p["lb_algorithm"], strings.Join(ms, " "))
		}
	case "certs":
		fmt.Fprintln(tw, "LISTENER\tNAMES\tNOT AFTER\tSHA256\tREF")
		rows := append(list(v["in_use"]), v["control"])
		for _, x := range rows {
			c, _ := x.(map[string]any)
			if c == nil {
				continue
			}
			fp := fmt.Sprint(c["sha256"])
			if len(fp) > 16 {
				fp = fp[:16] + "…"
			}
			fmt.Fprintf(tw, "%v\t%v\t%v\t%s\t%v\n", c["listener"], strings.Trim(fmt.Sprint(c["names"]), "[]"), c["not_after"], fp, c["ref"])
		}
	default:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			b, _ := json.Marshal(v[k])
			fmt.Fprintf(tw, "%s:\t%s\n", k, b)
		}
	}
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func or(a, b any) any {
	if a == nil || a == "" {
		return b
	}
	return a
}
