package ordered

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestDeliversInSubmissionOrderWhileRunningAtOnce(t *testing.T) {
	for _, workers := range []int{0, 1, 4} {
		var running, most atomic.Int64
		var mu sync.Mutex
		var got []int
		forks := 0
		p := New(context.Background(), workers, func() func(*int) {
			forks++
			return func(v *int) {
				n := running.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond) // finish out of order
				*v *= 10
				running.Add(-1)
			}
		}, func(v *int) {
			mu.Lock()
			got = append(got, *v)
			mu.Unlock()
		})
		for i := range 200 {
			v := i
			if err := p.Submit(context.Background(), &v); err != nil {
				t.Fatal(err)
			}
		}
		p.Close()
		if want := max(workers, 1); forks != want || most.Load() > int64(want) {
			t.Fatalf("workers %d: %d forks, %d at once", workers, forks, most.Load())
		}
		if workers > 1 && most.Load() < 2 {
			t.Fatalf("workers %d: never more than one item at once", workers)
		}
		if len(got) != 200 {
			t.Fatalf("delivered %d of 200", len(got))
		}
		for i, v := range got {
			if v != i*10 {
				t.Fatalf("workers %d: delivery %d is %d, want %d (out of order or unprocessed)", workers, i, v, i*10)
			}
		}
	}
}

// Once ctx is done, nothing more is delivered, and an item that was never
// processed is never delivered: delivering it would pass on a batch the
// stage did not handle.
func TestCancelNeverDeliversUnprocessed(t *testing.T) {
	for range 50 {
		ctx, cancel := context.WithCancel(context.Background())
		block := make(chan struct{})
		var delivered atomic.Int64
		p := New(ctx, 1, func() func(*bool) {
			return func(processed *bool) {
				<-block
				*processed = true
			}
		}, func(processed *bool) {
			if !*processed {
				t.Error("an unprocessed item was delivered")
			}
			delivered.Add(1)
		})
		first, second := false, false
		if err := p.Submit(ctx, &first); err != nil {
			t.Fatal(err)
		}
		// The only worker is busy: the second item waits for it.
		errc := make(chan error, 1)
		go func() { errc <- p.Submit(ctx, &second) }()
		time.Sleep(time.Millisecond)
		cancel()
		if err := <-errc; err == nil {
			t.Fatal("Submit succeeded after cancel with every worker busy")
		}
		close(block)
		p.Close()
		if delivered.Load() > 1 {
			t.Fatalf("delivered %d items", delivered.Load())
		}
	}
}
