package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

const ctlUsage = `Usage: terminator ctl [flags] COMMAND [ARGS]
Flags:
  --server URL     control API (default https://127.0.0.1:9443)
  --cert FILE      client certificate (PEM; may also hold the key, as Octavia's client_cert)
  --key FILE       client key, if not in --cert
  --ca FILE        the server CA, to verify terminator
  --server-name N  name to verify in terminator's certificate (default: the URL's host)
  --if-match V     only write if the config version is still V
  --json           print the raw JSON answer
Commands:
  status | config | listeners | pools | certs
  apply FILE                    replace listeners and pools (JSON or YAML with listeners/pools/tls)
  listener put NAME FILE | listener delete NAME
  pool put NAME FILE | pool delete NAME | members put POOL FILE
  cert upload NAME FILE [--p12]  store a bundle; prints the ref to use
  cert rotate FILE               replace the control API's own certificate
  raw METHOD PATH [FILE]         any request
`

func cmdCtl(args []string) int {
	fs := flag.NewFlagSet("ctl", flag.ContinueOnError)
	server := fs.String("server", "https://127.0.0.1:9443", "")
	certFile := fs.String("cert", "", "")
	keyFile := fs.String("key", "", "")
	caFile := fs.String("ca", "", "")
	serverName := fs.String("server-name", "", "")
	ifMatch := fs.String("if-match", "", "")
	asJSON := fs.Bool("json", false, "")
	p12 := fs.Bool("p12", false, "")
	fs.Usage = func() { fmt.Fprint(os.Stderr, ctlUsage) }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	client, err := ctlClient(*certFile, *keyFile, *caFile, *serverName)
	if err != nil {
		fmt.Fprintln(os.Stderr, "terminator ctl:", err)
		return 1
	}
	a := fs.Args()
	req := func(method, path string, body []byte, ctype string) (int, []byte, error) {
		r, err := http.NewRequest(method, strings.TrimSuffix(*server, "/")+path, bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		if ctype != "" {
			r.Header.Set("Content-Type", ctype)
		}
		if *ifMatch != "" {
			r.Header.Set("If-Match", `"`+strings.Trim(*ifMatch, `"`)+`"`)
		}
		resp, err := client.Do(r)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		return resp.StatusCode, out, err
	}
	readArg := func(i int) ([]byte, error) {
		if len(a) <= i {
			return nil, fmt.Errorf("missing argument; see terminator ctl --help")
		}
		return os.ReadFile(a[i])
	}
	var method, path, ctype string
	var body []byte
	switch {
	case a[0] == "status":
		method, path = "GET", "/v1/status"
	case a[0] == "config":
		method, path = "GET", "/v1/config"
	case a[0] == "listeners" || a[0] == "pools":
		method, path = "GET", "/v1/"+a[0]
	case a[0] == "certs":
		method, path = "GET", "/v1/certificates"
	case a[0] == "apply":
		method, path = "PUT", "/v1/config"
		if body, err = readArg(1); err == nil {
			body, err = toJSON(body)
		}
	case len(a) >= 3 && (a[0] == "listener" || a[0] == "pool") && a[1] == "put":
		method, path = "PUT", "/v1/"+a[0]+"s/"+a[2]
		if body, err = readArg(3); err == nil {
			body, err = toJSON(body)
		}
	case len(a) >= 3 && (a[0] == "listener" || a[0] == "pool") && a[1] == "delete":
		method, path = "DELETE", "/v1/"+a[0]+"s/"+a[2]
	case len(a) >= 3 && a[0] == "members" && a[1] == "put":
		method, path = "PUT", "/v1/pools/"+a[2]+"/members"
		if body, err = readArg(3); err == nil {
			body, err = toJSON(body)
		}
	case len(a) >= 3 && a[0] == "cert" && a[1] == "upload":
		method, path, ctype = "PUT", "/v1/certificates/"+a[2], "application/x-pem-file"
		if *p12 {
			ctype = "application/x-pkcs12"
		}
		body, err = readArg(3)
	case len(a) >= 2 && a[0] == "cert" && a[1] == "rotate":
		method, path, ctype = "PUT", "/v1/certificate", "application/x-pem-file"
		body, err = readArg(2)
	case len(a) >= 3 && a[0] == "raw":
		method, path = strings.ToUpper(a[1]), a[2]
		if len(a) > 3 {
			body, err = readArg(3)
		}
	default:
		fs.Usage()
		return 2
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "terminator ctl:", err)
		return 1
	}
	status, out, err := req(method, path, body, ctype)
	if err != nil {
		fmt.Fprintln(os.Stderr, "terminator ctl:", err)
		return 1
	}
	if status >= 300 {
		printCtlError(out)
		return 1
	}
	if *asJSON || len(out) == 0 {
		os.Stdout.Write(out)
		return 0
	}
	printReadable(a[0], out)
	return 0
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
