package haproxycfg

import (
	"fmt"
	"strings"
)

// line is one directive: its words (unescaped) and its line number.
type line struct {
	n     int
	words []string
}

// section is one global, defaults, peers, frontend or backend section.
type section struct {
	kind, name string
	n          int
	lines      []line
}

// Problem is one refused line, located as haproxy -c locates it.
type Problem struct {
	Line    int
	Message string
}

// Problems is every problem of a file; as an error it reads like
// haproxy -c output, one alert a line.
type Problems []Problem

func (ps Problems) Error() string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "[ALERT] config : parsing [haproxy.cfg:%d] : %s", p.Line, p.Message)
	}
	return b.String()
}

// maxFile bounds the configuration a controller may send (Octavia's for a
// load balancer with hundreds of listeners stays well under it).
const maxFile = 4 << 20

// split parses the file into sections of directives.
func split(data []byte) ([]section, Problems) {
	var ps Problems
	if len(data) > maxFile {
		return nil, Problems{{Line: 1, Message: fmt.Sprintf("file of %d bytes, over the %d accepted", len(data), maxFile)}}
	}
	var out []section
	for i, raw := range strings.Split(string(data), "\n") {
		n := i + 1
		words, err := tokenize(raw)
		if err != nil {
			ps = append(ps, Problem{n, err.Error()})
			continue
		}
		if len(words) == 0 {
			continue
		}
		switch words[0] {
		case "global", "defaults", "peers", "frontend", "backend":
			s := section{kind: words[0], n: n}
			if len(words) > 1 {
				s.name = words[1]
			}
			if (s.kind == "frontend" || s.kind == "backend" || s.kind == "peers") && (len(words) != 2 || s.name == "") {
				ps = append(ps, Problem{n, fmt.Sprintf("'%s' needs exactly one name", s.kind)})
			}
			out = append(out, s)
			continue
		}
		if len(out) == 0 {
			ps = append(ps, Problem{n, fmt.Sprintf("unknown keyword '%s' out of section", words[0])})
			continue
		}
		out[len(out)-1].lines = append(out[len(out)-1].lines, line{n: n, words: words})
	}
	return out, ps
}

// tokenize splits a line into words as haproxy does for the subset
// Octavia writes: white space separates words, a backslash escapes the
// next character (\r and \n stand for CR and LF), '#' starts a comment,
// and "…" groups a word.
func tokenize(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	in, quoted := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			switch s[i] {
			case 'r':
				cur.WriteByte('\r')
			case 'n':
				cur.WriteByte('\n')
			case 't':
				cur.WriteByte('\t')
			default:
				cur.WriteByte(s[i])
			}
			in = true
		case c == '"':
			quoted = !quoted
			in = true
		case quoted:
			cur.WriteByte(c)
		case c == '#':
			i = len(s)
		case c == ' ' || c == '\t' || c == '\r':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case c < ' ' || c == 0x7f:
			return nil, fmt.Errorf("control character 0x%02x", c)
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("unterminated quote")
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}
