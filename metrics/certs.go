package metrics

import (
	"iter"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ServedCertificate is one certificate a listener serves, as the
// certificate metrics report it.
type ServedCertificate struct {
	Listener, Ref       string
	Names               []string
	NotBefore, NotAfter time.Time
}

// Certificates exports terminator_certificate_not_after_seconds (per
// listener, name and ref) and terminator_certificate_outside_validity (per
// listener and ref). The series are computed at scrape time from the
// source the data plane last set, so that a snapshot of 100,000
// certificates holds no per-series memory between scrapes, and validity is
// judged at the scrape's time rather than at the last reload.
type Certificates struct {
	notAfter, invalid *prometheus.Desc
	src               atomic.Pointer[certSource]
}

type certSource struct {
	seq iter.Seq[ServedCertificate]
	now func() time.Time
}

func newCertificates() *Certificates {
	return &Certificates{
		notAfter: prometheus.NewDesc("terminator_certificate_not_after_seconds",
			"Expiry (Unix time) of each certificate served, by listener and name.", []string{"listener", "name", "ref"}, nil),
		invalid: prometheus.NewDesc("terminator_certificate_outside_validity",
			"1 for a certificate served although expired or not yet valid.", []string{"listener", "ref"}, nil),
	}
}

// Set replaces what is reported. seq must yield each (listener, ref) once
// and may be called concurrently by several scrapes; now is the clock
// validity is judged by (nil: time.Now).
func (c *Certificates) Set(seq iter.Seq[ServedCertificate], now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	c.src.Store(&certSource{seq: seq, now: now})
}

// Describe implements prometheus.Collector.
func (c *Certificates) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.notAfter
	ch <- c.invalid
}

// Collect implements prometheus.Collector.
func (c *Certificates) Collect(ch chan<- prometheus.Metric) {
	src := c.src.Load()
	if src == nil {
		return
	}
	now := src.now()
	for sc := range src.seq {
		for _, name := range sc.Names {
			ch <- prometheus.MustNewConstMetric(c.notAfter, prometheus.GaugeValue, float64(sc.NotAfter.Unix()), sc.Listener, name, sc.Ref)
		}
		invalid := 0.0
		if now.After(sc.NotAfter) || now.Before(sc.NotBefore) {
			invalid = 1
		}
		ch <- prometheus.MustNewConstMetric(c.invalid, prometheus.GaugeValue, invalid, sc.Listener, sc.Ref)
	}
}
