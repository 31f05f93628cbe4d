package httppoll

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are registered through Settings.Metrics, which adds component_id.
type metrics struct {
	requests    *prometheus.CounterVec // by status class
	retries     *prometheus.CounterVec // by kind
	pages       prometheus.Counter
	events      prometheus.Counter
	duplicates  prometheus.Counter
	malformed   prometheus.Counter
	deadWindows prometheus.Counter
	windows     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, lag func() float64) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "forwarder_source_api_requests_total",
			Help: "API requests made by a source, by HTTP status class (2xx, 4xx, 5xx, …) or \"error\" when no response arrived.",
		}, []string{"status_class"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "forwarder_source_api_retries_total",
			Help: "API requests retried, by reason (transient, rate_limited, auth, malformed).",
		}, []string{"reason"}),
		pages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "forwarder_source_api_pages_total", Help: "API pages read successfully.",
		}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "forwarder_source_api_events_total", Help: "Events emitted by the source after de-duplication.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "forwarder_source_api_duplicates_total", Help: "Events dropped because their id was already emitted (overlap re-reads, paging drift).",
		}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "forwarder_source_api_malformed_pages_total", Help: "Pages that were not valid JSON or lacked their items.",
		}),
		deadWindows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "forwarder_source_api_dead_letter_windows_total", Help: "Windows given up after repeated malformed pages and recorded in the dead-letter file.",
		}),
		windows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "forwarder_source_api_windows_total", Help: "Time windows read completely.",
		}),
	}
	if reg == nil {
		return m
	}
	m.requests = register(reg, m.requests)
	m.retries = register(reg, m.retries)
	m.pages = register(reg, m.pages)
	m.events = register(reg, m.events)
	m.duplicates = register(reg, m.duplicates)
	m.malformed = register(reg, m.malformed)
	m.deadWindows = register(reg, m.deadWindows)
	m.windows = register(reg, m.windows)
	register[prometheus.Collector](reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "forwarder_source_api_window_lag_seconds",
		Help: "How far the end of the last emitted window is behind now.",
	}, lag))
	return m
}

// register registers c, or returns the collector already registered under
// the same name (a source created twice on one registry, as tests do).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if ex, ok := are.ExistingCollector.(C); ok {
				return ex
			}
		}
	}
	return c
}

func statusClass(code int) string {
	switch {
	case code >= 200 && code < 300:
		return "2xx"
	case code >= 300 && code < 400:
		return "3xx"
	case code >= 400 && code < 500:
		return "4xx"
	case code >= 500 && code < 600:
		return "5xx"
	}
	return "other"
}
