// Package ordered processes items on several goroutines and passes them on
// in the order they were submitted: a stage that would hold one core keeps
// every core busy, and what follows it still sees the original order.
package ordered

import (
	"context"
	"sync"
)

// Pipe runs up to its number of workers items at once and delivers each
// processed item, one at a time, in submission order.
type Pipe[T any] struct {
	work  chan *slot[T]
	order chan *slot[T]
	wg    sync.WaitGroup
	done  chan struct{}
}

type slot[T any] struct {
	v    T
	done chan struct{}
}

// New starts a pipe of workers goroutines (at least one). newWorker is
// called once per goroutine and returns its process function, which may
// hold scratch state of its own (a transform's fork). deliver is called
// from one goroutine, in submission order; it is no longer called once
// ctx is done, and the items not delivered by then are dropped.
func New[T any](ctx context.Context, workers int, newWorker func() func(T), deliver func(T)) *Pipe[T] {
	workers = max(workers, 1)
	p := &Pipe[T]{work: make(chan *slot[T]), order: make(chan *slot[T], workers), done: make(chan struct{})}
	for range workers {
		process := newWorker()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for s := range p.work {
				process(s.v)
				close(s.done)
			}
		}()
	}
	go func() {
		defer close(p.done)
		for s := range p.order {
			select {
			case <-s.done:
				deliver(s.v)
			case <-ctx.Done():
				return
			}
		}
	}()
	return p
}

// Submit queues v, waiting while every worker is busy; it fails once ctx
// is done. Submit is called from one goroutine at a time.
func (p *Pipe[T]) Submit(ctx context.Context, v T) error {
	s := &slot[T]{v: v, done: make(chan struct{})}
	select {
	case p.order <- s:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case p.work <- s:
		return nil
	case <-ctx.Done():
		// Never processed, so never delivered: the deliverer waits for it
		// until ctx is done, which it is.
		return ctx.Err()
	}
}

// Close waits until every submitted item is delivered (or ctx is done)
// and the workers have stopped. Submit must not be called after it.
func (p *Pipe[T]) Close() {
	close(p.work)
	close(p.order)
	<-p.done
	p.wg.Wait()
}
