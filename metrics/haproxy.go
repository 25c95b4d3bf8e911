package metrics

import (
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// HAProxyExporter serves terminator's metrics for a PROMETHEUS listener:
// every terminator_* metric, and beside them the same figures under the
// names of haproxy's Prometheus exporter (haproxy_frontend_*,
// haproxy_backend_*, haproxy_server_*, with proxy and server labels)
// where a counterpart exists, so that dashboards and alerts written for
// Octavia's haproxy amphorae keep working.
func (m *Metrics) HAProxyExporter() http.Handler {
	view := prometheus.NewRegistry()
	view.MustRegister(haproxyView{m.Registry})
	return promhttp.HandlerFor(prometheus.Gatherers{m.Registry, view}, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// haproxyView renames terminator's series; it is unchecked (no Describe).
type haproxyView struct{ src prometheus.Gatherer }

func (haproxyView) Describe(chan<- *prometheus.Desc) {}

// mapping is one terminator family shown under an haproxy name.
type mapping struct {
	name, help string
	kind       prometheus.ValueType
	labels     func(l map[string]string) []string // nil drops the series
	labelNames []string
}

var frontend = func(l map[string]string) []string { return []string{l["listener"]} }

var haproxyNames = map[string][]mapping{
	"terminator_connections_active":   {{"haproxy_frontend_current_sessions", "Number of current sessions.", prometheus.GaugeValue, frontend, []string{"proxy"}}},
	"terminator_connections_total":    {{"haproxy_frontend_sessions_total", "Total number of sessions.", prometheus.CounterValue, frontend, []string{"proxy"}}},
	"terminator_request_bytes_total":  {{"haproxy_frontend_bytes_in_total", "Current total of incoming bytes.", prometheus.CounterValue, frontend, []string{"proxy"}}},
	"terminator_response_bytes_total": {{"haproxy_frontend_bytes_out_total", "Current total of outgoing bytes.", prometheus.CounterValue, frontend, []string{"proxy"}}},
	"terminator_requests_total": {
		{"haproxy_frontend_http_responses_total", "Total number of HTTP responses.", prometheus.CounterValue,
			func(l map[string]string) []string { return []string{l["listener"], code(l["class"])} }, []string{"proxy", "code"}},
		{"haproxy_frontend_http_requests_total", "Total number of HTTP requests received.", prometheus.CounterValue, frontend, []string{"proxy"}},
	},
	"terminator_member_requests_total": {{"haproxy_server_http_responses_total", "Total number of HTTP responses.", prometheus.CounterValue,
		func(l map[string]string) []string { return []string{l["pool"], l["member"], code(l["class"])} }, []string{"proxy", "server", "code"}}},
	"terminator_member_status": {{"haproxy_server_status", "Current status of the service, per state label value.", prometheus.GaugeValue,
		func(l map[string]string) []string { return []string{l["pool"], l["member"], serverState(l["status"])} }, []string{"proxy", "server", "state"}}},
	"terminator_member_errors_total": {{"haproxy_server_connection_errors_total", "Total number of connection errors.", prometheus.CounterValue,
		func(l map[string]string) []string {
			if l["reason"] != "connect" {
				return nil
			}
			return []string{l["pool"], l["member"]}
		}, []string{"proxy", "server"}}},
	"terminator_retries_total": {{"haproxy_backend_retry_warnings_total", "Total number of retry warnings.", prometheus.CounterValue,
		func(l map[string]string) []string { return []string{l["pool"]} }, []string{"proxy"}}},
}

func code(class string) string {
	if class == "" || class == "0xx" {
		return "other"
	}
	return class
}

// serverState maps terminator's member status to haproxy's state label
// (a server without checks is UP to haproxy).
func serverState(s string) string {
	if s == "NO_CHECK" {
		return "UP"
	}
	return s
}

func (v haproxyView) Collect(ch chan<- prometheus.Metric) {
	mfs, _ := v.src.Gather()
	for _, mf := range mfs {
		for _, mp := range haproxyNames[mf.GetName()] {
			sums := map[string]float64{}
			labelsOf := map[string][]string{}
			for _, m := range mf.GetMetric() {
				l := map[string]string{}
				for _, lp := range m.GetLabel() {
					l[lp.GetName()] = lp.GetValue()
				}
				vals := mp.labels(l)
				if vals == nil {
					continue
				}
				key := strings.Join(vals, "\x00")
				sums[key] += value(m)
				labelsOf[key] = vals
			}
			desc := prometheus.NewDesc(mp.name, mp.help, mp.labelNames, nil)
			for key, sum := range sums {
				if cm, err := prometheus.NewConstMetric(desc, mp.kind, sum, labelsOf[key]...); err == nil {
					ch <- cm
				}
			}
		}
	}
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}
