package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/terminator-proxy/terminator/dataplane"
)

// healthServer answers keepalived's check script over a unix socket: 200
// while the agent's data plane has a configuration applied, 503 once it
// stops.
type healthServer struct {
	ln   net.Listener
	srv  *http.Server
	path string
}

// listenHealth binds base/terminator-agent.sock for plane.
func listenHealth(base string, plane *dataplane.Plane) (*healthServer, string, error) {
	path := filepath.Join(base, "terminator-agent.sock")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, "", err
	}
	_ = os.Remove(path) // a previous agent's
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, "", fmt.Errorf("health socket: %w", err)
	}
	srv := &http.Server{ReadHeaderTimeout: 2 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if plane.Current() == nil {
			http.Error(w, "no configuration applied", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "serving")
	})}
	return &healthServer{ln: ln, srv: srv, path: path}, path, nil
}

// serve answers until stop.
func (h *healthServer) serve() error {
	err := h.srv.Serve(h.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// stop closes the socket: from now on keepalived's check fails.
func (h *healthServer) stop() {
	_ = h.srv.Close()
	_ = os.Remove(h.path)
}

func newAgentCheckCmd() *cobra.Command {
	var sock string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Exit 0 if the amphora agent's data plane serves (keepalived's check script runs it)",
		Long: `Ask the running terminator agent, over its unix socket, whether its data plane
serves; exit 0 if it does, 1 otherwise. The agent writes keepalived's check
script (base_path/vrrp/check_scripts/terminator_check_script.sh) to run this,
so that an amphora whose terminator does not serve gives up the VIP.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return status(cmdAgentCheck(sock, timeout))
		},
	}
	cmd.Flags().StringVar(&sock, "socket", "/var/lib/octavia/terminator-agent.sock", "the agent's health socket (base_path/terminator-agent.sock)")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Second, "how long to wait for the answer")
	return cmd
}

func cmdAgentCheck(sock string, timeout time.Duration) int {
	hc := &http.Client{Timeout: timeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	resp, err := hc.Get("http://agent/healthz")
	if err != nil {
		fmt.Fprintln(os.Stderr, "terminator agent check:", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "terminator agent check:", resp.Status)
		return 1
	}
	return 0
}
