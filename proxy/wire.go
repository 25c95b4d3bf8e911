package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"
)

// This file reads and checks HTTP/1.1 message heads and framing (RFC 9112)
// for terminator's own HTTP/1.1 paths. It is deliberately stricter than the
// RFC's "MAY accept" clauses wherever leniency could let two parsers
// disagree about where a message ends: obs-fold, a field name followed by
// white space, control characters, Transfer-Encoding together with
// Content-Length, differing Content-Length values and any transfer coding
// other than a lone "chunked" are all refused. Every message terminator
// forwards is re-serialised from the parsed form, never copied raw.

// errHeadTooLarge is returned when a head exceeds its size limit.
var errHeadTooLarge = errors.New("message head too large")

// headError is a malformed head or framing; the text says what was wrong.
type headError struct{ msg string }

func (e *headError) Error() string { return e.msg }

func headErrorf(format string, args ...any) error {
	return &headError{msg: fmt.Sprintf(format, args...)}
}

// readHead reads one message head, the start line and the header fields up
// to the empty line, of at most max bytes, using buf as scratch space. Empty
// lines before the start line are skipped (RFC 9112 §2.2). It returns io.EOF
// only when the stream ended cleanly before any byte of a head.
func readHead(br *bufio.Reader, buf []byte, max int) (string, http.Header, error) {
	buf = buf[:0]
	lineStart, skipped := 0, 0
	for {
		line, err := br.ReadSlice('\n')
		if len(buf)+len(line) > max {
			return "", nil, errHeadTooLarge
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
				return "", nil, headErrorf("too many empty lines before the start line")
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
		return "", nil, headErrorf("invalid characters in the start line")
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
			return "", nil, headErrorf("obsolete line folding in header fields")
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 || !httpguts.ValidHeaderFieldName(line[:colon]) {
			return "", nil, headErrorf("malformed header field %q", truncate(line, 40))
		}
		value := strings.Trim(line[colon+1:], " \t")
		if !httpguts.ValidHeaderFieldValue(value) {
			return "", nil, headErrorf("invalid characters in the value of header field %q", line[:colon])
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

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// bodyFraming says how a message body is delimited: chunked, or length
// bytes; length -1 means no framing header was present.
func bodyFraming(h http.Header) (chunked bool, length int64, err error) {
	te, cl := h["Transfer-Encoding"], h["Content-Length"]
	if len(te) > 0 {
		if len(cl) > 0 {
			return false, 0, headErrorf("both Transfer-Encoding and Content-Length are present")
		}
		if len(te) != 1 || !strings.EqualFold(te[0], "chunked") {
			return false, 0, headErrorf("unsupported Transfer-Encoding %q (only chunked is accepted)", strings.Join(te, ", "))
		}
		return true, -1, nil
	}
	length = -1
	for _, line := range cl {
		for _, v := range strings.Split(line, ",") {
			n, err := parseLength(strings.Trim(v, " \t"))
			if err != nil {
				return false, 0, err
			}
			if length >= 0 && n != length {
				return false, 0, headErrorf("differing Content-Length values")
			}
			length = n
		}
	}
	return false, length, nil
}

// parseLength parses a Content-Length value: decimal digits only.
func parseLength(v string) (int64, error) {
	if v == "" || len(v) > 18 {
		return 0, headErrorf("invalid Content-Length %q", truncate(v, 20))
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, headErrorf("invalid Content-Length %q", truncate(v, 20))
		}
	}
	return strconv.ParseInt(v, 10, 64)
}

// hopByHop reports whether a header field applies to one connection only
// (RFC 9110 §7.6.1) and so is never forwarded.
func hopByHop(key string) bool {
	switch key {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// connectionOptions returns the canonical names listed in Connection, which
// are hop-by-hop too; nil when there are none.
func connectionOptions(h http.Header) map[string]bool {
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

// hasToken reports whether a comma-separated header lists tok (any case).
func hasToken(h http.Header, key, tok string) bool {
	for _, line := range h[key] {
		for t := range strings.SplitSeq(line, ",") {
			if strings.EqualFold(strings.Trim(t, " \t"), tok) {
				return true
			}
		}
	}
	return false
}

// writeFields writes header fields in wire form. A value holding a line
// break is left out, so no value can split the head, whoever set it.
func writeFields(bw *bufio.Writer, h http.Header) {
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

// writers are the 4 KiB buffered writers borrowed while a request is
// written to a member or a response to a client.
var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}

// skipTrailers reads and discards the trailer section after a chunked
// body's last chunk, up to max bytes.
func skipTrailers(br *bufio.Reader, max int) error {
	total, partial := 0, false
	for {
		line, err := br.ReadSlice('\n')
		total += len(line)
		if total > max {
			return errHeadTooLarge
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
