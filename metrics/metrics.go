// Package metrics defines terminator's Prometheus collectors. A Metrics is
// created once per process, registered on a registry the caller owns, and
// passed to the parts that update it; there are no package-level metrics.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds every collector. All fields are safe for concurrent use.
type Metrics struct {
	Registry *prometheus.Registry

	ConnectionsActive *prometheus.GaugeVec   // listener
	ConnectionsTotal  *prometheus.CounterVec // listener
	Handshakes        *prometheus.CounterVec // listener, version, resumed
	HandshakeFailures *prometheus.CounterVec // listener, reason
	Requests          *prometheus.CounterVec // listener, class
	MemberRequests    *prometheus.CounterVec // pool, member, class
	BytesIn           *prometheus.CounterVec // listener
	BytesOut          *prometheus.CounterVec // listener
	MemberErrors      *prometheus.CounterVec // pool, member, reason
	Retries           *prometheus.CounterVec // pool
	RequestSeconds    *prometheus.HistogramVec

	Certificates  *Certificates // computed at scrape time from the serving snapshot
	Reloads       *prometheus.CounterVec
	ReloadFailing prometheus.Gauge
	// UpgradesFailed counts binary upgrades (SIGUSR2) whose new binary
	// did not become ready; a successful one ends this process.
	UpgradesFailed prometheus.Counter
	LastReload     prometheus.Gauge
	Generation     prometheus.Gauge

	ControlCertNotAfter *prometheus.GaugeVec   // cn
	ControlRefused      *prometheus.CounterVec // reason: control-API clients refused
	SourceStale         *prometheus.GaugeVec   // ref: 1 while a secret store cannot refresh it
	SourceStaleSince    *prometheus.GaugeVec   // ref
	SourceNotAfter      *prometheus.GaugeVec   // ref: expiry of what is served for it
	ACMEOrders          *prometheus.CounterVec // result: ok, failed
	MemberStatus        *prometheus.GaugeVec   // pool, member, status: 1 for the current one
}

// New creates the collectors and registers them, with the Go and process
// collectors, on a new registry.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		ConnectionsActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "terminator_connections_active", Help: "Client connections open now.",
		}, []string{"listener"}),
		ConnectionsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "terminator_connections_total", Help: "Client connections accepted.",
		}, []string{"listener"}),
		Handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "terminator_tls_handshakes_total", Help: "Completed TLS handshakes by version and whether the session was resumed.",
		}, []string{"listener", "version", "resumed"}),
		HandshakeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "terminator_tls_handshake_failures_total", Help: "Failed TLS handshakes by reason.",
		}, []string{"listener", "reason"}),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "terminator_requests_total", Help: "HTTP requests by listener and status class (0xx: no response).",
		}, []string{"listener", "class"}),
		MemberRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "terminator_member_requests_total", Help: "Requests forwarded to pool members by status class (0xx: no response).",
		}, []string{"pool", "member", "class"}),
		BytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "terminator_request_bytes_total", Help: "Request body bytes received from clients.",
		}, []string{"listener"}),
		BytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "terminator_response_bytes_total", Help: "Response body bytes sent to clients.",
		}, []string{"listener"}),
		MemberErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "terminator_member_errors_total", Help: "Failed exchanges with pool members by reason.",
		}, []string{"pool", "member", "reason"}),
		RequestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "terminator_request_duration_seconds", Help: "Time from request to the end of the response.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"listener"}),
		Certificates: newCertificates(),
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "terminator_reloads_total", Help: "Configuration and certificate reloads by result.",
		}, []string{"result"}),
		ReloadFailing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "terminator_reload_failing", Help: "1 while the last reload failed and an older snapshot is serving.",
		}),
		LastReload: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "terminator_last_reload_success_timestamp_seconds", Help: "Unix time of the last successful reload.",
		}),
		Generation: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "terminator_snapshot_generation", Help: "Number of the snapshot serving now.",
		}),
		ControlCertNotAfter: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "terminator_control_certificate_not_after_seconds", Help: "Expiry (Unix time) of the control API's server certificate.",
		}, []string{"cn"}),
	}
	m.ControlRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "terminator_control_client_refused_total", Help: "Control-API clients refused, at the handshake or on a request, by reason (revoked, expired, unknown_ca, missing, bad_certificate).",
	}, []string{"reason"})
	m.SourceStale = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "terminator_certificate_source_stale", Help: "1 while a secret-store reference cannot be refreshed and its last good bundle is served.",
	}, []string{"ref"})
	m.SourceStaleSince = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "terminator_certificate_source_stale_since_seconds", Help: "Unix time since which a reference is stale (0 when current).",
	}, []string{"ref"})
	m.SourceNotAfter = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "terminator_certificate_source_not_after_seconds", Help: "Expiry of the bundle served for a secret-store reference.",
	}, []string{"ref"})
	m.ACMEOrders = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "terminator_acme_orders_total", Help: "ACME orders this instance placed, by result (ok, failed); other instances' orders are not counted.",
	}, []string{"result"})
	m.UpgradesFailed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "terminator_upgrade_failures_total", Help: "Binary upgrades (SIGUSR2) refused because the new binary did not become ready; this process kept serving.",
	})
	m.Retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "terminator_retries_total", Help: "Requests sent to another member after a connection was refused.",
	}, []string{"pool"})
	m.MemberStatus = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "terminator_member_status", Help: "1 for the member's current status (UP, DOWN, DRAIN, MAINT, NO_CHECK), 0 for the others.",
	}, []string{"pool", "member", "status"})
	r.MustRegister(m.ACMEOrders, m.UpgradesFailed, m.Retries, m.MemberStatus, m.ControlCertNotAfter, m.ControlRefused, m.SourceStale, m.SourceStaleSince, m.SourceNotAfter,

		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.ConnectionsActive, m.ConnectionsTotal, m.Handshakes, m.HandshakeFailures, m.Requests, m.MemberRequests,
		m.BytesIn, m.BytesOut, m.MemberErrors, m.RequestSeconds, m.Certificates,
		m.Reloads, m.ReloadFailing, m.LastReload, m.Generation,
	)
	return m
}

// StatusClasses label responses by class; index 0 counts requests that got
// no response from a member.
var StatusClasses = [6]string{"0xx", "1xx", "2xx", "3xx", "4xx", "5xx"}

// ClassIndex is the index in StatusClasses of an HTTP status.
func ClassIndex(status int) int {
	if status < 100 || status > 599 {
		return 0
	}
	return status / 100
}
