package proxy

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/terminator-proxy/terminator/metrics"
)

// counters resolves the per-listener collectors once per Route, so the
// request path does no label lookups.
type counters struct {
	requests    [6]prometheus.Counter
	bytesIn     prometheus.Counter
	bytesOut    prometheus.Counter
	duration    prometheus.Observer
	connsActive prometheus.Gauge
	connsTotal  prometheus.Counter
}

func newCounters(mx *metrics.Metrics, listener string) *counters {
	if mx == nil {
		mx = discard
	}
	c := &counters{
		bytesIn:     mx.BytesIn.WithLabelValues(listener),
		bytesOut:    mx.BytesOut.WithLabelValues(listener),
		duration:    mx.RequestSeconds.WithLabelValues(listener),
		connsActive: mx.ConnectionsActive.WithLabelValues(listener),
		connsTotal:  mx.ConnectionsTotal.WithLabelValues(listener),
	}
	for i, class := range metrics.StatusClasses {
		c.requests[i] = mx.Requests.WithLabelValues(listener, class)
	}
	return c
}

// discard collects metrics nobody reads, for callers that pass none.
var discard = metrics.New()
