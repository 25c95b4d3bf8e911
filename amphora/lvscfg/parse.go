// Package lvscfg translates the keepalived configuration Octavia's
// LvsJinjaTemplater renders for a UDP listener (the amphora agent's
// udp_listener upload) into terminator's configuration, as haproxycfg does
// for haproxy.cfg. The ids it needs are in Octavia's comments ("#
// Configuration for Pool <id>", "# Member <id> is disabled"), as the
// amphora's own health daemon reads them. Anything Octavia does not render
// is refused with its line, so that nothing is served half-understood.
package lvscfg

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"strings"
)

// node is one statement: its words and, for a block, its statements.
type node struct {
	line     int
	words    []string
	children []*node
	block    bool
	note     note // the Octavia comment just before it, if any
}

// note is one of Octavia's comments naming an object.
type note struct {
	kind, id string // kind: Pool, Member, HealthMonitor, Listener, Loadbalancer
	disabled bool   // "# <kind> <id> is disabled"
}

var (
	configFor  = regexp.MustCompile(`^#\s*Configuration for (\w+) (\S+)\s*$`)
	isDisabled = regexp.MustCompile(`^#\s*(\w+) (\S+) is disabled\s*$`)
)

// maxConfig bounds what is parsed.
const maxConfig = 1 << 20

// parse reads the configuration into a tree of statements; comments that
// name objects become notes, standing alone when nothing follows them in
// their block (a disabled member renders no statement).
func parse(data []byte) ([]*node, error) {
	if len(data) > maxConfig {
		return nil, fmt.Errorf("the configuration is %d bytes, more than %d", len(data), maxConfig)
	}
	root := &node{block: true}
	stack := []*node{root}
	var pending []note
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		top := stack[len(stack)-1]
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, "#"):
			if m := configFor.FindStringSubmatch(line); m != nil {
				pending = append(pending, note{kind: m[1], id: m[2]})
			} else if m := isDisabled.FindStringSubmatch(line); m != nil {
				pending = append(pending, note{kind: m[1], id: m[2], disabled: true})
			}
			continue
		case line == "}":
			if len(stack) == 1 {
				return nil, fmt.Errorf("line %d: '}' closes no block", n)
			}
			flush(top, &pending, n)
			stack = stack[:len(stack)-1]
			continue
		}
		words, err := fields(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", n, err)
		}
		st := &node{line: n}
		if words[len(words)-1] == "{" {
			st.block, words = true, words[:len(words)-1]
		}
		if len(words) == 0 {
			return nil, fmt.Errorf("line %d: a block without a name", n)
		}
		st.words = words
		// Notes before a statement: all but the last stand alone.
		if len(pending) > 0 {
			st.note = pending[len(pending)-1]
			pending = pending[:len(pending)-1]
			flush(top, &pending, n)
		}
		top.children = append(top.children, st)
		if st.block {
			stack = append(stack, st)
		}
	}
	if len(stack) != 1 {
		return nil, fmt.Errorf("the block opened on line %d is not closed", stack[len(stack)-1].line)
	}
	flush(root, &pending, 0)
	return root.children, nil
}

// flush adds pending notes to block as statements of their own.
func flush(block *node, pending *[]note, line int) {
	for _, p := range *pending {
		block.children = append(block.children, &node{line: line, note: p})
	}
	*pending = nil
}

// fields splits a line into words; a double-quoted string is one word.
func fields(line string) ([]string, error) {
	var out []string
	for line = strings.TrimSpace(line); line != ""; line = strings.TrimSpace(line) {
		if line[0] == '"' {
			end := strings.IndexByte(line[1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("unterminated quoted string")
			}
			out = append(out, line[1:end+1])
			line = line[end+2:]
			continue
		}
		i := strings.IndexAny(line, " \t")
		if i < 0 {
			i = len(line)
		}
		out = append(out, line[:i])
		line = line[i:]
	}
	return out, nil
}
