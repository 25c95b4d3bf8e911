// Command terminator is a TLS-terminating reverse proxy whose certificates
// come from files, Barbican or Vault. See README.md.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/spf13/cobra"
)

// version, commit and date are stamped at build time (make build:
// -ldflags "-X main.version=… -X main.commit=… -X main.date=…").
var (
	version = "dev"
	commit  = "unknown"
	date    = "unknown"
)

// versionLine is what "terminator version" prints.
func versionLine() string {
	return fmt.Sprintf("terminator %s (commit %s, built %s, %s)", version, commit, date, runtime.Version())
}

func main() {
	os.Exit(run(os.Args[1:]))
}

// exitCode is returned by a command that has already said what went wrong
// and wants the process to exit with that status.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// status turns a command's exit status into its error.
func status(code int) error {
	if code == 0 {
		return nil
	}
	return exitCode(code)
}

// run executes the command line: 0 on success, 1 when a command failed,
// 2 for a usage error (which names the command's --help).
func run(args []string) int {
	root := newRoot()
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	var ec exitCode
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ec):
		return int(ec)
	}
	fmt.Fprintf(os.Stderr, "terminator: %v\nSee '%s --help'.\n", err, cmd.CommandPath())
	return 2
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "terminator",
		Short: "A TLS-terminating reverse proxy for clouds that keep their certificates in a secret store",
		Long: `terminator terminates HTTPS for many host names, picking the certificate by SNI,
and forwards HTTP to pools of members. Certificates come from files, Barbican or
Vault. Its configuration uses OpenStack Octavia's object and field names.

Every command and subcommand takes --help. See README.md for the configuration.`,
		Version:       version,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(os.Stderr)
			_ = cmd.Usage()
			return exitCode(2)
		},
	}
	root.SetVersionTemplate(versionLine() + "\n")
	root.AddCommand(newServeCmd(), newReloadCmd(), newUpgradeCmd(), newCheckCmd(), newCertCmd(), newDemoCmd(), newCACmd(), newCtlCmd(), newAgentCmd(),
		&cobra.Command{
			Use: "version", Short: "Print the version", Args: cobra.NoArgs,
			Run: func(*cobra.Command, []string) { fmt.Println(versionLine()) },
		})
	root.AddCommand(newManCmd(root))
	return root
}
