package config

import (
	"fmt"
	"strings"
)

// Problem is one finding of the validator, located by its path in the
// config (listeners[0].sni_container_refs[1]).
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// Problems is a list of findings. As an error it reads as one finding a line.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// collector accumulates errors and warnings during validation.
type collector struct {
	errs, warns Problems
}

func (c *collector) errorf(path, format string, args ...any) {
	c.errs = append(c.errs, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (c *collector) warnf(path, format string, args ...any) {
	c.warns = append(c.warns, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

func at(base string, index int, field string) string {
	p := fmt.Sprintf("%s[%d]", base, index)
	if field != "" {
		p += "." + field
	}
	return p
}
