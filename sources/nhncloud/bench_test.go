package nhncloud

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/sources/internal/httppoll"
)

// BenchmarkBackfill reads 100,000 events spread over 30 days from the
// simulator with 20 ms page latency, page_size 1000 and rate_limit 20, and
// reports events/s next to the bound the rate limit sets (rate_limit ×
// page_size = 20,000 events/s) and the share of it reached.
func BenchmarkBackfill(b *testing.B) {
	const (
		total    = 100_000
		pageSize = 1000
		rateLim  = 20.0
	)
	now := time.Now()
	sim := NewSimulator(SimulatorOptions{AppKey: "bench-appkey-0001", UserAccessKeyID: "bench-id", SecretAccessKey: "bench-secret", Seed: 7})
	sim.Generate(total, now.Add(-30*24*time.Hour), now.Add(-time.Minute))
	sim.SetFaults(Faults{Latency: 20 * time.Millisecond})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	b.ReportAllocs()
	b.ResetTimer()
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		cfg := defaultConfig()
		cfg.Endpoint, cfg.AppKey, cfg.UserAccessKeyID, cfg.SecretAccessKey = srv.URL, "bench-appkey-0001", "bench-id", "bench-secret"
		cfg.PageSize, cfg.RateLimit = pageSize, rateLim
		set := plugins.NopSettings("nhn")
		set.Once = true
		src, err := newSource(set, cfg)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		start := time.Now()
		served0 := sim.Served()
		err = src.Run(context.Background(), nil, func(_ context.Context, bt plugins.Batch) error {
			n += len(bt.Events)
			return nil
		})
		elapsed += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if n != total {
			b.Fatalf("got %d events, want %d", n, total)
		}
		b.ReportMetric(float64(sim.Served()-served0), "requests/op")
	}
	eps := float64(total*b.N) / elapsed.Seconds()
	b.ReportMetric(eps, "events/s")
	b.ReportMetric(100*eps/(rateLim*pageSize), "%bound")
}

// BenchmarkPageToEvents measures the CPU cost per page of 1000 items:
// parsing the answer and building the events (v1: with fingerprints).
func BenchmarkPageToEvents(b *testing.B) {
	for _, version := range []string{VersionV1, VersionV2} {
		b.Run(version, func(b *testing.B) {
			env := newTestEnv(b, SimulatorOptions{Seed: 5})
			now := time.Now()
			env.sim.Generate(1000, now.Add(-time.Hour), now.Add(-time.Minute))
			c, err := NewClient(ClientOptions{Endpoint: env.srv.URL, Version: version, AppKey: testAppKey, UserAccessKeyID: testKeyID, SecretAccessKey: testSecret})
			if err != nil {
				b.Fatal(err)
			}
			req, _ := c.NewRequest(context.Background(), &SearchRequest{StartDate: FormatRequestTime(now.Add(-2 * time.Hour)), EndDate: FormatRequestTime(now), Page: PageConditions{SortBy: SortTimeAsc, Limit: 1000}})
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			cfg := env.config("v2")
			src, err := newSource(plugins.NopSettings("nhn"), cfg)
			if err != nil {
				b.Fatal(err)
			}
			w := httppoll.Window{From: now.Add(-2 * time.Hour), To: now}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				pg, err := c.Interpret(&http.Response{StatusCode: 200}, body)
				if err != nil {
					b.Fatal(err)
				}
				if evs := src.toEvents(pg.Items, w, "", 0); len(evs) != 1000 {
					b.Fatal(len(evs))
				}
			}
			b.ReportMetric(float64(1000*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
