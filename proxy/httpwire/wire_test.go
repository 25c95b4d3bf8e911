package httpwire

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestReadHead(t *testing.T) {
	cases := []struct {
		name, in, start string
		header          http.Header
		err             string
	}{
		{name: "plain", in: "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\n\r\nbody",
			start: "GET / HTTP/1.1", header: http.Header{"Host": {"a"}, "X-A": {"1", "2"}}},
		{name: "bare LF line ends", in: "GET / HTTP/1.1\nHost: a\n\n", start: "GET / HTTP/1.1", header: http.Header{"Host": {"a"}}},
		{name: "leading empty lines", in: "\r\n\r\nGET / HTTP/1.1\r\n\r\n", start: "GET / HTTP/1.1", header: http.Header{}},
		{name: "value white space trimmed", in: "R\r\nA: \t v v \t\r\n\r\n", start: "R", header: http.Header{"A": {"v v"}}},
		{name: "empty value", in: "R\r\nA:\r\n\r\n", start: "R", header: http.Header{"A": {""}}},
		{name: "obs-fold", in: "R\r\nA: 1\r\n 2\r\n\r\n", err: "folding"},
		{name: "space before colon", in: "R\r\nA : 1\r\n\r\n", err: "malformed header field"},
		{name: "no colon", in: "R\r\nA\r\n\r\n", err: "malformed header field"},
		{name: "empty name", in: "R\r\n: 1\r\n\r\n", err: "malformed header field"},
		{name: "bare CR in value", in: "R\r\nA: 1\r2\r\n\r\n", err: "invalid characters"},
		{name: "NUL in value", in: "R\r\nA: 1\x002\r\n\r\n", err: "invalid characters"},
		{name: "truncated", in: "R\r\nA: 1\r\n", err: io.ErrUnexpectedEOF.Error()},
		{name: "too large", in: "R\r\nA: " + strings.Repeat("x", 300) + "\r\n\r\n", err: ErrHeadTooLarge.Error()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tc.in), 16) // lines span buffer refills
			start, h, err := ReadHead(br, nil, 256)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || start != tc.start || !equalHeader(h, tc.header) {
				t.Fatalf("got %q %v %v; want %q %v", start, h, err, tc.start, tc.header)
			}
		})
	}
	if _, _, err := ReadHead(bufio.NewReader(strings.NewReader("")), nil, 256); err != io.EOF {
		t.Fatalf("empty stream: %v, want io.EOF", err)
	}
}

func equalHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		if strings.Join(va, "\x00") != strings.Join(b[k], "\x00") {
			return false
		}
	}
	return true
}

func TestBodyFraming(t *testing.T) {
	cases := []struct {
		name    string
		h       http.Header
		chunked bool
		length  int64
		err     string
	}{
		{"none", http.Header{}, false, -1, ""},
		{"length", http.Header{"Content-Length": {"12"}}, false, 12, ""},
		{"same length twice", http.Header{"Content-Length": {"12", "12, 12"}}, false, 12, ""},
		{"chunked", http.Header{"Transfer-Encoding": {"Chunked"}}, true, -1, ""},
		{"both", http.Header{"Transfer-Encoding": {"chunked"}, "Content-Length": {"1"}}, false, 0, "both"},
		{"differing lengths", http.Header{"Content-Length": {"1", "2"}}, false, 0, "differing"},
		{"signed length", http.Header{"Content-Length": {"+1"}}, false, 0, "invalid Content-Length"},
		{"hex length", http.Header{"Content-Length": {"0x10"}}, false, 0, "invalid Content-Length"},
		{"empty length", http.Header{"Content-Length": {""}}, false, 0, "invalid Content-Length"},
		{"huge length", http.Header{"Content-Length": {"9999999999999999999"}}, false, 0, "invalid Content-Length"},
		{"gzip coding", http.Header{"Transfer-Encoding": {"gzip, chunked"}}, false, 0, "unsupported"},
		{"two TE lines", http.Header{"Transfer-Encoding": {"chunked", "chunked"}}, false, 0, "unsupported"},
		{"identity", http.Header{"Transfer-Encoding": {"identity"}}, false, 0, "unsupported"},
	}
	for _, tc := range cases {
		chunked, length, err := BodyFraming(tc.h)
		if tc.err != "" {
			var he *HeadError
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.As(err, &he) {
				t.Errorf("%s: err %v, want a HeadError with %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || chunked != tc.chunked || length != tc.length {
			t.Errorf("%s: got %v %d %v, want %v %d", tc.name, chunked, length, err, tc.chunked, tc.length)
		}
	}
}

func TestParseStatusLine(t *testing.T) {
	for in, want := range map[string]int{
		"HTTP/1.1 200 OK": 200, "HTTP/1.0 404 Not Found": 404, "HTTP/1.1 204": 204, "HTTP/1.1 101 ": 101,
		"HTTP/1.1 2000 OK": 0, "HTTP/2 200 OK": 0, "HTTP/1.1 20x OK": 0, "HTTP/1.1 099 X": 0, "": 0, "http/1.1 200 OK": 0,
	} {
		_, code, ok := ParseStatusLine(in)
		if ok != (want != 0) || (ok && code != want) {
			t.Errorf("%q: got %d %v, want %d", in, code, ok, want)
		}
	}
}

// FuzzReadHead: whatever the bytes, ReadHead either fails or returns a
// head whose field names and values are valid and free of line breaks, so
// re-serialising it cannot inject fields or messages.
func FuzzReadHead(f *testing.F) {
	f.Add("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	f.Add("R\r\nA: 1\r\n 2\r\n\r\n")
	f.Add("\n\nR\nA:\tb\n\n")
	f.Fuzz(func(t *testing.T, in string) {
		start, h, err := ReadHead(bufio.NewReaderSize(strings.NewReader(in), 16), nil, 1024)
		if err != nil {
			return
		}
		if strings.ContainsAny(start, "\r\n") {
			t.Fatalf("start line %q holds a line break", start)
		}
		for k, vs := range h {
			if strings.ContainsAny(k, " \t\r\n:") || k == "" {
				t.Fatalf("field name %q", k)
			}
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n\x00") || strings.TrimSpace(v) != v && strings.Trim(v, " \t") != v {
					t.Fatalf("field %q value %q", k, v)
				}
			}
		}
	})
}
