package accesslog

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// OctaviaDefault is Octavia's default [haproxy_amphora] user_log_format,
// its {{ project_id }} and {{ lb_id }} filled from the entry.
const OctaviaDefault = "{{ project_id }} {{ lb_id }} %f %ci %cp %t %{+Q}r %ST %B %U %[ssl_c_verify] %{+Q}[ssl_c_s_dn] %b %s %Tt %tsc"

// formatter compiles a format name or a haproxy log-format string.
func formatter(f string) (func([]byte, *Entry) []byte, error) {
	switch f {
	case "", "text":
		return text, nil
	case "json":
		return jsonLine, nil
	case "httplog":
		f = OctaviaDefault
	}
	return compile(f)
}

func text(b []byte, e *Entry) []byte {
	b = e.Time.UTC().AppendFormat(b, "time=2006-01-02T15:04:05.000Z")
	b = append(b, " listener="...)
	b = appendValue(b, e.Listener)
	b = append(b, " client="...)
	b = appendValue(b, e.ClientIP)
	b = append(b, " method="...)
	b = appendValue(b, e.Method)
	b = append(b, " host="...)
	b = appendValue(b, e.Host)
	b = append(b, " uri="...)
	b = appendValue(b, e.URI)
	b = append(b, " proto="...)
	b = append(b, e.Proto...)
	b = append(b, " status="...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, " bytes_in="...)
	b = strconv.AppendInt(b, e.BytesIn, 10)
	b = append(b, " bytes_out="...)
	b = strconv.AppendInt(b, e.BytesOut, 10)
	if e.Pool != "" {
		b = append(b, " pool="...)
		b = appendValue(b, e.Pool)
	}
	b = append(b, " member="...)
	b = appendValue(b, e.Member)
	b = append(b, " duration_ms="...)
	b = strconv.AppendFloat(b, float64(e.Duration.Microseconds())/1000, 'f', 3, 64)
	if e.RequestID != "" {
		b = append(b, " request_id="...)
		b = appendValue(b, e.RequestID)
	}
	return b
}

// appendValue quotes a value that holds spaces, quotes or controls.
func appendValue(b []byte, s string) []byte {
	if s == "" || strings.ContainsAny(s, " \"=\\") || strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

// jsonEntry is a JSON line; its doc tags make the README's field table.
type jsonEntry struct {
	Time      string  `json:"time" doc:"when the request started, UTC, milliseconds"`
	Listener  string  `json:"listener" doc:"the listener's id or name"`
	Client    string  `json:"client" doc:"the client's address (from the PROXY header when one was sent)"`
	Method    string  `json:"method" doc:"request method"`
	Host      string  `json:"host" doc:"Host header (:authority on HTTP/2)"`
	URI       string  `json:"uri" doc:"request target as sent"`
	Proto     string  `json:"proto" doc:"HTTP/1.0, HTTP/1.1 or HTTP/2.0"`
	Status    int     `json:"status" doc:"status sent to the client (0: none, the client went away)"`
	BytesIn   int64   `json:"bytes_in" doc:"request body bytes read from the client"`
	BytesOut  int64   `json:"bytes_out" doc:"response body bytes sent to the client"`
	Pool      string  `json:"pool,omitempty" doc:"the pool that served it (absent when none did)"`
	Member    string  `json:"member" doc:"the member's host:port, or -"`
	Duration  float64 `json:"duration_ms" doc:"from the request's start to its last byte, milliseconds"`
	RequestID string  `json:"request_id,omitempty" doc:"X-Request-Id, with log.request_id"`
}

func jsonLine(b []byte, e *Entry) []byte {
	out, _ := json.Marshal(jsonEntry{Time: e.Time.UTC().Format("2006-01-02T15:04:05.000Z"), Listener: e.Listener,
		Client: e.ClientIP, Method: e.Method, Host: e.Host, URI: e.URI, Proto: e.Proto, Status: e.Status,
		BytesIn: e.BytesIn, BytesOut: e.BytesOut, Pool: e.Pool, Member: e.Member,
		Duration: float64(e.Duration.Microseconds()) / 1000, RequestID: e.RequestID})
	return append(b, out...)
}

// variables are the haproxy log-format variables terminator fills:
// every one Octavia's default user_log_format uses, and a few more.
var variables = map[string]func([]byte, *Entry) []byte{
	"f":  func(b []byte, e *Entry) []byte { return append(b, dash(e.Listener)...) },
	"ft": func(b []byte, e *Entry) []byte { return append(b, dash(e.Listener)...) },
	"ci": func(b []byte, e *Entry) []byte { return append(b, dash(e.ClientIP)...) },
	"cp": func(b []byte, e *Entry) []byte { return strconv.AppendInt(b, int64(e.ClientPort), 10) },
	"t": func(b []byte, e *Entry) []byte {
		return e.Time.UTC().AppendFormat(append(b, '['), "02/Jan/2006:15:04:05.000]")
	},
	"r":   func(b []byte, e *Entry) []byte { return append(b, e.Method+" "+e.URI+" "+e.Proto...) },
	"HM":  func(b []byte, e *Entry) []byte { return append(b, e.Method...) },
	"HU":  func(b []byte, e *Entry) []byte { return append(b, e.URI...) },
	"HV":  func(b []byte, e *Entry) []byte { return append(b, e.Proto...) },
	"ST":  func(b []byte, e *Entry) []byte { return strconv.AppendInt(b, int64(e.Status), 10) },
	"B":   func(b []byte, e *Entry) []byte { return strconv.AppendInt(b, e.BytesOut, 10) },
	"U":   func(b []byte, e *Entry) []byte { return strconv.AppendInt(b, e.BytesIn, 10) },
	"b":   func(b []byte, e *Entry) []byte { return append(b, dash(e.Pool)...) },
	"s":   func(b []byte, e *Entry) []byte { return append(b, dash(e.Member)...) },
	"Tt":  func(b []byte, e *Entry) []byte { return strconv.AppendInt(b, e.Duration.Milliseconds(), 10) },
	"Ta":  func(b []byte, e *Entry) []byte { return strconv.AppendInt(b, e.Duration.Milliseconds(), 10) },
	"tsc": func(b []byte, e *Entry) []byte { return append(b, dash(e.TerminationState)...) },
	"ID":  func(b []byte, e *Entry) []byte { return append(b, dash(e.RequestID)...) },
	"[ssl_c_verify]": func(b []byte, e *Entry) []byte {
		if e.ClientVerify == "" {
			return append(b, '0') // haproxy's value without a client certificate
		}
		return append(b, e.ClientVerify...)
	},
	"[ssl_c_s_dn]":         func(b []byte, e *Entry) []byte { return append(b, e.ClientDN...) },
	"{{ project_id }}":     func(b []byte, e *Entry) []byte { return append(b, dash(e.ProjectID)...) },
	"{{ lb_id }}":          func(b []byte, e *Entry) []byte { return append(b, dash(e.LoadBalancer)...) },
	"[unique-id]":          func(b []byte, e *Entry) []byte { return append(b, dash(e.RequestID)...) },
	"[req.hdr(host)]":      func(b []byte, e *Entry) []byte { return append(b, e.Host...) },
	"[capture.req.hdr(0)]": func(b []byte, e *Entry) []byte { return append(b, e.Host...) },
	"[capture.req.method]": func(b []byte, e *Entry) []byte { return append(b, e.Method...) },
	"[capture.req.uri]":    func(b []byte, e *Entry) []byte { return append(b, e.URI...) },
	"[capture.req.ver]":    func(b []byte, e *Entry) []byte { return append(b, e.Proto...) },
	"[ssl_fc_has_crt]":     func(b []byte, e *Entry) []byte { return append(b, boolDigit(e.ClientDN != "")...) },
	"[src]":                func(b []byte, e *Entry) []byte { return append(b, dash(e.ClientIP)...) },
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func boolDigit(v bool) string {
	if v {
		return "1"
	}
	return "0"
}

// compile turns a haproxy log-format string into a formatter. Unknown
// variables are an error naming them; "%{+Q}" quotes the next one.
func compile(f string) (func([]byte, *Entry) []byte, error) {
	type op struct {
		lit   string
		fill  func([]byte, *Entry) []byte
		quote bool
	}
	var ops []op
	for i := 0; i < len(f); {
		switch {
		case strings.HasPrefix(f[i:], "{{ "):
			end := strings.Index(f[i:], " }}")
			if end < 0 {
				return nil, fmt.Errorf("accesslog: unterminated %q in log format", f[i:])
			}
			name := f[i : i+end+3]
			fill, ok := variables[name]
			if !ok {
				return nil, fmt.Errorf("accesslog: unknown log-format variable %s", name)
			}
			ops = append(ops, op{fill: fill})
			i += end + 3
		case f[i] == '%' && i+1 < len(f) && f[i+1] == '%':
			ops = append(ops, op{lit: "%"})
			i += 2
		case f[i] == '%':
			i++
			quote := false
			if strings.HasPrefix(f[i:], "{+Q}") {
				quote, i = true, i+4
			} else if strings.HasPrefix(f[i:], "{") {
				return nil, fmt.Errorf("accesslog: log-format flags %q are not supported (only {+Q})", f[i:strings.IndexByte(f[i:], '}')+i+1])
			}
			name := ""
			if i < len(f) && f[i] == '[' {
				end := strings.IndexByte(f[i:], ']')
				if end < 0 {
					return nil, fmt.Errorf("accesslog: unterminated %q in log format", f[i:])
				}
				name = f[i : i+end+1]
			} else {
				for j := i; j < len(f) && (f[j] >= 'a' && f[j] <= 'z' || f[j] >= 'A' && f[j] <= 'Z'); j++ {
					name = f[i : j+1]
				}
			}
			fill, ok := variables[name]
			if !ok {
				return nil, fmt.Errorf("accesslog: unknown log-format variable %%%s", name)
			}
			ops = append(ops, op{fill: fill, quote: quote})
			i += len(name)
		default:
			j := i
			for j < len(f) && f[j] != '%' && !strings.HasPrefix(f[j:], "{{ ") {
				j++
			}
			ops = append(ops, op{lit: f[i:j]})
			i = j
		}
	}
	return func(b []byte, e *Entry) []byte {
		for _, o := range ops {
			if o.fill == nil {
				b = append(b, o.lit...)
				continue
			}
			if o.quote {
				b = append(b, '"')
			}
			start := len(b)
			b = escape(o.fill(b, e), start, o.quote)
			if o.quote {
				b = append(b, '"')
			}
		}
		return b
	}, nil
}

// escape rewrites what a variable appended after start so that no value
// can forge a line: controls become \xNN (haproxy's escaping), and inside
// quotes a quote becomes \".
func escape(b []byte, start int, quoted bool) []byte {
	clean := true
	for _, c := range b[start:] {
		if c < 0x20 || c == 0x7f || (quoted && c == '"') {
			clean = false
			break
		}
	}
	if clean {
		return b
	}
	v := append([]byte(nil), b[start:]...)
	b = b[:start]
	for _, c := range v {
		switch {
		case c < 0x20 || c == 0x7f:
			b = fmt.Appendf(b, "\\x%02X", c)
		case quoted && c == '"':
			b = append(b, '\\', '"')
		default:
			b = append(b, c)
		}
	}
	return b
}

// FieldsTable lists the JSON (and text) access-log fields and the haproxy
// log-format variables filled, as Markdown, from the code: the README's
// reference is made from it.
func FieldsTable() string {
	var b strings.Builder
	b.WriteString("| field (`json`, `text`) | meaning |\n|---|---|\n")
	t := reflect.TypeOf(jsonEntry{})
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		fmt.Fprintf(&b, "| `%s` | %s |\n", name, f.Tag.Get("doc"))
	}
	names := make([]string, 0, len(variables))
	for name := range variables {
		if strings.HasPrefix(name, "{{") {
			names = append(names, "`"+name+"`")
		} else {
			names = append(names, "`%"+name+"`")
		}
	}
	sort.Strings(names)
	fmt.Fprintf(&b, "\nhaproxy log-format variables filled (others are refused at start): %s.\n", strings.Join(names, ", "))
	return b.String()
}
