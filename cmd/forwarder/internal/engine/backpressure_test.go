package engine

import (
	"bufio"
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/checkpoint"
	"github.com/auditforwarder/forwarder/plugins"
)

// endless emits ~1 KB events as fast as the engine accepts them.
type endless struct {
	emitted atomic.Int64
	padding string
}

func (s *endless) Start(context.Context) error { return nil }
func (s *endless) Close(context.Context) error { return nil }
func (s *endless) Run(ctx context.Context, _ plugins.Checkpoint, emit plugins.Emit) error {
	for seq := 0; ; seq++ {
		evs := make([]*plugins.Event, 500)
		for i := range evs {
			o := plugins.NewObject(4)
			o.SetKey("id", strconv.Itoa(seq*500+i))
			o.SetKey("message", s.padding)
			evs[i] = &plugins.Event{Fields: o}
		}
		if err := emit(ctx, plugins.Batch{Events: evs, Checkpoint: plugins.Checkpoint(strconv.Itoa(seq))}); err != nil {
			return nil
		}
		s.emitted.Add(500)
	}
}

type gate struct{ open atomic.Bool }

func (g *gate) Start(context.Context) error { return nil }
func (g *gate) Close(context.Context) error { return nil }
func (g *gate) Write(ctx context.Context, _ []*plugins.Event) error {
	for !g.open.Load() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

func rssBytes() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "VmRSS:") {
			kb, _ := strconv.ParseInt(strings.Fields(sc.Text())[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// BenchmarkBackpressure blocks the only output for FORWARDER_BENCH_BLOCK
// (default 5s; the documented run uses 60s) while the source produces as
// fast as it can. It reports the peak RSS and how many events the source
// got out during the block: a bounded pipeline pauses the source instead of
// buffering, so both stay flat however long the block lasts.
func BenchmarkBackpressure(b *testing.B) {
	block := 5 * time.Second
	if v := os.Getenv("FORWARDER_BENCH_BLOCK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatal(err)
		}
		block = d
	}
	for i := 0; i < b.N; i++ {
		src := &endless{padding: strings.Repeat("x", 1000)}
		out := &gate{}
		cfg := pipeline(b, b.TempDir(),
			node{name: "src", kind: plugins.KindSource, comp: src},
			node{name: "tr", kind: plugins.KindTransform, comp: &touchTransform{}, inputs: []string{"src"}},
			node{name: "out", kind: plugins.KindOutput, comp: out, inputs: []string{"tr"}},
		)
		ctx, cancel := context.WithCancel(context.Background())
		e, err := New(ctx, cfg, Options{Logger: slog.New(slog.DiscardHandler), Store: checkpoint.NewMemStore()})
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		var peak int64
		end := time.Now().Add(block)
		for time.Now().Before(end) {
			if r := rssBytes(); r > peak {
				peak = r
			}
			time.Sleep(50 * time.Millisecond)
		}
		during := src.emitted.Load()
		out.open.Store(true)
		time.Sleep(200 * time.Millisecond)
		after := src.emitted.Load()
		cancel()
		<-done
		b.ReportMetric(float64(peak)/(1<<20), "peak_rss_MiB")
		b.ReportMetric(float64(during), "events_emitted_while_blocked")
		b.ReportMetric(float64(after-during)/0.2, "events/s_after_unblock")
	}
}
