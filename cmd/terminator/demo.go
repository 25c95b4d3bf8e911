package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/terminator-proxy/terminator/config"
	"github.com/terminator-proxy/terminator/dataplane"
	"github.com/terminator-proxy/terminator/pki"
)

// cmdDemo is the built-in default: throwaway certificates for localhost and
// shop.localhost, a demo backend, and a TERMINATED_HTTPS listener in front
// of it, all on loopback.
func newDemoCmd() *cobra.Command {
	var dir, bind, adminBind string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a demo listener with throwaway certificates",
		Long: `Write a throwaway CA, certificates for localhost and shop.localhost and a config
into --dir, start a demo backend, and serve HTTPS on --bind until Ctrl-C.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return status(cmdDemo(dir, bind, adminBind)) },
	}
	cmd.Flags().StringVar(&dir, "dir", ".demo", "where to write the demo certificates and config")
	cmd.Flags().StringVar(&bind, "bind", "127.0.0.1:8443", "address of the demo HTTPS listener")
	cmd.Flags().StringVar(&adminBind, "admin", "127.0.0.1:9100", "address of the admin endpoint")
	return cmd
}

func cmdDemo(dir, bind, adminBind string) int {
	log := newLogger("text", "info")
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo backend:", err)
		return 1
	}
	go func() { _ = (&http.Server{Handler: demoBackend(), ReadHeaderTimeout: 10 * time.Second}).Serve(backend) }()

	cfgPath, err := writeDemo(dir, bind, adminBind, backend.Addr().(*net.TCPAddr).Port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	cfg, _, err := config.Load(cfgPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	_, port, _ := net.SplitHostPort(bind)
	err = serve(ctx, serveOptions{
		cfg: cfg, log: log, drain: 5 * time.Second,
		load: func() (*config.Config, error) { c, _, err := config.Load(cfgPath); return c, err },
		onReady: func(*dataplane.Plane) {
			ca, _ := filepath.Abs(filepath.Join(dir, "ca.pem"))
			fmt.Printf("\nterminator demo is serving. Try:\n\n"+
				"  curl --cacert %s https://localhost:%s/\n"+
				"  curl --cacert %s --resolve shop.localhost:%s:127.0.0.1 https://shop.localhost:%s/\n\n"+
				"Metrics: http://%s/metrics   Config: %s   Stop: Ctrl-C\n\n",
				ca, port, ca, port, port, adminBind, cfgPath)
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	return 0
}

// writeDemo creates a CA, an ECDSA certificate for localhost, one for
// shop.localhost, and a config naming them, and returns the config's path.
func writeDemo(dir, bind, adminBind string, backendPort int) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	ca, err := pki.NewCA("terminator demo CA", pki.ECDSAP256, 0)
	if err != nil {
		return "", err
	}
	files := map[string][]byte{"ca.pem": pki.CertPEM(ca.Cert)}
	for name, dns := range map[string][]string{"localhost.pem": {"localhost"}, "shop.pem": {"shop.localhost"}} {
		cert, key, err := ca.Issue(pki.Request{CommonName: dns[0], DNSNames: dns, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, Usage: pki.ServerAuth})
		if err != nil {
			return "", err
		}
		kp, err := pki.KeyPEM(key)
		if err != nil {
			return "", err
		}
		files[name] = append(pki.CertPEM(cert), kp...)
	}
	files["terminator.yaml"] = []byte(fmt.Sprintf(`# Written by "terminator demo".
admin: {bind: %q}
listeners:
  - name: demo
    protocol: TERMINATED_HTTPS
    bind: %q
    default_tls_container_ref: file://%s/localhost.pem
    sni_container_refs: [file://%s/shop.pem]
    insert_headers: {X-Forwarded-For: "true", X-Forwarded-Proto: "true"}
    default_pool: demo-backend
pools:
  - name: demo-backend
    lb_algorithm: ROUND_ROBIN
    members:
      - {address: 127.0.0.1, protocol_port: %d}
`, adminBind, bind, abs, abs, backendPort))
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return "", err
		}
	}
	return filepath.Join(dir, "terminator.yaml"), nil
}

// demoBackend answers every request with what terminator forwarded.
func demoBackend() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "hello from the demo backend\nhost: %s\npath: %s\nX-Forwarded-For: %s\nX-Forwarded-Proto: %s\n",
			r.Host, r.URL.Path, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"))
	})
}
