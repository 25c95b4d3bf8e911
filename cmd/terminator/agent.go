package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/terminator-proxy/terminator/amphora/haproxycfg"
	"github.com/terminator-proxy/terminator/amphora/netplug"
)

// newAgentCmd is "terminator agent": terminator as an Octavia amphora's
// agent and data plane.
func newAgentCmd() *cobra.Command {
	var path string
	var drain time.Duration
	var netOpts agentNet
	agent := &cobra.Command{
		Use:   "agent",
		Short: "Work as an OpenStack Octavia amphora's agent and data plane",
		Long: `terminator in place of an Octavia amphora's agent and haproxy: it serves the
amphora agent API 1.0 over mutual TLS as configured in the agent's own file
(/etc/octavia/amphora-agent.conf, rendered by the controller), translates the
haproxy.cfg the controller uploads into terminator's configuration (haproxy is
never run), serves it, and sends version 3 heartbeats to the health managers.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return status(runAgent(path, drain, netOpts)) },
	}
	agent.Flags().StringVar(&path, "config", "/etc/octavia/amphora-agent.conf", "the amphora agent's configuration file")
	agent.Flags().StringVar(&netOpts.namespace, "namespace", netplug.DefaultNamespace,
		`the network namespace the VIP and member NICs are plugged into; "" leaves the network alone (plug calls change nothing)`)
	agent.Flags().StringVar(&netOpts.state, "plugged-interfaces", "/var/lib/octavia/terminator-plugged.json",
		"where plugged NICs are recorded, to plug them again at boot")
	agent.Flags().StringVar(&netOpts.nics, "nic-namespace", "",
		`the named network namespace Nova's NICs appear in; "" is the agent's own (an amphora's root)`)
	agent.Flags().DurationVar(&drain, "drain-timeout", 30*time.Second, "how long SIGTERM waits for requests in flight")
	agent.AddCommand(newAgentCheckCmd(), &cobra.Command{
		Use:   "translate HAPROXY-CFG",
		Short: "Print the terminator configuration a haproxy.cfg rendered by Octavia becomes",
		Long: `Translate a haproxy.cfg rendered by Octavia's JinjaTemplater into terminator's
configuration and print it as YAML, with the problems of the translation or of
its validation. The crt-list files its bind lines name are read.`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error { return status(cmdTranslate(args[0])) },
	})
	return agent
}

func cmdTranslate(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "terminator agent translate:", err)
		return 1
	}
	cfg, err := haproxycfg.Translate(data, os.ReadFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "terminator agent translate:", err)
		return 1
	}
	os.Stdout.Write(out)
	cfg.ApplyDefaults()
	if _, err := cfg.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "# the translation does not validate:\n%v\n", err)
		return 1
	}
	return 0
}
