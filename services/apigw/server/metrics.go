package server

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are berth-apigw's Prometheus metrics.
type Metrics struct {
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	busErrors      prometheus.Counter
	attachSessions prometheus.Gauge
}

// NewMetrics creates the metrics and registers them with reg (if not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_apigw_requests_total",
			Help: "HTTP requests served, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "berth_apigw_request_duration_seconds",
			Help:    "Time to serve an HTTP request (streams: until they end), by route pattern.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14),
		}, []string{"route"}),
		busErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_apigw_bus_errors_total",
			Help: "Bus commands that failed because the bus or the supervisor was unavailable.",
		}),
		attachSessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "berth_apigw_attach_sessions",
			Help: "Attach sessions open now.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.busErrors, m.attachSessions)
	}
	return m
}
