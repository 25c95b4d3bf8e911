package proxy

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/terminator-proxy/terminator/metrics"
)

// statusClasses label responses by class; index 0 counts requests that got
// no response from a member.
var statusClasses = [6]string{"0xx", "1xx", "2xx", "3xx", "4xx", "5xx"}

func classIndex(status int) int {
	if status < 100 || status > 599 {
		return 0
	}
	return status / 100
}

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
	for i, class := range statusClasses {
		c.requests[i] = mx.Requests.WithLabelValues(listener, class)
	}
	return c
}

func bindMember(mx *metrics.Metrics, pool string, m *Member) {
	if mx == nil {
		mx = discard
	}
	for i, class := range statusClasses {
		m.requests[i] = mx.MemberRequests.WithLabelValues(pool, m.Name, class)
	}
	vec := mx.MemberErrors
	m.errors = func(reason string) prometheus.Counter { return vec.WithLabelValues(pool, m.Name, reason) }
}

// discard collects metrics nobody reads, for callers that pass none.
var discard = metrics.New()
