package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestEveryCommandHasHelp: every command and subcommand answers --help
// with its usage and exit status 0, and takes only its own flags (issue
// 11, item 17: "cert --help" was an unknown command, "cert inspect
// --help" was taken as a ref, "ca --help" demanded --dir, every ca
// subcommand listed every flag).
func TestEveryCommandHasHelp(t *testing.T) {
	var walk func(c *cobra.Command)
	var paths [][]string
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		path := strings.Fields(c.CommandPath())[1:]
		paths = append(paths, path)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot())
	if len(paths) < 25 {
		t.Fatalf("only %d commands found", len(paths))
	}
	for _, p := range paths {
		out, errOut, code := terminator(t, append(p, "--help")...)
		if code != 0 || !strings.Contains(out, "Usage:") {
			t.Errorf("terminator %s --help: exit %d\n%s%s", strings.Join(p, " "), code, out, errOut)
		}
	}
	out, _, _ := terminator(t, "ca", "init", "--help")
	for _, foreign := range []string{"--cn", "--out", "--dns", "--ip"} {
		if strings.Contains(out, foreign) {
			t.Errorf("ca init --help lists %s, which it does not take", foreign)
		}
	}
	if _, errOut, code := terminator(t, "cert", "inspect"); code != 2 || !strings.Contains(errOut, "See 'terminator cert inspect --help'") {
		t.Errorf("a usage error: exit %d %q", code, errOut)
	}
	if _, errOut, code := terminator(t, "cert", "inspect", "certs/site.pem"); code != 1 || !strings.Contains(errOut, "for a file write file://") {
		t.Errorf("a bare path as a ref: exit %d %q", code, errOut)
	}
	if _, errOut, code := terminator(t); code != 2 || !strings.Contains(errOut, "Available Commands") {
		t.Errorf("no command: exit %d %q", code, errOut)
	}
}
