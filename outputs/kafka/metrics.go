package kafka

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the output's own series; the engine's registerer adds the
// component_id label.
type metrics struct {
	records prometheus.Counter
	bytes   prometheus.Counter
	latency prometheus.Histogram
	errors  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, buffered func() float64) (*metrics, error) {
	m := &metrics{
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "forwarder_kafka_records_produced_total",
			Help: "Records the Kafka brokers acknowledged (acks=all).",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "forwarder_kafka_produced_bytes_total",
			Help: "Key and value bytes of acknowledged records, before compression.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "forwarder_kafka_produce_latency_seconds",
			Help:    "Time from handing a record to the client to its acknowledgement.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "forwarder_kafka_produce_errors_total",
			Help: "Records that failed, by Kafka error code (or client-side reason).",
		}, []string{"code"}),
	}
	if reg == nil {
		return m, nil
	}
	gauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "forwarder_kafka_buffered_records",
		Help: "Records held by the client, not yet acknowledged (bounded by max_buffered_records).",
	}, buffered)
	for _, c := range []prometheus.Collector{m.records, m.bytes, m.latency, m.errors, gauge} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				continue // a second instance with the same id (validate, tests)
			}
			return nil, fmt.Errorf("registering kafka metrics: %w", err)
		}
	}
	return m, nil
}
