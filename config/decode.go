package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	gyparser "github.com/goccy/go-yaml/parser"
	"gopkg.in/yaml.v3"
)

// Decode decodes YAML or JSON into a Config without defaults or
// validation. Unknown fields, values of the wrong type, duplicate keys and
// trailing documents are problems. When every problem is of that kind
// (yaml.v3 decodes the rest), the partly decoded config comes back with
// them, so that Parse can report the validator's problems too; a syntax
// error returns no config.
func Decode(data []byte) (*Config, Problems, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var cfg Config
	err := dec.Decode(&cfg)
	var typeErr *yaml.TypeError
	switch {
	case errors.Is(err, io.EOF):
		return nil, nil, errors.New("config is empty")
	case errors.As(err, &typeErr):
		ps := typeProblems(data, typeErr)
		var extra yaml.Node
		if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
			ps = append(ps, Problem{Message: "more than one YAML document"})
		}
		return &cfg, ps, nil
	case err != nil:
		return nil, nil, syntaxError(data, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, nil, errors.New("decoding: more than one YAML document")
	}
	return &cfg, nil, nil
}

// syntaxError words a YAML syntax error with its real line and column:
// yaml.v3 gives the 0-based line of the enclosing construct for parser
// errors, so the location comes from goccy/go-yaml's parser instead, with
// the lines around it.
func syntaxError(data []byte, err error) error {
	if _, gerr := gyparser.ParseBytes(data, 0); gerr != nil {
		msg := gerr.Error()
		if m := syntaxPos.FindStringSubmatch(msg); m != nil {
			msg = "line " + m[1] + ", column " + m[2] + ": " + msg[len(m[0]):]
		}
		return fmt.Errorf("YAML syntax error: %s", msg)
	}
	return fmt.Errorf("decoding: %w", err)
}

var (
	syntaxPos    = regexp.MustCompile(`^\[(\d+):(\d+)\] `)
	typeErrLine  = regexp.MustCompile(`^line (\d+): (.*)$`)
	unknownField = regexp.MustCompile("^field (\\S+) not found in type config\\.(\\w+)$")
	wrongType    = regexp.MustCompile("^cannot unmarshal !!(\\w+) `(.*)` into (\\S+)$")
)

// Units of the numeric fields, for messages: Octavia's listener timeouts
// and terminator's intervals are milliseconds, health-monitor delays and
// timeouts seconds.
var fieldUnits = map[string]string{
	"timeout_client_data": "ms", "timeout_member_connect": "ms", "timeout_member_data": "ms",
	"rescan_interval": "ms", "session_ticket_lifetime": "ms", "refresh_interval": "ms", "recheck_interval": "ms",
	"delay": "s", "timeout": "s", "persistence_timeout": "s",
}

// typeProblems turns yaml.v3's per-line decode errors into problems that
// name the config path, and say the unit a number is in.
func typeProblems(data []byte, te *yaml.TypeError) Problems {
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root) // the syntax is fine, or there would be no TypeError
	var ps Problems
	for _, e := range te.Errors {
		m := typeErrLine.FindStringSubmatch(e)
		if m == nil {
			ps = append(ps, Problem{Message: e})
			continue
		}
		line, _ := strconv.Atoi(m[1])
		where := fmt.Sprintf("line %d", line)
		if f := unknownField.FindStringSubmatch(m[2]); f != nil {
			if path, ok := findKey(&root, "", line, f[1]); ok {
				where = path
			}
			ps = append(ps, Problem{Path: where, Message: fmt.Sprintf("unknown field %q (line %d); see the README for a %s's fields", f[1], line, strings.ToLower(f[2]))})
			continue
		}
		if f := wrongType.FindStringSubmatch(m[2]); f != nil {
			path, ok := findValue(&root, "", line, f[2])
			if ok {
				where = path
			}
			ps = append(ps, Problem{Path: where, Message: wrongTypeMessage(path, f[2], f[3], line)})
			continue
		}
		ps = append(ps, Problem{Path: where, Message: m[2]})
	}
	return ps
}

func wrongTypeMessage(path, value, goType string, line int) string {
	key := path[strings.LastIndexAny(path, ".]")+1:]
	switch {
	case strings.Contains(goType, "int") && fieldUnits[key] == "ms":
		return fmt.Sprintf("must be a whole number of milliseconds (50000 is 50 s), not %q (line %d)", value, line)
	case strings.Contains(goType, "int") && fieldUnits[key] == "s":
		return fmt.Sprintf("must be a whole number of seconds, not %q (line %d)", value, line)
	case strings.Contains(goType, "int"), strings.Contains(goType, "float"):
		return fmt.Sprintf("must be a number, not %q (line %d)", value, line)
	case strings.Contains(goType, "bool"):
		return fmt.Sprintf("must be true or false, not %q (line %d)", value, line)
	case strings.HasPrefix(goType, "[]"):
		return fmt.Sprintf("must be a list, not %q (line %d)", value, line)
	case strings.HasPrefix(goType, "config."), strings.HasPrefix(goType, "map"):
		return fmt.Sprintf("must be a mapping of fields, not %q (line %d)", value, line)
	}
	return fmt.Sprintf("must be a %s, not %q (line %d)", goType, value, line)
}

// findKey returns the path of the mapping key named key on line.
func findKey(n *yaml.Node, path string, line int, key string) (string, bool) {
	return walk(n, path, func(k, v *yaml.Node, p string) bool { return k != nil && k.Line == line && k.Value == key })
}

// findValue returns the path of the scalar value on line that reads value.
func findValue(n *yaml.Node, path string, line int, value string) (string, bool) {
	return walk(n, path, func(_, v *yaml.Node, _ string) bool { return v.Line == line && v.Value == value })
}

// walk visits every value under n with its config path (and its key, for
// mapping values) until match accepts one.
func walk(n *yaml.Node, path string, match func(k, v *yaml.Node, path string) bool) (string, bool) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if p, ok := walk(c, path, match); ok {
				return p, true
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if match(k, v, p) {
				return p, true
			}
			if q, ok := walk(v, p, match); ok {
				return q, true
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if match(nil, c, p) {
				return p, true
			}
			if q, ok := walk(c, p, match); ok {
				return q, true
			}
		}
	}
	return "", false
}
