package engine

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the engine's own series; components add theirs through
// Settings.Metrics, labelled with component_id.
type metrics struct {
	eventsIn      *prometheus.CounterVec
	eventsOut     *prometheus.CounterVec
	eventsDropped *prometheus.CounterVec
	eventsFailed  *prometheus.CounterVec
	retries       *prometheus.CounterVec
	deadLetters   *prometheus.CounterVec
	batchLatency  *prometheus.HistogramVec
	checkpoints   *prometheus.CounterVec
	sourceErrors  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	lbl := []string{"component_id", "component_kind"}
	m := &metrics{
		eventsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "forwarder_component_events_in_total", Help: "Events received by a component (emitted, for sources).",
		}, lbl),
		eventsOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "forwarder_component_events_out_total", Help: "Events passed on by a transform or accepted by an output.",
		}, lbl),
		eventsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "forwarder_component_events_dropped_total", Help: "Events a transform dropped on purpose (count as delivered).",
		}, lbl),
		eventsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "forwarder_component_events_failed_total", Help: "Events that failed permanently and went to the dead-letter file.",
		}, lbl),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "forwarder_output_retries_total", Help: "Write attempts of an output that failed and were retried.",
		}, []string{"component_id"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "forwarder_dead_letters_total", Help: "Events written to the dead-letter file.",
		}, []string{"component_id"}),
		batchLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "forwarder_output_batch_latency_seconds",
			Help:    "Time from a batch entering an output's queue to its acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"component_id"}),
		checkpoints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "forwarder_source_checkpoints_committed_total", Help: "Checkpoints persisted for a source.",
		}, []string{"component_id"}),
		sourceErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "forwarder_source_errors_total", Help: "Times a source's Run returned an error.",
		}, []string{"component_id"}),
	}
	reg.MustRegister(m.eventsIn, m.eventsOut, m.eventsDropped, m.eventsFailed, m.retries,
		m.deadLetters, m.batchLatency, m.checkpoints, m.sourceErrors)
	return m
}
