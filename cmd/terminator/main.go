// Command terminator is a TLS-terminating reverse proxy whose certificates
// come from files, Barbican or Vault. See README.md.
package main

import (
	"fmt"
	"os"
)

const usage = `terminator: a TLS-terminating reverse proxy

Usage:
  terminator serve --config FILE      run the proxy
  terminator check --config FILE      validate a config and its certificates
  terminator cert inspect REF         show what a certificate reference serves
  terminator demo [--dir DIR]         run a demo listener with throwaway certificates
  terminator ca init|issue-client|issue-server|sign|revoke|crl   the control API's two CAs
  terminator ctl [flags] COMMAND      drive a running terminator through its mTLS control API
  terminator version
`

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return cmdServe(args[1:])
	case "check":
		return cmdCheck(args[1:])
	case "cert":
		if len(args) > 1 && args[1] == "inspect" {
			return cmdInspect(args[2:])
		}
	case "demo":
		return cmdDemo(args[1:])
	case "ca":
		return cmdCA(args[1:])
	case "ctl":
		return cmdCtl(args[1:])
	case "version", "--version":
		fmt.Println("terminator", version)
		return 0
	case "help", "-h", "--help":
		fmt.Print(usage)
		return 0
	}
	fmt.Fprintf(os.Stderr, "terminator: unknown command %q\n\n%s", args[0], usage)
	return 2
}
