package ncloud

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

// BenchmarkBackfill100k backfills 100,000 events from the simulator with
// 20 ms page latency and rate_limit 20: the API bounds it at
// rate_limit × page_size = 2,000 events/s. It reports events/s, the
// requests made (the minimum is 1,000 full pages) and the share of the
// bound reached. One iteration takes about a minute.
func BenchmarkBackfill100k(b *testing.B) {
	b.ReportAllocs()
	const events = 100000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		sim := NewSimulator(SimulatorConfig{Events: events, Seed: uint64(i + 1), PageLatency: 20 * time.Millisecond})
		srv := httptest.NewServer(sim)
		cfg := defaultConfig()
		cfg.Endpoint, cfg.AccessKey, cfg.SecretKey = srv.URL, SimAccessKey, SimSecretKey
		cfg.RateLimit = 20
		set := plugins.NopSettings("ncp")
		set.Once = true
		s, err := newSource(set, cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		b.StartTimer()
		start := time.Now()
		err = s.Run(context.Background(), nil, func(_ context.Context, bt plugins.Batch) error {
			n += len(bt.Events)
			return nil
		})
		el := time.Since(start)
		b.StopTimer()
		srv.Close()
		if err != nil {
			b.Fatal(err)
		}
		if n != events {
			b.Fatalf("%d events, want %d", n, events)
		}
		rate := float64(n) / el.Seconds()
		bound := cfg.RateLimit * float64(cfg.PageSize)
		b.ReportMetric(rate, "events/s")
		b.ReportMetric(float64(sim.Requests()), "requests")
		b.ReportMetric(100*rate/bound, "%_of_bound")
		b.StartTimer()
	}
}
