// Package metrics holds the supervisor's Prometheus metrics (own registry).
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// States are the container states reported by berth_supervisor_containers.
var States = []string{"created", "running", "paused", "restarting", "removing", "exited", "dead"}

// Metrics are the supervisor's metrics.
type Metrics struct {
	Registry        *prometheus.Registry
	Commands        *prometheus.CounterVec
	Duration        *prometheus.HistogramVec
	CreateToRunning prometheus.Histogram
	BusErrors       prometheus.Counter
	HealthChecks    *prometheus.CounterVec
	// ImageTransfers counts pulls and pushes by outcome; LayersFetched
	// the layer blobs pulls downloaded (shared layers are not).
	ImageTransfers *prometheus.CounterVec
	LayersFetched  prometheus.Counter
	// RefusedExits counts exit reports refused because the container's
	// init process still ran: forged (a shim's stolen credentials) or misrouted.
	RefusedExits prometheus.Counter
}

type stateCollector struct {
	desc   *prometheus.Desc
	counts func() map[string]int
}

func (s *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- s.desc }
func (s *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c := s.counts()
	for _, st := range States {
		ch <- prometheus.MustNewConstMetric(s.desc, prometheus.GaugeValue, float64(c[st]), st)
	}
}

// New registers the metrics; counts gives containers by state, shims the
// number of running shims.
func New(counts func() map[string]int, shims func() int) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_supervisor_commands_total", Help: "Bus commands handled, by verb and outcome.",
		}, []string{"verb", "outcome"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "berth_supervisor_command_duration_seconds", Help: "Time to handle a bus command.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"verb"}),
		CreateToRunning: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "berth_supervisor_create_to_running_seconds", Help: "Time from a start command to the container running.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		BusErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_supervisor_bus_errors_total", Help: "Failed bus operations (publish, reply, JetStream).",
		}),
		HealthChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_supervisor_health_checks_total", Help: "Healthcheck probes run, by result (success, failure).",
		}, []string{"result"}),
		RefusedExits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_supervisor_exit_reports_refused_total", Help: "Exit reports refused because the container's init process still ran (forged or misrouted).",
		}),
	}
	m.ImageTransfers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "berth_supervisor_image_transfers_total", Help: "Image pulls and pushes, by kind and outcome.",
	}, []string{"kind", "outcome"})
	m.LayersFetched = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "berth_supervisor_image_layers_fetched_total", Help: "Layer blobs downloaded by pulls.",
	})
	m.Registry.MustRegister(m.Commands, m.Duration, m.CreateToRunning, m.BusErrors, m.HealthChecks, m.ImageTransfers, m.LayersFetched, m.RefusedExits,
		&stateCollector{desc: prometheus.NewDesc("berth_supervisor_containers", "Containers by state.", []string{"state"}, nil), counts: counts},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "berth_supervisor_shims_running", Help: "Running shims."}, func() float64 { return float64(shims()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
