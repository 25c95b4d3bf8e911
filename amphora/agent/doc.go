// Package agent serves the Octavia amphora agent's REST API (version 1.0)
// over mutual TLS, so that an unmodified Octavia controller drives
// terminator as it drives an amphora's agent and haproxy: it uploads
// certificates and a rendered haproxy.cfg, then asks for a reload. The
// haproxy.cfg is translated (amphora/haproxycfg) and applied to the data
// plane; haproxy is never run. Files are kept where the amphora keeps
// them (base_path/<lb_id>/haproxy.cfg, base_cert_dir/<lb_id>/<file>), so
// a restarted agent serves the last accepted configuration at once.
package agent
