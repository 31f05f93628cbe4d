package engine

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/config"
	"github.com/auditforwarder/forwarder/plugins"
)

// slowParallel is a ParallelTransform whose forks take a random time per
// batch, so batches finish out of order, and which records how many forks
// run at once.
type slowParallel struct {
	forks            atomic.Int64
	running, maxSeen atomic.Int64
	direct           atomic.Int64 // Process calls on the transform itself
}

func (t *slowParallel) Start(context.Context) error { return nil }
func (t *slowParallel) Close(context.Context) error { return nil }
func (t *slowParallel) Process(_ context.Context, evs []*plugins.Event) ([]*plugins.Event, error) {
	t.direct.Add(1)
	for _, ev := range evs {
		ev.Fields.Set("forked", true)
	}
	return evs, nil
}

func (t *slowParallel) Fork() plugins.ProcessFunc {
	t.forks.Add(1)
	var busy atomic.Bool // a fork is never called concurrently with itself
	return func(ctx context.Context, evs []*plugins.Event) ([]*plugins.Event, error) {
		if !busy.CompareAndSwap(false, true) {
			panic("fork called concurrently")
		}
		defer busy.Store(false)
		n := t.running.Add(1)
		for {
			m := t.maxSeen.Load()
			if n <= m || t.maxSeen.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		t.running.Add(-1)
		for _, ev := range evs {
			ev.Fields.Set("forked", true)
		}
		return evs, nil
	}
}

// orderOutput records the batch numbers in the order they arrive.
type orderOutput struct {
	mu    sync.Mutex
	order []int
	all   int
}

func (o *orderOutput) Start(context.Context) error { return nil }
func (o *orderOutput) Close(context.Context) error { return nil }
func (o *orderOutput) Write(_ context.Context, evs []*plugins.Event) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	b, _ := evs[0].Fields.GetKey("batch")
	o.order = append(o.order, b.(int))
	for _, ev := range evs {
		if v, _ := ev.Fields.GetKey("forked"); v == true {
			o.all++
		}
	}
	return nil
}

func TestParallelTransformKeepsBatchOrder(t *testing.T) {
	for _, workers := range []int{1, 4} {
		src := &scriptSource{batches: 300, size: 5}
		tr := &slowParallel{}
		out := &orderOutput{}
		// One Write at a time, so the output sees the order the transform
		// passed the batches on in.
		d := config.DefaultDelivery()
		d.MaxInFlight = 1
		cfg := pipeline(t, t.TempDir(),
			node{name: "src", kind: plugins.KindSource, comp: src},
			node{name: "tr", kind: plugins.KindTransform, comp: tr, inputs: []string{"src"}},
			node{name: "out", kind: plugins.KindOutput, comp: out, inputs: []string{"tr"}, d: &d},
		)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		e, err := New(ctx, cfg, Options{Logger: slog.New(slog.DiscardHandler), Once: true, TransformWorkers: workers})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Run(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		if len(out.order) != 300 || out.all != 1500 {
			t.Fatalf("workers %d: %d batches and %d processed events delivered, want 300 and 1500", workers, len(out.order), out.all)
		}
		for i, b := range out.order {
			if b != i {
				t.Fatalf("workers %d: batch %d arrived at position %d: order not kept", workers, b, i)
			}
		}
		if workers == 1 {
			if tr.forks.Load() != 0 || tr.direct.Load() != 300 {
				t.Fatalf("one worker: %d forks, %d direct calls; want Process called directly", tr.forks.Load(), tr.direct.Load())
			}
			continue
		}
		if tr.forks.Load() != int64(workers) || tr.direct.Load() != 0 {
			t.Fatalf("%d workers: %d forks, %d direct calls", workers, tr.forks.Load(), tr.direct.Load())
		}
		if tr.maxSeen.Load() < 2 {
			t.Fatalf("%d workers: at most %d batch processed at once", workers, tr.maxSeen.Load())
		}
	}
}
