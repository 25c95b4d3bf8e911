package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/config"
	"github.com/terminator-proxy/terminator/dataplane"
	"github.com/terminator-proxy/terminator/metrics"
	"github.com/terminator-proxy/terminator/mtlsctl"
)

func newCheckCmd() *cobra.Command {
	var path string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Validate a config and everything it refers to",
		Long: `Validate a configuration file and fetch every certificate, CA, CRL and control
API file it names, as serve would. Every problem is printed at once with its
path (and line), then warnings. Exit status 0: servable (maybe with warnings);
1: not.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return status(cmdCheck(path, timeout)) },
	}
	cmd.Flags().StringVar(&path, "config", "/etc/terminator/terminator.yaml", "config file (YAML or JSON)")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long fetching certificates may take")
	return cmd
}

// cmdCheck validates a config and everything it refers to, printing every
// problem with its path. Exit 0: servable (maybe with warnings); 1: not.
func cmdCheck(path string, timeout time.Duration) int {
	cfg, warnings, err := config.Load(path)
	printProblems("warning: ", warnings)
	if err != nil {
		reportProblems(path, err)
		return 1
	}
	mgrs, err := newManagers(context.Background(), cfg, newLogger("text", "error"), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// Every problem at once: the data plane's and the control API's.
	var problems config.Problems
	snap, err := dataplane.Build(ctx, cfg, mgrs.registry, metrics.New(), time.Now())
	if err != nil {
		var ps config.Problems
		if !errors.As(err, &ps) {
			ps = config.Problems{{Message: err.Error()}}
		}
		problems = append(problems, ps...)
	}
	if cfg.Control != nil {
		for _, err := range mtlsctl.Check(ctx, *cfg.Control, mgrs.registry) {
			problems = append(problems, config.Problem{Message: err.Error()})
		}
	}
	if len(problems) > 0 {
		reportProblems(path, problems)
		return 1
	}
	printProblems("warning: ", snap.Warnings)
	for _, ls := range snap.Listeners {
		fmt.Printf("listener %s on %s: %d certificate(s)\n", ls.Key, ls.Bind, len(ls.Bundles))
		for _, b := range ls.Bundles {
			fmt.Printf("  %s  %s  not after %s\n", strings.Join(b.Names, ","), b.Ref, b.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	fmt.Printf("%s: OK\n", path)
	return 0
}

func newCertCmd() *cobra.Command {
	cert := &cobra.Command{Use: "cert", Short: "Certificate references", Args: cobra.NoArgs}
	cert.AddCommand(&cobra.Command{
		Use:   "inspect REF",
		Short: "Show what a certificate reference serves",
		Long: `Fetch a certificate reference and print its subject, names, key type, validity,
SHA-256 fingerprint and issuer chain, or the error. REF is any reference a
listener takes: file:///path/bundle.pem, vault:secret/data/tls/shop,
vault-pki:pki/issue/web?common_name=..., or a Barbican href (reached with
OS_CLOUD or an openrc's OS_* variables, as the openstack CLI is).`,
		Example: "  terminator cert inspect file:///etc/terminator/certs/default.pem",
		Args:    cobra.ExactArgs(1),
		RunE:    func(_ *cobra.Command, args []string) error { return status(cmdInspect(args[0])) },
	})
	return cert
}

// cmdInspect prints what a certificate reference would serve.
func cmdInspect(ref string) int {
	mgrs, err := newManagers(context.Background(), nil, newLogger("text", "error"), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := mgrs.registry.Bundle(ctx, ref)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Print(describe(b, time.Now()))
	return 0
}

// describe renders a bundle for humans: what a client would be served.
func describe(b *certs.Bundle, now time.Time) string {
	var s strings.Builder
	fmt.Fprintf(&s, "ref:          %s\n", b.Ref)
	leaf := b.Leaf()
	fmt.Fprintf(&s, "subject:      %s\n", leaf.Subject)
	fmt.Fprintf(&s, "names:        %s\n", strings.Join(b.Names, ", "))
	if len(leaf.IPAddresses) > 0 {
		fmt.Fprintf(&s, "ip addresses: %v\n", leaf.IPAddresses)
	}
	fmt.Fprintf(&s, "key:          %s\n", b.KeyType())
	fmt.Fprintf(&s, "not before:   %s\n", b.NotBefore.UTC().Format(time.RFC3339))
	fmt.Fprintf(&s, "not after:    %s\n", b.NotAfter.UTC().Format(time.RFC3339))
	fmt.Fprintf(&s, "sha256:       %s\n", b.Fingerprint())
	fmt.Fprintf(&s, "issuer chain:\n  %s\n", leaf.Issuer)
	for _, c := range b.Chain {
		sum := sha256.Sum256(c.Raw)
		fmt.Fprintf(&s, "  %s (issued by %s, not after %s, sha256 %s)\n", c.Subject, c.Issuer, c.NotAfter.UTC().Format(time.RFC3339), hex.EncodeToString(sum[:8]))
	}
	if err := b.CheckValidity(now); err != nil {
		fmt.Fprintf(&s, "WARNING:      %v\n", err)
	}
	return s.String()
}

// reportProblems prints err's problems one a line, or err itself.
func reportProblems(path string, err error) {
	var ps config.Problems
	if !errors.As(err, &ps) {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	fmt.Fprintf(os.Stderr, "%s: %d problem(s):\n", path, len(ps))
	printProblems("", ps)
}
