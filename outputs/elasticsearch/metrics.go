package elasticsearch

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the output's own Prometheus series; Settings.Metrics adds the
// component_id label.
type metrics struct {
	indexed    prometheus.Counter
	duplicates prometheus.Counter
	retriedVec *prometheus.CounterVec
	failedVec  *prometheus.CounterVec
	requests   *prometheus.CounterVec
	duration   prometheus.Histogram
	bytes      prometheus.Counter
	up         prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		indexed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "forwarder_elasticsearch_docs_indexed_total",
			Help: "Documents Elasticsearch indexed (bulk item 2xx).",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "forwarder_elasticsearch_docs_duplicates_total",
			Help: "Documents already present (bulk item 409 with op create), counted as delivered.",
		}),
		retriedVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "forwarder_elasticsearch_docs_retried_total",
			Help: "Documents handed back to the engine for a retry, by reason (Elasticsearch error type, http_<status> or unreachable).",
		}, []string{"reason"}),
		failedVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "forwarder_elasticsearch_docs_failed_total",
			Help: "Documents refused permanently (sent to the dead-letter file), by Elasticsearch error type.",
		}, []string{"reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "forwarder_elasticsearch_bulk_requests_total",
			Help: "Bulk requests by result: ok, 4xx, 429, 5xx or error (no answer).",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "forwarder_elasticsearch_bulk_duration_seconds",
			Help:    "Time from sending a bulk request to reading its response.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "forwarder_elasticsearch_bulk_bytes_total",
			Help: "Uncompressed bytes of bulk request bodies sent.",
		}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "forwarder_elasticsearch_up",
			Help: "1 when the cluster answered the last request or probe, else 0.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.indexed, m.duplicates, m.retriedVec, m.failedVec, m.requests, m.duration, m.bytes, m.up)
	}
	return m
}

func (m *metrics) retried(reason string, n int) { m.retriedVec.WithLabelValues(reason).Add(float64(n)) }
func (m *metrics) failed(reason string, n int)  { m.failedVec.WithLabelValues(reason).Add(float64(n)) }

func (m *metrics) request(result string, d time.Duration, size int) {
	m.requests.WithLabelValues(result).Inc()
	m.duration.Observe(d.Seconds())
	m.bytes.Add(float64(size))
}
