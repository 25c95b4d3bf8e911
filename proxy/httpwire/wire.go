package httpwire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// ErrHeadTooLarge is returned when a head exceeds its size limit.
var ErrHeadTooLarge = errors.New("message head too large")

// HeadError is a malformed head or framing; the text says what was wrong.
type HeadError struct{ msg string }

func (e *HeadError) Error() string { return e.msg }

// Errorf returns a *HeadError with the formatted text.
func Errorf(format string, args ...any) error {
	return &HeadError{msg: fmt.Sprintf(format, args...)}
}

// ReadHead reads one message head, the start line and the header fields up
// to the empty line, of at most max bytes, using buf as scratch space. Empty
// lines before the start line are skipped (RFC 9112 §2.2). It returns io.EOF
// only when the stream ended cleanly before any byte of a head.
func ReadHead(br *bufio.Reader, buf []byte, max int) (string, http.Header, error) {
	buf = buf[:0]
	lineStart, skipped := 0, 0
	for {
		line, err := br.ReadSlice('\n')
		if len(buf)+len(line) > max {
			return "", nil, ErrHeadTooLarge
		}
		buf = append(buf, line...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF && len(buf) == 0 {
				return "", nil, io.EOF
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", nil, err
		}
		whole := buf[lineStart:]
		blank := len(whole) == 1 || (len(whole) == 2 && whole[0] == '\r')
		switch {
		case blank && lineStart == 0:
			if skipped++; skipped > 4 {
				return "", nil, Errorf("too many empty lines before the start line")
			}
			buf = buf[:0]
		case blank:
			return parseHead(string(buf[:lineStart]))
		default:
			lineStart = len(buf)
		}
	}
}

// parseHead splits a head (without its final empty line) into the start
// line and the header fields. Field values share one backing array.
func parseHead(s string) (string, http.Header, error) {
	nl := strings.IndexByte(s, '\n')
	start := strings.TrimSuffix(s[:nl], "\r")
	if strings.ContainsAny(start, "\r\x00") {
		return "", nil, Errorf("invalid characters in the start line")
	}
	rest := s[nl+1:]
	n := strings.Count(rest, "\n")
	h := make(http.Header, n)
	vals := make([]string, n)
	for len(rest) > 0 {
		nl = strings.IndexByte(rest, '\n')
		line := strings.TrimSuffix(rest[:nl], "\r")
		rest = rest[nl+1:]
		if line == "" || line[0] == ' ' || line[0] == '\t' {
			return "", nil, Errorf("obsolete line folding in header fields")
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 || !httpguts.ValidHeaderFieldName(line[:colon]) {
			return "", nil, Errorf("malformed header field %q", Truncate(line, 40))
		}
		value := strings.Trim(line[colon+1:], " \t")
		if !httpguts.ValidHeaderFieldValue(value) {
			return "", nil, Errorf("invalid characters in the value of header field %q", line[:colon])
		}
		key := http.CanonicalHeaderKey(line[:colon])
		if prior, ok := h[key]; ok {
			h[key] = append(prior, value)
			continue
		}
		vals[0] = value
		h[key] = vals[:1:1]
		vals = vals[1:]
	}
	return start, h, nil
}

func Truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// BodyFraming says how a message body is delimited: chunked, or length
// bytes; length -1 means no framing header was present.
func BodyFraming(h http.Header) (chunked bool, length int64, err error) {
	te, cl := h["Transfer-Encoding"], h["Content-Length"]
	if len(te) > 0 {
		if len(cl) > 0 {
			return false, 0, Errorf("both Transfer-Encoding and Content-Length are present")
		}
		if len(te) != 1 || !strings.EqualFold(te[0], "chunked") {
			return false, 0, Errorf("unsupported Transfer-Encoding %q (only chunked is accepted)", strings.Join(te, ", "))
		}
		return true, -1, nil
	}
	length = -1
	for _, line := range cl {
		for _, v := range strings.Split(line, ",") {
			n, err := ParseLength(strings.Trim(v, " \t"))
			if err != nil {
				return false, 0, err
			}
			if length >= 0 && n != length {
				return false, 0, Errorf("differing Content-Length values")
			}
			length = n
		}
	}
	return false, length, nil
}

// ParseLength parses a Content-Length value: decimal digits only.
func ParseLength(v string) (int64, error) {
	if v == "" || len(v) > 18 {
		return 0, Errorf("invalid Content-Length %q", Truncate(v, 20))
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, Errorf("invalid Content-Length %q", Truncate(v, 20))
		}
	}
	return strconv.ParseInt(v, 10, 64)
}

// DeclaredLength is the Content-Length a handler set in h: -1 when there
// is none, more than one, or an invalid one.
func DeclaredLength(h http.Header) int64 {
	if cl := h["Content-Length"]; len(cl) == 1 {
		if n, err := ParseLength(cl[0]); err == nil {
			return n
		}
	}
	return -1
}

// HopByHop reports whether a header field applies to one connection only
// (RFC 9110 §7.6.1) and so is never forwarded.
func HopByHop(key string) bool {
	switch key {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// ConnectionOptions returns the canonical names listed in Connection, which
// are hop-by-hop too; nil when there are none.
func ConnectionOptions(h http.Header) map[string]bool {
	var named map[string]bool
	for _, line := range h["Connection"] {
		for tok := range strings.SplitSeq(line, ",") {
			tok = strings.Trim(tok, " \t")
			if tok == "" || strings.EqualFold(tok, "close") || strings.EqualFold(tok, "keep-alive") {
				continue
			}
			if named == nil {
				named = map[string]bool{}
			}
			named[http.CanonicalHeaderKey(tok)] = true
		}
	}
	return named
}

// HasToken reports whether a comma-separated header lists tok (any case).
func HasToken(h http.Header, key, tok string) bool {
	for _, line := range h[key] {
		for t := range strings.SplitSeq(line, ",") {
			if strings.EqualFold(strings.Trim(t, " \t"), tok) {
				return true
			}
		}
	}
	return false
}

// WriteFields writes header fields in wire form. A value holding a line
// break is left out, so no value can split the head, whoever set it.
func WriteFields(bw *bufio.Writer, h http.Header) {
	for k, vs := range h {
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				continue
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
}

// SkipTrailers reads and discards the trailer section after a chunked
// body's last chunk, up to max bytes.
func SkipTrailers(br *bufio.Reader, max int) error {
	total, partial := 0, false
	for {
		line, err := br.ReadSlice('\n')
		total += len(line)
		if total > max {
			return ErrHeadTooLarge
		}
		if err == bufio.ErrBufferFull {
			partial = true
			continue
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if !partial && (len(line) == 1 || (len(line) == 2 && line[0] == '\r')) {
			return nil
		}
		partial = false
	}
}

// ParseStatusLine parses "HTTP/1.x NNN reason".
func ParseStatusLine(s string) (proto string, code int, ok bool) {
	if len(s) < 12 || (s[:8] != "HTTP/1.1" && s[:8] != "HTTP/1.0") || s[8] != ' ' || (len(s) > 12 && s[12] != ' ') {
		return "", 0, false
	}
	for _, c := range s[9:12] {
		if c < '0' || c > '9' {
			return "", 0, false
		}
		code = code*10 + int(c-'0')
	}
	return s[:8], code, code >= 100
}

// CookieValue finds name in one Cookie header line without allocating.
func CookieValue(line, name string) (string, bool) {
	for line != "" {
		var part string
		part, line, _ = strings.Cut(line, ";")
		part = strings.TrimSpace(part)
		k, v, ok := strings.Cut(part, "=")
		if ok && k == name {
			return strings.Trim(v, `"`), true
		}
	}
	return "", false
}

// HeadOnly is h without the trailer values a handler set with
// http.TrailerPrefix or under a name the Trailer header declares, which
// belong after the body (as net/http does); h itself when there are none
// (the common case, no copy).
func HeadOnly(h http.Header) http.Header {
	var out http.Header
	drop := func(k string) {
		if _, ok := h[k]; !ok {
			return
		}
		if out == nil {
			out = h.Clone()
		}
		delete(out, k)
	}
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			drop(k)
		}
	}
	for _, line := range h["Trailer"] {
		for name := range strings.SplitSeq(line, ",") {
			if name = strings.TrimSpace(name); name != "" {
				drop(http.CanonicalHeaderKey(name))
			}
		}
	}
	if out == nil {
		return h
	}
	return out
}

// NeverTrailer reports the canonical names that are never sent as
// trailers: framing, routing and what the head must carry.
func NeverTrailer(name string) bool {
	switch name {
	case "Content-Length", "Transfer-Encoding", "Host", "Trailer", "Connection", "Te", "Content-Type":
		return true
	}
	return false
}

// Trailers are the fields to send after a chunked body, as net/http sends
// them: values set with http.TrailerPrefix, and fields named in the
// Trailer header; framing and routing fields are never trailers (RFC 9110
// §6.5.1). nil when there are none.
func Trailers(h http.Header) http.Header {
	var out http.Header
	add := func(name string, vs []string) {
		name = http.CanonicalHeaderKey(name)
		if len(vs) == 0 || NeverTrailer(name) || !httpguts.ValidHeaderFieldName(name) {
			return
		}
		if out == nil {
			out = http.Header{}
		}
		out[name] = append(out[name], vs...)
	}
	for k, vs := range h {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			add(name, vs)
		}
	}
	for _, line := range h["Trailer"] {
		for name := range strings.SplitSeq(line, ",") {
			if name = strings.TrimSpace(name); name != "" {
				add(name, h[http.CanonicalHeaderKey(name)])
			}
		}
	}
	return out
}
